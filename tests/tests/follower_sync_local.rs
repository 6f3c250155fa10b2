//! `wxpush sync-followers` against `wxpush serve --sandbox`: the in-process queue and worker in
//! place of SQS, the embedded store, and the CLI following the run through the API.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_cli::client::ApiClient;
use wxpush_cli::commands::sync_followers::{SyncFollowers, sync_followers};
use wxpush_cli::local_server::demo_apps;
use wxpush_tests::local_server;

const OA: &str = "wxd0000000000000a1";
const MP: &str = "wxd0000000000000b2";

fn args(appid: &str) -> SyncFollowers {
    SyncFollowers {
        appid: appid.into(),
        restart: false,
        poll_every: Duration::from_millis(50),
        give_up_after: Duration::from_secs(120),
        show_progress: false,
    }
}

#[tokio::test]
async fn sync_followers_command_follows_a_local_sync_to_the_end() {
    let server = local_server(demo_apps(), "local-key").await;
    let http = reqwest::Client::new();
    let users: Vec<Value> = (0..2_500)
        .map(|i| {
            let mut u = json!({"appid": OA, "openid": format!("lo{i:04}"), "subscribed": true});
            if i % 5 != 0 {
                u["unionid"] = json!(format!("LU{i}"));
            }
            u
        })
        .collect();
    let added = http
        .post(format!("{}/sandbox/users", server.url()))
        .json(&users)
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());

    let api = ApiClient::new(&server.url(), "local-key").unwrap();
    let done = sync_followers(&api, &args(OA))
        .await
        .expect("the sync finishes");
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (
            done["followers"].as_i64(),
            done["mapped"].as_i64(),
            done["without_unionid"].as_i64(),
            done["errors"].as_i64()
        ),
        (Some(2_500), Some(2_000), Some(500), Some(0))
    );

    // The directory knows them now.
    let user = api.get("/v1/users/LU7").await.unwrap().unwrap();
    assert_eq!(
        user,
        json!({"unionid": "LU7", "accounts": [{"appid": OA, "openid": "lo0007", "subscribed": true}]})
    );

    // WeChat refuses the list for good (quota): the command reports the failure, and the
    // next run resumes the same sync.
    http.post(format!("{}/sandbox/faults", server.url()))
        .json(&json!({"path": "/cgi-bin/user/get", "errcode": 45009, "times": 1}))
        .send()
        .await
        .unwrap();
    let mut restart = args(OA);
    restart.restart = true;
    let err = sync_followers(&api, &restart).await.unwrap_err();
    assert!(err.contains("45009") && err.contains("resume"), "{err}");
    let resumed = sync_followers(&api, &args(OA)).await.unwrap();
    assert_eq!(
        (resumed["resumes"].as_i64(), resumed["followers"].as_i64()),
        (Some(1), Some(2_500))
    );

    // A mini program has no followers; a wrong key is refused; both come back as errors.
    let err = sync_followers(&api, &args(MP)).await.unwrap_err();
    assert!(
        err.contains("422") && err.contains("not an official account"),
        "{err}"
    );
    let wrong = ApiClient::new(&server.url(), "wrong").unwrap();
    let err = sync_followers(&wrong, &args(OA)).await.unwrap_err();
    assert!(err.contains("401"), "{err}");
}
