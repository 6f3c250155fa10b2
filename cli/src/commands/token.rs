//! `wxpush token APPID`: an app's current access_token and expiry
//! (GET /v1/apps/{appid}/token).

use super::Operator;
use crate::args::TokenArgs;
use crate::client::answer;
use crate::error::CliError;
use serde_json::Value;

pub async fn run(operator: &Operator, args: TokenArgs) -> Result<(), CliError> {
    let appid = args.appid;
    let api = operator.api().await?;
    let token = answer(api.get(&format!("/v1/apps/{appid}/token"))).await?;
    operator.print(&token, |t| token_summary(&appid, t));
    Ok(())
}

pub fn token_summary(appid: &str, v: &Value) -> String {
    format!(
        "{appid}: access_token {}\nexpires_at {} (unix seconds)",
        v["access_token"].as_str().unwrap_or("?"),
        v["expires_at"].as_i64().unwrap_or(0)
    )
}
