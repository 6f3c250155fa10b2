//! `wxpush messages`, `wxpush events` and `wxpush batch list` as an operator runs them
//! against `wxpush serve --sandbox`: one page a command, the hint that names the next,
//! `--json`, and exit codes (1 refused, 2 bad usage).

mod common;

use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;
use wxpush_cli::local_server::demo_apps;

const KEY: &str = "list-commands-key";
const OA: &str = "wxd0000000000000a1";

async fn wxpush(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.args(args)
        .current_dir(std::env::temp_dir())
        .env("WXPUSH_API_KEY", KEY)
        .env_remove("WXPUSH_SERVER")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command ends")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn server() -> wxpush_cli::local_server::RunningServer {
    common::sandbox_server(demo_apps(), KEY).await
}

/// `POST {url}{path}` of `body` (with the key for `/v1`); the answer, required to be 2xx.
async fn post(url: &str, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// A template message to `to` through the API; its id.
async fn send(url: &str, to: &str) -> String {
    let message = json!({"type": "template", "to": {"openid": to}, "template_id": "TPL_1",
                         "data": {"thing1": {"value": "hi"}}});
    let answer = post(url, &format!("/v1/apps/{OA}/messages"), message).await;
    answer["id"].as_str().expect("sent").to_string()
}

#[tokio::test]
async fn messages_prints_a_page_and_the_command_for_the_next() {
    let server = server().await;
    let url = server.url();
    let users = json!([{"appid": OA, "openid": "o_first"}, {"appid": OA, "openid": "o_second"}]);
    post(&url, "/sandbox/users", users).await;
    let first = send(&url, "o_first").await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let second = send(&url, "o_second").await;

    let out = wxpush(&["--server", &url, "messages", OA, "--limit", "1"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    let lines: Vec<&str> = page.lines().collect();
    assert_eq!(lines.len(), 2, "{page}");
    assert!(
        lines[0].contains(&second) && lines[0].contains("to o_second"),
        "{page}"
    );
    assert!(lines[0].contains("template"), "{page}");
    // The hint is the command for the older page, ready to run.
    let hint = lines[1].strip_prefix("older: wxpush ").expect("a hint");
    let mut args = vec!["--server", url.as_str()];
    args.extend(hint.split(' '));
    let out = wxpush(&args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let older = text(&out.stdout);
    assert_eq!(
        older.lines().count(),
        1,
        "the last page has no hint: {older}"
    );
    assert!(
        older.contains(&first) && older.contains("to o_first"),
        "{older}"
    );

    let out = wxpush(&["--server", &url, "--json", "messages", OA]).await;
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    assert!(page["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_list_arguments_are_refused() {
    let server = server().await;
    let url = server.url();
    // Bad usage, caught before any request: exit 2.
    for limit in ["0", "101", "many"] {
        let out = wxpush(&["--server", &url, "messages", OA, "--limit", limit]).await;
        assert_eq!(out.status.code(), Some(2), "--limit {limit}");
        assert!(
            text(&out.stderr).contains("--limit"),
            "{}",
            text(&out.stderr)
        );
    }
    // Refused by the API: exit 1, with its status, code and message.
    let out = wxpush(&["--server", &url, "messages", OA, "--cursor", "yesterday"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("422 validation_failed"),
        "{}",
        text(&out.stderr)
    );
    let out = wxpush(&["--server", &url, "messages", "wx00000000000000ff"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("404 unknown_app"),
        "{}",
        text(&out.stderr)
    );
    let out = wxpush(&["--server", &url, "messages", OA]).await;
    assert_eq!(text(&out.stdout).trim(), "no messages");
}

#[tokio::test]
async fn events_and_batches_print_a_line_each() {
    let server = server().await;
    let url = server.url();
    // A follow (pushed to the server's own callback) and an unfollow.
    for path in [
        "/sandbox/users/o_fan/follow",
        "/sandbox/users/o_fan/unfollow",
    ] {
        post(&url, path, json!({"appid": OA})).await;
    }
    let mut out = String::new();
    for _ in 0..50 {
        let run = wxpush(&["--server", &url, "events", OA]).await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        out = text(&run.stdout);
        if out.lines().count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("unsubscribe") && lines[0].contains("from o_fan"),
        "{out}"
    );
    assert!(
        lines[1].contains(" subscribe") && lines[1].contains("forwarding off"),
        "{out}"
    );

    let out = wxpush(&["--server", &url, "batch", "list", OA]).await;
    assert_eq!(text(&out.stdout).trim(), "no batches");
    post(
        &url,
        "/sandbox/users",
        json!({"appid": OA, "openid": "o_reader"}),
    )
    .await;
    let batch = json!({"message": {"type": "template", "template_id": "TPL_1",
                                   "data": {"thing1": {"value": "hi"}}},
                       "recipients": [{"openid": "o_reader"}]});
    let created = post(&url, &format!("/v1/apps/{OA}/batches"), batch).await;
    let id = created["id"].as_str().unwrap();
    let out = wxpush(&["--server", &url, "batch", "list", OA]).await;
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        listed.contains(&format!("batch {id} (")) && listed.contains("total 1"),
        "{listed}"
    );
    let out = wxpush(&["--server", &url, "events", OA, "--cursor", "x"]).await;
    assert_eq!(out.status.code(), Some(1));
}
