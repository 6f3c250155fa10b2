//! `wxpush apps put APPID --from FILE`: an app's SSM parameters from its `[[app]]` entry.

use super::ssm_client;
use crate::args::AppsPutArgs;
use crate::commands::{Operator, read_file};
use crate::error::CliError;
use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};
use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore};

pub async fn run(operator: &Operator, args: AppsPutArgs) -> Result<(), CliError> {
    let appid = &args.appid;
    let text = read_file(&args.from)?;
    let ssm = ssm_client().await;
    let done = apps_put(
        &ssm,
        &args.ssm_prefix,
        &text,
        appid,
        args.kms_key_id.as_deref(),
    )
    .await?;
    operator.print(&done, |d| {
        format!(
            "{appid}: wrote {} parameters, deleted {}",
            d["written"].as_array().map_or(0, Vec::len),
            d["deleted"].as_array().map_or(0, Vec::len)
        )
    });
    Ok(())
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
        (
            "max_per_user_per_day",
            entry.max_per_user_per_day.map(|r| r.to_string()),
            false,
        ),
        (
            "max_per_user_per_day_by_template",
            entry.template_caps_parameter(),
            false,
        ),
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
