//! The operator commands beyond batches and the follower sync: `token`, `send`, `templates`,
//! `apps` and `apps put`. Each returns the API's answer (printed as JSON with `--json`) and a
//! human summary; a refusal is an error with exit code 1, bad usage exit code 2.

use crate::admin::{ApiClient, ApiFailure};
use aws_sdk_ssm::types::ParameterType;
use serde_json::{Map, Value, json};
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore};

/// Why a command did not succeed, and so its exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    /// The command line or a file it names is wrong: exit 2.
    Usage(String),
    /// wxpush (or AWS) refused, or could not be reached: exit 1.
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<String> for CliError {
    fn from(m: String) -> CliError {
        CliError::Failed(m)
    }
}

impl From<ApiFailure> for CliError {
    fn from(f: ApiFailure) -> CliError {
        CliError::Failed(format!("refused: {f}"))
    }
}

/// The API's answer, or the refusal as an error.
pub async fn answer(
    call: impl std::future::Future<Output = Result<Result<Value, ApiFailure>, String>>,
) -> Result<Value, CliError> {
    Ok(call.await??)
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

pub fn token_summary(appid: &str, v: &Value) -> String {
    format!(
        "{appid}: access_token {}\nexpires_at {} (unix seconds)",
        v["access_token"].as_str().unwrap_or("?"),
        v["expires_at"].as_i64().unwrap_or(0)
    )
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

/// The configured apps (appid, kind): from an apps file, or the SSM parameters under
/// `prefix` (names and the plain `kind` values only; nothing is decrypted).
pub async fn configured_apps(
    apps_file: Option<&str>,
    ssm: Option<(&aws_sdk_ssm::Client, &str)>,
) -> Result<Vec<(String, String)>, CliError> {
    if let Some(text) = apps_file {
        let file = AppsFile::parse(text).map_err(|e| CliError::Usage(e.to_string()))?;
        return Ok(file.apps.into_iter().map(|a| (a.appid, a.kind)).collect());
    }
    let Some((client, prefix)) = ssm else {
        return Err(CliError::Usage(
            "give --apps FILE, or run with AWS credentials to read SSM".into(),
        ));
    };
    let mut apps = Vec::new();
    let mut next: Option<String> = None;
    // Bounded: 10 parameters a page, 1 000 pages (about 140 apps of 7 parameters each page).
    for _ in 0..1_000 {
        let page = client
            .get_parameters_by_path()
            .path(format!("{}/apps", prefix.trim_end_matches('/')))
            .recursive(true)
            .with_decryption(false)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| {
                CliError::Failed(format!(
                    "cannot list SSM parameters: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                ))
            })?;
        for p in page.parameters() {
            let name = p.name().unwrap_or("");
            if let Some(rest) = name.strip_suffix("/kind")
                && let Some(appid) = rest.rsplit('/').next()
            {
                apps.push((appid.to_string(), p.value().unwrap_or("").to_string()));
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    apps.sort();
    Ok(apps)
}

/// Each app and its token state as the API answers it (the token itself is not shown).
pub async fn apps_with_tokens(api: &ApiClient, apps: &[(String, String)]) -> Value {
    let mut out = Vec::new();
    for (appid, kind) in apps {
        let state = match api.get(&format!("/v1/apps/{appid}/token")).await {
            Ok(Ok(t)) => json!({"state": "ok", "expires_at": t["expires_at"]}),
            Ok(Err(f)) => json!({"state": "error", "code": f.code, "message": f.message}),
            Err(e) => json!({"state": "unreachable", "message": e}),
        };
        out.push(json!({"appid": appid, "kind": kind, "token": state}));
    }
    json!({"apps": out})
}

pub fn apps_summary(v: &Value, now: i64) -> String {
    let list = v["apps"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no apps configured".into();
    }
    list.iter()
        .map(|a| {
            let token = &a["token"];
            let state = match token["state"].as_str() {
                Some("ok") => format!(
                    "token valid for {} s",
                    token["expires_at"].as_i64().unwrap_or(0) - now
                ),
                Some("error") => format!(
                    "token: {} ({})",
                    token["code"].as_str().unwrap_or("?"),
                    token["message"].as_str().unwrap_or("")
                ),
                _ => format!("token: {}", token["message"].as_str().unwrap_or("unknown")),
            };
            format!(
                "{}  {}  {state}",
                a["appid"].as_str().unwrap_or("?"),
                a["kind"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The parameters an app entry becomes, as (name, value, secure).
fn parameters(entry: &AppEntry) -> Vec<(&'static str, Option<String>, bool)> {
    vec![
        ("kind", Some(entry.kind.clone()), false),
        ("app_secret", Some(entry.app_secret.clone()), true),
        ("callback_token", entry.callback_token.clone(), true),
        ("encoding_aes_key", entry.encoding_aes_key.clone(), true),
        (
            "linked_official_account",
            entry.linked_official_account.clone(),
            false,
        ),
        ("token_api", entry.token_api.clone(), false),
        ("callback_mode", entry.callback_mode.clone(), false),
        ("batch_rate", entry.batch_rate.map(|r| r.to_string()), false),
    ]
}

/// `wxpush apps put APPID --from FILE`: the `[[app]]` entry of `appid` in the apps file,
/// checked exactly as wxpush checks it, written to SSM under `prefix` (secrets as
/// SecureString, with `kms_key` when given); optional parameters the entry leaves out are
/// deleted. Answers the names written and deleted. Run again after a failure: it overwrites.
pub async fn apps_put(
    client: &aws_sdk_ssm::Client,
    prefix: &str,
    apps_file: &str,
    appid: &str,
    kms_key: Option<&str>,
) -> Result<Value, CliError> {
    let file = AppsFile::parse(apps_file).map_err(|e| CliError::Usage(e.to_string()))?;
    let entry = file
        .apps
        .into_iter()
        .find(|a| a.appid == appid)
        .ok_or_else(|| {
            CliError::Usage(format!("the apps file has no [[app]] with appid {appid}"))
        })?;
    // The same checks as every other reader of the configuration.
    FileSecretStore::from_file(AppsFile {
        apps: vec![entry.clone()],
    })
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let base = format!("{}/apps/{appid}", prefix.trim_end_matches('/'));
    let (mut written, mut deleted) = (Vec::new(), Vec::new());
    // Writes first and `kind` last, deletes after the writes. wxpush lists an app only once
    // its `kind` exists (`SsmSecretStore::list_apps`, like `configured_apps` here), so a run
    // that fails half way leaves a new app unlisted (its callback URL answers 404 without a
    // read of SSM), no app without its secret, and no safe-mode app without its key. Run
    // again to finish.
    let mut order = parameters(&entry);
    order.sort_by_key(|(name, value, _)| {
        let present = value.as_deref().is_some_and(|v| !v.is_empty());
        (!present, *name == "kind")
    });
    for (name, value, secure) in order {
        let full = format!("{base}/{name}");
        match value.filter(|v| !v.is_empty()) {
            Some(v) => {
                let mut put = client
                    .put_parameter()
                    .name(&full)
                    .value(v)
                    .overwrite(true)
                    .r#type(if secure {
                        ParameterType::SecureString
                    } else {
                        ParameterType::String
                    });
                if secure && let Some(k) = kms_key {
                    put = put.key_id(k);
                }
                put.send().await.map_err(|e| {
                    // The SDK's error names the parameter, never its value.
                    CliError::Failed(format!(
                        "cannot write {full} (written so far: {written:?}; run again): {}",
                        aws_sdk_ssm::error::DisplayErrorContext(e)
                    ))
                })?;
                written.push(full);
            }
            None => {
                let gone = client.delete_parameter().name(&full).send().await;
                match gone {
                    Ok(_) => deleted.push(full),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_parameter_not_found()) => {}
                    Err(e) => {
                        return Err(CliError::Failed(format!(
                            "cannot delete {full}: {}",
                            aws_sdk_ssm::error::DisplayErrorContext(e)
                        )));
                    }
                }
            }
        }
    }
    Ok(json!({"appid": appid, "written": written, "deleted": deleted}))
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
