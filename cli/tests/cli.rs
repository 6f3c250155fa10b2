//! The `wxpush` binary as an operator runs it: against a local server (bearer key) and
//! moto's SSM (`apps put`), checking output, `--json` and exit codes (0 done, 1 refused,
//! 2 bad usage).

mod common;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wxpush_cli::local_server::demo_apps;

const KEY: &str = "cli-test-key";

async fn wxpush(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("wxpush-cli-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.args(args)
        .current_dir(&dir)
        .env_remove("WXPUSH_API_KEY")
        .env_remove("WXPUSH_SERVER")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command ends")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The local server `wxpush serve` runs, in memory, with the sandbox and the bearer key
/// [`KEY`].
async fn local_server(
    apps: wxpush_shared::secrets::AppsFile,
) -> wxpush_cli::local_server::RunningServer {
    common::sandbox_server(apps, KEY).await
}

/// `wxpush [--json] send` of template `T1` from `oa` to `to`, with `extra` arguments.
async fn send_template(url: &str, json: bool, oa: &str, to: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--server", url];
    if json {
        args.push("--json");
    }
    args.extend([
        "send",
        oa,
        "--type",
        "template",
        "--to",
        to,
        "--template-id",
        "T1",
        "--data",
        "thing1=hello",
    ]);
    args.extend(extra);
    wxpush(&args, &[("WXPUSH_API_KEY", KEY)]).await
}

#[tokio::test]
async fn operator_commands_against_the_local_server() {
    let apps = demo_apps();
    let (oa, mp) = (apps.apps[0].appid.clone(), apps.apps[1].appid.clone());
    let apps_toml = toml::to_string(&apps).unwrap();
    let server = local_server(apps).await;
    let url = server.url();
    let token = token_prints_a_summary_or_json(&url, &oa).await;
    send_is_refused_then_sent_and_replayed(&url, &oa).await;
    user_prints_what_wxpush_knows(&url, &oa).await;
    apps_lists_each_app_without_its_token(&url, &apps_toml, (&oa, &mp), &token).await;
    bad_usage_is_exit_2_and_refusals_exit_1(&url, &oa).await;
    drop(server);
}

/// token: a summary, or JSON (returned).
async fn token_prints_a_summary_or_json(url: &str, oa: &str) -> Value {
    let key = [("WXPUSH_API_KEY", KEY)];
    let out = wxpush(&["--server", url, "token", oa], &key).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("access_token"));
    let out = wxpush(&["--server", url, "--json", "token", oa], &key).await;
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(token["expires_at"].as_i64().unwrap() > 0);
    token
}

/// send: refused by WeChat (an unknown user) is exit 1 with the API's code; sent once the
/// user exists; the same Idempotency-Key replays the first answer.
async fn send_is_refused_then_sent_and_replayed(url: &str, oa: &str) {
    let out = send_template(url, false, oa, "o-nobody", &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("refused: 422 invalid_recipient"),
        "{}",
        text(&out.stderr)
    );
    reqwest::Client::new()
        .post(format!("{url}/sandbox/users"))
        .json(&json!({"appid": oa, "openid": "o-fan", "unionid": "u-fan"}))
        .send()
        .await
        .unwrap();
    let key = ["--idempotency-key", "k1"];
    let out = send_template(url, false, oa, "openid:o-fan", &key).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(": sent (WeChat msgid"),
        "{}",
        text(&out.stdout)
    );
    let again = send_template(url, true, oa, "openid:o-fan", &key).await;
    let replay: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        text(&out.stdout).contains(replay["id"].as_str().unwrap()),
        "the key replays the first answer"
    );
}

/// user: the user view as a summary or JSON; an unknown user is a refusal (exit 1), an
/// openid that cannot be one bad usage (exit 2).
async fn user_prints_what_wxpush_knows(url: &str, oa: &str) {
    let key = [("WXPUSH_API_KEY", KEY)];
    let out = wxpush(&["--server", url, "user", oa, "o-fan"], &key).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("sent today: 1"), "{summary}");
    assert!(
        summary.contains("customer-service window: no interaction seen"),
        "{summary}"
    );
    let out = wxpush(&["--server", url, "--json", "user", oa, "o-fan"], &key).await;
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (view["openid"].as_str(), view["sent_today"].as_i64()),
        (Some("o-fan"), Some(1))
    );
    let out = wxpush(&["--server", url, "user", oa, "o-nobody"], &key).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("404 unknown_user"),
        "{}",
        text(&out.stderr)
    );
    let out = wxpush(&["--server", url, "user", oa, "o/../x"], &key).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// apps: each configured app with its token state (never the token).
