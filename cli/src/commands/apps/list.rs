//! `wxpush apps [--apps FILE]`: the configured apps (from the file, or SSM's parameter
//! names) and each one's token state as the running wxpush answers it.

use super::ssm_client;
use crate::client::ApiClient;
use crate::commands::{Operator, read_file};
use crate::error::CliError;
use serde_json::{Value, json};
use std::path::PathBuf;
use wxpush_shared::secrets::AppsFile;

pub async fn run(
    operator: &Operator,
    apps: Option<PathBuf>,
    ssm_prefix: &str,
) -> Result<(), CliError> {
    let listed = match apps {
        Some(path) => configured_apps(Some(&read_file(&path)?), None).await?,
        None => {
            let ssm = ssm_client().await;
            configured_apps(None, Some((&ssm, ssm_prefix))).await?
        }
    };
    let api = operator.api().await?;
    let state = apps_with_tokens(&api, &listed).await;
    operator.print(&state, |s| {
        apps_summary(s, wxpush_shared::clock::now_unix())
    });
    Ok(())
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
