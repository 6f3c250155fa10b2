//! `wxpush templates APPID`: an app's templates as WeChat lists them
//! (GET /v1/apps/{appid}/templates).

use super::Operator;
use crate::args::TemplatesArgs;
use crate::client::answer;
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: TemplatesArgs) -> Result<(), CliError> {
    let api = operator.api().await?;
    let query = if args.refresh { "?refresh=true" } else { "" };
    let list = answer(api.get(&format!("/v1/apps/{}/templates{query}", args.appid))).await?;
    operator.print(&list, templates_summary);
    Ok(())
}

pub fn templates_summary(v: &Value) -> String {
    let list = v["templates"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no templates".into();
    }
    list.iter()
        .map(|t| {
            let keys: Vec<&str> = t["keys"]
                .as_array()
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "{}  {}  {}  [{}]",
                t["id"].as_str().unwrap_or("?"),
                t["kind"].as_str().unwrap_or("?"),
                t["title"].as_str().unwrap_or(""),
                keys.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