async fn apps_lists_each_app_without_its_token(
    url: &str,
    apps_toml: &str,
    (oa, mp): (&str, &str),
    token: &Value,
) {
    let dir = std::env::temp_dir().join(format!("wxpush-apps-{}.toml", rand::random::<u64>()));
    std::fs::write(&dir, apps_toml).unwrap();
    let out = wxpush(
        &["--server", url, "apps", "--apps", dir.to_str().unwrap()],
        &[("WXPUSH_API_KEY", KEY)],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&format!("{oa}  official_account  token valid for")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{mp}  mini_program")),
        "{listing}"
    );
    assert!(!listing.contains(token["access_token"].as_str().unwrap()));
    let _ = std::fs::remove_file(&dir);
}

/// Bad usage is exit 2: no message given, a missing file, no key at all. A wrong key and an
/// unreachable server are refusals: exit 1.
async fn bad_usage_is_exit_2_and_refusals_exit_1(url: &str, oa: &str) {
    let key = [("WXPUSH_API_KEY", KEY)];
    let out = wxpush(&["--server", url, "send", oa], &key).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let missing_file = ["--json-file", "/nonexistent.json"];
    let out = wxpush(
        &[&["--server", url, "send", oa][..], &missing_file].concat(),
        &key,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = wxpush(&["--server", url, "token", oa], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("WXPUSH_API_KEY"));
    let out = wxpush(
        &["--server", url, "token", oa],
        &[("WXPUSH_API_KEY", "wrong")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("401 unauthorized"),
        "{}",
        text(&out.stderr)
    );
    let out = wxpush(&["--server", "http://127.0.0.1:9", "token", oa], &key).await;
    assert_eq!(out.status.code(), Some(1));
}

/// `wxpush [--json] apps put APPID --from FILE --ssm-prefix PREFIX`.
async fn apps_put(json: bool, appid: &str, file: &str, prefix: &str) -> Output {
    let put = ["apps", "put", appid, "--from", file, "--ssm-prefix", prefix];
    let args = if json {
        [&["--json"][..], &put].concat()
    } else {
        put.to_vec()
    };
    wxpush(&args, &[]).await
}

/// `appid`'s parameters under `prefix`, by name: (value, type).
async fn parameters(
    ssm: &aws_sdk_ssm::Client,
    prefix: &str,
    appid: &str,
) -> HashMap<String, (String, String)> {
    let params = ssm
        .get_parameters_by_path()
        .path(format!("{prefix}/apps/{appid}"))
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    params
        .parameters()
        .iter()
        .map(|p| {
            (
                p.name().unwrap().rsplit('/').next().unwrap().to_string(),
                (
                    p.value().unwrap().to_string(),
                    p.r#type().unwrap().as_str().to_string(),
                ),
            )
        })
        .collect()
}

/// `apps put` on moto's SSM (skipped without `AWS_ENDPOINT_URL`, i.e. outside `scripts/test`).
#[tokio::test]
async fn apps_put_writes_ssm_parameters_and_removes_left_out_ones() {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        panic!(
            "AWS_ENDPOINT_URL is not set: run the suite with `bash scripts/test`, which starts moto"
        );
    };
    assert!(endpoint.starts_with("http://127.0.0.1"), "{endpoint}");
    let prefix = format!("/wxpush-cli-{}", rand::random::<u32>());
    let file = std::env::temp_dir().join(format!("wxpush-put-{}.toml", rand::random::<u64>()));
    let full = "[[app]]\nappid = \"wx00000000000000c1\"\nkind = \"official_account\"\napp_secret = \"put-secret\"\ncallback_token = \"puttoken\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n";
    std::fs::write(&file, full).unwrap();
    let f = file.to_str().unwrap();
    let out = apps_put(true, "wx00000000000000c1", f, &prefix).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["written"].as_array().unwrap().len(), 4);
    assert!(!text(&out.stdout).contains("put-secret") && !text(&out.stderr).contains("put-secret"));

    let ssm = aws_sdk_ssm::Client::new(&wxpush_shared::aws::load_sdk_config().await);
    let by_name = parameters(&ssm, &prefix, "wx00000000000000c1").await;
    assert_eq!(
        by_name["app_secret"],
        ("put-secret".to_string(), "SecureString".to_string())
    );
    assert_eq!(by_name["callback_token"].1, "SecureString");
    assert_eq!(by_name["encoding_aes_key"].1, "SecureString");
    assert_eq!(
        by_name["kind"],
        ("official_account".to_string(), "String".to_string())
    );

    // The key is dropped from the entry (plaintext mode now): the parameter is deleted.
    let plain = full.replace(
        "encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n",
        "",
    );
    std::fs::write(&file, plain).unwrap();
    let out = apps_put(false, "wx00000000000000c1", f, &prefix).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("wrote 3 parameters, deleted 1"),
        "{}",
        text(&out.stdout)
    );
    refused_entries_write_nothing(&ssm, &file, &prefix).await;
    let _ = std::fs::remove_file(&file);
}

