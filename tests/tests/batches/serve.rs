//! `wxpush serve` running batches, and the CLI following them.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_cli::client::ApiClient;
use wxpush_cli::commands::batch::{
    Audience, BatchSend, Watch, batch_cancel, batch_send, batch_status, batch_summary,
    read_recipients,
};
use wxpush_cli::local_server::RunningServer;
use wxpush_shared::secrets::{AppEntry, AppsFile};
use wxpush_tests::batch_world::*;

const KEY: &str = "batch-cli-test-key";

/// `wxpush serve` runs the same workers in-process; `wxpush batch send --watch` and
/// `wxpush batch status` follow a batch through the bearer-protected API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wxpush_serve_runs_batches_and_the_cli_follows_them() {
    let server = local_server_with_followers(150).await;
    let recipients = the_campaign_file_is_read();
    let api = ApiClient::new(&server.url(), KEY).unwrap();
    let watch = Watch {
        poll_every: Duration::from_millis(100),
        give_up_after: Duration::from_secs(60),
        show_progress: false,
    };
    let args = BatchSend {
        appid: OA.into(),
        message: template("本地批量"),
        audience: Audience::Recipients(recipients),
        idempotency_key: Some("cli-run-1".into()),
        watch: Some(watch),
    };
    let done = batch_send(&api, &args).await.unwrap();
    assert_eq!(
        (done["sent"].as_i64(), done["done"].as_bool()),
        (Some(150), Some(true)),
        "{done}"
    );
    assert!(batch_summary(&done).contains("sent 150"));
    let id = done["id"].as_str().unwrap();
    let again = batch_status(&api, OA, id, None).await.unwrap();
    assert_eq!(again["sent"], 150);
    // The same command again (same key): the same batch, nothing sent twice.
    let replay = batch_send(
        &api,
        &BatchSend {
            watch: None,
            ..args
        },
    )
    .await
    .unwrap();
    assert_eq!(replay["id"], done["id"]);
    let delivered = reqwest::get(format!("{}/sandbox/messages?appid={OA}", server.url()))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap();
    assert_eq!(delivered.len(), 150);
    refusals_name_the_bad_recipients_and_a_wrong_key_is_refused(&server, &api, id).await;
}

/// `wxpush serve` with the official account, and `n` followers `l{i}` in its emulator.
async fn local_server_with_followers(n: usize) -> RunningServer {
    let apps = AppsFile {
        apps: vec![AppEntry {
            appid: OA.into(),
            kind: "official_account".into(),
            app_secret: SECRET.into(),
            callback_token: Some("batch-cli-cbtoken".into()),
            ..AppEntry::default()
        }],
    };
    let server = wxpush_tests::local_server(apps, KEY).await;
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"appid": OA, "openid": format!("l{i}"), "subscribed": true}))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/sandbox/users", server.url()))
        .json(&users)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    server
}

/// The campaign's recipients file (a comment, a blank line, a typed first line), and what
/// `read_recipients` refuses or reads as JSON.
fn the_campaign_file_is_read() -> Vec<Value> {
    let mut file = String::from("# the campaign list\n\nopenid:l0\n");
    for i in 1..150 {
        file.push_str(&format!("l{i}\n"));
    }
    let recipients = read_recipients(&file).unwrap();
    assert_eq!(recipients.len(), 150);
    assert!(read_recipients("phone:123").is_err());
    assert!(read_recipients("# nobody\n").is_err());
    assert_eq!(
        read_recipients(r#"[{"unionid": "u1"}]"#).unwrap(),
        vec![json!({"unionid": "u1"})]
    );
    recipients
}

/// Refusals name the bad recipients; a wrong key is refused.
async fn refusals_name_the_bad_recipients_and_a_wrong_key_is_refused(
    server: &RunningServer,
    api: &ApiClient,
    id: &str,
) {
    let bad = BatchSend {
        appid: OA.into(),
        message: template("x"),
        audience: Audience::Recipients(vec![json!({"openid": "ok"}), json!({"openid": "a b"})]),
        idempotency_key: None,
        watch: None,
    };
    let err = batch_send(api, &bad).await.unwrap_err();
    assert!(
        err.contains("invalid_recipients") && err.contains("recipient #1"),
        "{err}"
    );
    let stranger = ApiClient::new(&server.url(), "wrong-key").unwrap();
    let err = batch_cancel(&stranger, OA, id).await.unwrap_err();
    assert!(err.contains("401"), "{err}");
}
