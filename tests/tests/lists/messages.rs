//! `GET /v1/apps/{appid}/messages` on moto's DynamoDB and the emulator: every message sent
//! (sent or refused) listed once, newest first, page after page.

use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use wxpush_send::SendService;
use wxpush_shared::listing::ListQuery;
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, send_message};

struct World {
    world: TokenWorld,
    oa: String,
    svc: SendService,
}

async fn world() -> World {
    let (world, oa, _mp) = TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 400),
        world.state_store(),
        Duration::from_millis(400),
    );
    World { world, oa, svc }
}

impl World {
    async fn send(&self, to: &str, key: Option<&str>) -> (u16, Value) {
        let body = json!({"type": "template", "to": {"openid": to}, "template_id": "TPL_1",
                          "data": {"thing1": {"value": "你好"}}});
        send_message(&self.svc, &self.oa, &body, key, Duration::from_secs(20)).await
    }

    async fn page(&self, cursor: Option<&str>, limit: &str) -> Value {
        let query = ListQuery::parse(cursor, Some(limit)).expect("a valid query");
        self.svc
            .sender
            .messages(&self.oa, &query)
            .await
            .expect("the list")
    }

    /// Every page of `limit`, in order.
    async fn all_pages(&self, limit: &str) -> Vec<Value> {
        let mut pages = vec![self.page(None, limit).await];
        while let Some(cursor) = pages.last().unwrap()["next_cursor"].as_str() {
            let cursor = cursor.to_string();
            pages.push(self.page(Some(&cursor), limit).await);
            assert!(pages.len() < 100, "the pages never end");
        }
        pages
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_message_is_listed_once_newest_first_in_pages() {
    let w = world().await;
    w.world
        .emulator
        .control(
            "/users",
            json!([{"appid": w.oa, "openid": "o_fan"},
                   {"appid": w.oa, "openid": "o_gone", "subscribed": false}]),
        )
        .await;
    let mut sent = Vec::new();
    for i in 0..23 {
        // Every fifth to a user who left: refused by WeChat (43004), and listed all the same.
        let to = if i % 5 == 4 { "o_gone" } else { "o_fan" };
        let (status, body) = w.send(to, None).await;
        // A refusal's answer carries no id: the list must still hold the message.
        match status {
            200 => sent.push(body["id"].as_str().unwrap().to_string()),
            403 => assert_eq!(body["error"]["code"], "not_following"),
            _ => panic!("{status} {body}"),
        }
        // Ids carry milliseconds: sends a millisecond apart list in sending order.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pages = w.all_pages("10").await;
    assert_eq!(
        pages.iter().map(|p| ids(p).len()).collect::<Vec<_>>(),
        [10, 10, 3]
    );
    assert!(pages[2]["next_cursor"].is_null());
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), 23, "each message once");
    // The answered ones among them, newest first; the refused ones in their places.
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    let answered: Vec<String> = listed
        .iter()
        .filter(|id| sent.contains(id))
        .cloned()
        .collect();
    assert_eq!(answered, newest_first);
    let statuses: Vec<&str> = pages
        .iter()
        .flat_map(|p| p["messages"].as_array().unwrap())
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = (0..23)
        .rev()
        .map(|i| if i % 5 == 4 { "failed" } else { "sent" })
        .collect();
    assert_eq!(statuses, expected);

    let first = &pages[0]["messages"][0];
    assert_eq!(first["status"], "sent", "{first}");
    assert_eq!(first["to"]["openid"], "o_fan");
    assert_eq!(first["type"], "template");
    assert!(first["wechat_msgid"].as_i64().is_some());
    let refused = pages
        .iter()
        .flat_map(|p| p["messages"].as_array().unwrap().clone())
        .find(|m| m["to"]["openid"] == "o_gone")
        .expect("a refused message is listed");
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["wechat_errcode"], 43004);
    assert!(
        refused["error"].as_str().unwrap().contains("43004"),
        "{refused}"
    );

    // The whole list in one page of 100, the same order.
    let one = w.page(None, "100").await;
    assert_eq!(ids(&one), listed);
    assert!(one["next_cursor"].is_null());
    // A page of one at a time: DynamoDB stops each shard's query at its Limit with a
    // LastEvaluatedKey whether or not more follows; the last page still says nothing follows
    // (no empty page after it).
    let singles = w.all_pages("1").await;
    assert_eq!(singles.len(), 23, "one page per message, none empty");
    assert_eq!(singles.iter().flat_map(ids).collect::<Vec<_>>(), listed);
    let exact = w.page(None, "23").await;
    assert_eq!(ids(&exact), listed);
    assert!(exact["next_cursor"].is_null(), "{}", exact["next_cursor"]);
}

#[tokio::test]
async fn a_message_written_twice_is_listed_once() {
    let w = world().await;
    w.world
        .emulator
        .control("/users", json!({"appid": w.oa, "openid": "o_fan"}))
        .await;
    // WeChat delivers and three answers are lost, then the token is refused: `unknown`,
    // recorded, with `retry_until` (tests/tests/guarantees/ has the whole story).
    let path = "/cgi-bin/message/template/send";
    for fault in [
        json!({"path": path, "delay_ms": 900, "after_delivery": true, "times": 3}),
        json!({"path": path, "errcode": 40001}),
    ] {
        w.world.emulator.control("/faults", fault).await;
    }
    let (status, first) = w.send("o_fan", Some("key-1")).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["status"], "unknown");
    // The retry resends under the same id (WeChat dedupes it) and records `sent` over it.
    let (status, retry) = w.send("o_fan", Some("key-1")).await;
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["id"], first["id"]);
    let page = w.page(None, "100").await;
    assert_eq!(ids(&page), [first["id"].as_str().unwrap()]);
    assert_eq!(page["messages"][0]["status"], "sent");
    let unique: HashSet<String> = ids(&page).into_iter().collect();
    assert_eq!(unique.len(), 1);
}