/// An entry wxpush would refuse, or an appid the file does not have, is refused before
/// anything is written: exit 2.
async fn refused_entries_write_nothing(
    ssm: &aws_sdk_ssm::Client,
    file: &std::path::Path,
    prefix: &str,
) {
    std::fs::write(file, "[[app]]\nappid = \"wx00000000000000c2\"\nkind = \"official_account\"\napp_secret = \"s\"\ncallback_mode = \"safe\"\n").unwrap();
    let f = file.to_str().unwrap();
    let out = apps_put(false, "wx00000000000000c2", f, prefix).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let nothing = ssm
        .get_parameters_by_path()
        .path(format!("{prefix}/apps/wx00000000000000c2"))
        .send()
        .await
        .unwrap();
    assert!(nothing.parameters().is_empty());
    let out = apps_put(false, "wx00000000000000c9", f, prefix).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no [[app]] with appid wx00000000000000c9"));
}

/// A stand-in HTTP proxy on 127.0.0.1 (`HTTP_PROXY`): the CLI's requests to a remote
/// `http://` server reach it instead of the network, so the test sees what would have left the
/// machine. It keeps each request's head and answers a token.
async fn recording_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                s.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let body = r#"{"appid":"wx0123456789abcdef","access_token":"t","expires_at":4000000000,"expires_in":7200}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

/// `--auth bearer` to a remote `http://` server would put the key on the network in clear:
/// refused (exit 2, naming the risk) before anything is sent, unless `--insecure-http`.
#[tokio::test]
async fn a_bearer_key_is_never_sent_in_clear_beyond_loopback() {
    let (proxy, seen) = recording_proxy().await;
    let env = [
        ("WXPUSH_API_KEY", "bearer-in-clear-key"),
        ("HTTP_PROXY", proxy.as_str()),
        ("http_proxy", proxy.as_str()),
        ("NO_PROXY", ""),
    ];
    let app = "wx0123456789abcdef";
    for server in [
        "http://wxpush.example.com",
        "http://10.1.2.3:3000",
        "http://[::ffff:10.1.2.3]:3000",
    ] {
        let out = wxpush(
            &["--server", server, "--auth", "bearer", "token", app],
            &env,
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{server}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("in clear") && err.contains("--insecure-http") && err.contains("https://"),
            "{server}: {err}"
        );
        assert!(!err.contains("bearer-in-clear-key"));
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing left for the network: {:?}",
        seen.lock().unwrap()
    );
    // With the flag, the operator has accepted the risk: the request goes.
    let out = wxpush(
        &[
            "--server",
            "http://wxpush.example.com",
            "--auth",
            "bearer",
            "--insecure-http",
            "token",
            app,
        ],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("GET http://wxpush.example.com/v1/apps/"),
        "{}",
        seen[0]
    );
}
