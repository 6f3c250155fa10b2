//! Followers: paging and batch reads.

use crate::client::*;
use serde_json::{Value, json};

#[tokio::test]
async fn follower_paging_and_batchget() {
    let emu = emulator().await;
    let users: Vec<Value> = (0..25_000)
        .map(|i| json!({"appid": OA, "openid": format!("o{i:05}"), "unionid": format!("u{i:05}"), "subscribed": i % 1000 != 7}))
        .collect();
    emu.control("/users", json!(users)).await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    let mut next = String::new();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = emu
            .get(&format!(
                "/cgi-bin/user/get?access_token={tok}&next_openid={next}"
            ))
            .await;
        assert_eq!(page["total"], 24_975);
        if page["count"] == 0 {
            break;
        }
        let ids = page["data"]["openid"].as_array().unwrap();
        assert!(ids.len() <= 10_000);
        seen.extend(ids.iter().map(|v| v.as_str().unwrap().to_string()));
        next = page["next_openid"].as_str().unwrap().to_string();
    }
    assert_eq!(seen.len(), 24_975);
    let list: Vec<Value> = seen[..100]
        .iter()
        .map(|o| json!({"openid": o, "lang": "zh_CN"}))
        .collect();
    let batch = emu
        .post(
            &format!("/cgi-bin/user/info/batchget?access_token={tok}"),
            json!({"user_list": list}),
        )
        .await;
    assert_eq!(batch["user_info_list"].as_array().unwrap().len(), 100);
    assert_eq!(batch["user_info_list"][0]["unionid"], "u00000");
    let too_many: Vec<Value> = seen[..101].iter().map(|o| json!({"openid": o})).collect();
    assert_eq!(
        errcode(
            &emu.post(
                &format!("/cgi-bin/user/info/batchget?access_token={tok}"),
                json!({"user_list": too_many})
            )
            .await
        ),
        40032
    );
    let gone = emu
        .get(&format!(
            "/cgi-bin/user/info?access_token={tok}&openid=o00007"
        ))
        .await;
    assert_eq!(gone["subscribe"], 0);
}
