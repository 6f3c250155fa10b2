//! `wxpush send APPID (--json-file F | --type T --to X ...)`: one message
//! (POST /v1/apps/{appid}/messages), its body the JSON file as is or built from the flags.

use super::{Operator, read_file};
use crate::args::SendArgs;
use crate::client::answer;
use crate::error::CliError;
use serde_json::{Map, Value, json};

pub async fn run(operator: &Operator, args: SendArgs) -> Result<(), CliError> {
    let file = args.json_file.as_ref().map(read_file).transpose()?;
    let flags = SendFlags {
        kind: args.kind,
        to: args.to,
        template_id: args.template_id,
        data: args.data,
        url: args.url,
        page: args.page,
        text: args.text,
    };
    let body = send_body(file.as_deref(), &flags)?;
    let api = operator.api().await?;
    let sent = answer(api.post_keyed(
        &format!("/v1/apps/{}/messages", args.appid),
        &body,
        args.idempotency_key.as_deref(),
    ))
    .await?;
    operator.print(&sent, send_summary);
    Ok(())
}

/// `wxpush send` flags, when no `--json-file` is given.
#[derive(Clone, Debug, Default)]
pub struct SendFlags {
    pub kind: Option<String>,
    /// `OPENID`, `openid:X` or `unionid:X`.
    pub to: Option<String>,
    pub template_id: Option<String>,
    /// `KEY=VALUE` pairs: `data.KEY.value`.
    pub data: Vec<String>,
    pub url: Option<String>,
    pub page: Option<String>,
    /// A custom text message's content.
    pub text: Option<String>,
}

/// The request body of `wxpush send`: the JSON file as is, or one built from the flags.
pub fn send_body(json_file: Option<&str>, flags: &SendFlags) -> Result<Value, CliError> {
    if let Some(text) = json_file {
        let body: Value = serde_json::from_str(text)
            .map_err(|e| CliError::Usage(format!("the --json-file is not JSON: {e}")))?;
        if !body.is_object() {
            return Err(CliError::Usage(
                "the --json-file must hold a JSON object".into(),
            ));
        }
        return Ok(body);
    }
    let usage = |m: &str| CliError::Usage(m.to_string());
    let kind = flags
        .kind
        .clone()
        .ok_or_else(|| usage("give --json-file FILE, or --type and --to"))?;
    let to = flags
        .to
        .as_deref()
        .ok_or_else(|| usage("--to is required"))?;
    let to = match to.split_once(':') {
        Some(("openid", id)) => json!({"openid": id}),
        Some(("unionid", id)) => json!({"unionid": id}),
        // A mini program user of a uniform message, posted to the official account.
        Some((appid, id)) if wxpush_shared::is_valid_appid(appid) => {
            json!({"openid": id, "appid": appid})
        }
        None => json!({"openid": to}),
        Some(_) => {
            return Err(usage(
                "--to is OPENID, openid:X, unionid:X or APPID:OPENID (a mini program user, for uniform)",
            ));
        }
    };
    let mut body = json!({"type": kind, "to": to});
    if let Some(t) = &flags.template_id {
        body["template_id"] = json!(t);
    }
    if !flags.data.is_empty() {
        let mut data = Map::new();
        for pair in &flags.data {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| usage("--data takes KEY=VALUE"))?;
            data.insert(k.to_string(), json!({"value": v}));
        }
        body["data"] = Value::Object(data);
    }
    if let Some(u) = &flags.url {
        body["url"] = json!(u);
    }
    if let Some(p) = &flags.page {
        body["page"] = json!(p);
    }
    if let Some(t) = &flags.text {
        body["msgtype"] = json!("text");
        body["text"] = json!({"content": t});
    }
    Ok(body)
}

pub fn send_summary(v: &Value) -> String {
    let mut line = format!(
        "message {}: {}",
        v["id"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?")
    );
    if let Some(m) = v["wechat_msgid"].as_i64() {
        line.push_str(&format!(" (WeChat msgid {m})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_bodies_from_flags() {
        let flags = SendFlags {
            kind: Some("template".into()),
            to: Some("unionid:u1".into()),
            template_id: Some("T".into()),
            data: vec!["thing1=你好=世界".into()],
            ..SendFlags::default()
        };
        assert_eq!(
            send_body(None, &flags).unwrap(),
            json!({"type": "template", "to": {"unionid": "u1"}, "template_id": "T",
                   "data": {"thing1": {"value": "你好=世界"}}})
        );
        let text = SendFlags {
            kind: Some("custom".into()),
            to: Some("o1".into()),
            text: Some("hi".into()),
            ..SendFlags::default()
        };
        assert_eq!(
            send_body(None, &text).unwrap(),
            json!({"type": "custom", "to": {"openid": "o1"}, "msgtype": "text", "text": {"content": "hi"}})
        );
        assert_eq!(
            send_body(None, &SendFlags::default())
                .unwrap_err()
                .exit_code(),
            2
        );
        let uniform = SendFlags {
            kind: Some("uniform".into()),
            to: Some("wx0123456789abcdef:mp-o1".into()),
            ..SendFlags::default()
        };
        assert_eq!(
            send_body(None, &uniform).unwrap()["to"],
            json!({"openid": "mp-o1", "appid": "wx0123456789abcdef"})
        );
        let bad_to = SendFlags {
            to: Some("email:x".into()),
            ..flags.clone()
        };
        assert!(matches!(send_body(None, &bad_to), Err(CliError::Usage(_))));
        assert!(matches!(
            send_body(Some("[1]"), &flags),
            Err(CliError::Usage(_))
        ));
        assert_eq!(
            send_body(Some(r#"{"type":"custom"}"#), &SendFlags::default()).unwrap(),
            json!({"type": "custom"})
        );
    }
}
