//! Templates and quota (`/v1/apps/{appid}/templates`, `/v1/apps/{appid}/quota`) through the
//! send Lambda's handler with real API Gateway events, against moto and the WeChat emulator;
//! and the send path's check of `data` keys against a known template.

mod data_keys;
#[path = "../common/one_app_server.rs"]
mod one_app_server;
mod quota;

use one_app_server::one_app_server;
use serde_json::{Value, json};
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request};

struct World {
    world: TokenWorld,
    oa: String,
    mp: String,
    svc: SendService,
}

async fn world() -> World {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        Duration::from_millis(2000),
    );
    World { world, oa, mp, svc }
}

impl World {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = handle(
            &self.svc,
            apigw_v1_request(method, path, body.as_ref(), &[]),
        )
        .await;
        let status = resp.status().as_u16();
        let body = if resp.body().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(resp.body().as_ref()).unwrap()
        };
        (status, body)
    }
    async fn control(&self, path: &str, body: Value) -> Value {
        self.world.emulator.control(path, body).await
    }
    fn calls(&self, path: &str) -> u64 {
        self.world.emulator.emu.calls(path)
    }
    /// `body` sent from `appid` through the send service.
    async fn send(&self, appid: &str, body: Value) -> (u16, Value) {
        wxpush_tests::send_message(&self.svc, appid, &body, None, Duration::from_secs(10)).await
    }
    async fn templates(&self, appid: &str, query: &str) -> Vec<Value> {
        let (status, body) = self
            .call("GET", &format!("/v1/apps/{appid}/templates{query}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["templates"].as_array().unwrap().clone()
    }
    fn ids(list: &[Value]) -> Vec<&str> {
        list.iter().map(|t| t["id"].as_str().unwrap()).collect()
    }
}

const OA_CONTENT: &str =
    "{{first.DATA}}\n订单号:{{character_string1.DATA}}\n状态:{{phrase2.DATA}}\n{{remark.DATA}}";
const MP_CONTENT: &str = "商品:{{thing1.DATA}}\n时间:{{time2.DATA}}";

async fn register(w: &World) {
    for (appid, id, kind, content) in [
        (&w.oa, "OA_order", "template", OA_CONTENT),
        (
            &w.oa,
            "OA_notice",
            "subscribe_long_term",
            "通知:{{thing1.DATA}}",
        ),
        (&w.mp, "MP_ship", "subscribe_once", MP_CONTENT),
    ] {
        w.control(
            "/templates",
            json!({"appid": appid, "id": id, "kind": kind, "title": format!("{id} title"), "content": content}),
        )
        .await;
    }
}

const PRIVATE_LIST: &str = "/cgi-bin/template/get_all_private_template";
const SUBSCRIBE_LIST: &str = "/wxaapi/newtmpl/gettemplate";

#[tokio::test]
async fn listing_has_one_shape_for_official_accounts_and_mini_programs() {
    let w = world().await;
    register(&w).await;
    let oa = w.templates(&w.oa, "").await;
    assert_eq!(
        oa,
        vec![
            json!({"id": "OA_order", "kind": "template", "title": "OA_order title",
                   "keys": ["first", "character_string1", "phrase2", "remark"], "content": OA_CONTENT, "example": ""}),
            json!({"id": "OA_notice", "kind": "subscribe_long_term", "title": "OA_notice title",
                   "keys": ["thing1"], "content": "通知:{{thing1.DATA}}", "example": ""}),
        ]
    );
    let mp = w.templates(&w.mp, "").await;
    assert_eq!(
        mp,
        vec![
            json!({"id": "MP_ship", "kind": "subscribe_once", "title": "MP_ship title",
                    "keys": ["thing1", "time2"], "content": MP_CONTENT, "example": ""})
        ]
    );
    // A mini program has no template messages: WeChat's private-template list is never asked.
    assert_eq!(w.calls(PRIVATE_LIST), 1);
    assert_eq!(w.calls(SUBSCRIBE_LIST), 2);
}

#[tokio::test]
async fn listing_is_cached_until_refreshed_and_changes_invalidate_it() {
    let w = world().await;
    register(&w).await;
    assert_eq!(
        W::ids(&w.templates(&w.oa, "").await),
        ["OA_order", "OA_notice"]
    );
    assert_eq!(W::ids(&w.templates(&w.oa, "").await).len(), 2);
    assert_eq!(
        w.calls(PRIVATE_LIST),
        1,
        "the second GET is answered from the cache"
    );
    // Added in WeChat's console, behind wxpush's back: the cache does not know it yet...
    w.control(
        "/templates",
        json!({"appid": w.oa, "id": "OA_console", "kind": "template", "title": "t", "content": "{{thing1.DATA}}"}),
    )
    .await;
    assert_eq!(W::ids(&w.templates(&w.oa, "").await).len(), 2);
    // ... until ?refresh=true re-reads it.
    assert_eq!(
        W::ids(&w.templates(&w.oa, "?refresh=true").await),
        // Template messages first, then subscribe templates.
        ["OA_order", "OA_console", "OA_notice"]
    );
    assert_eq!(w.calls(PRIVATE_LIST), 2);

    // Add through wxpush: 201 and the listing shows it without a refresh.
    let (status, added) = w
        .call(
            "POST",
            &format!("/v1/apps/{}/templates", w.oa),
            Some(json!({"template_id_short": "TM00015", "keyword_names": ["订单号", "状态"]})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let new_id = added["id"].as_str().unwrap().to_string();
    let list = w.templates(&w.oa, "").await;
    let new = list.iter().find(|t| t["id"] == new_id.as_str()).unwrap();
    assert_eq!(
        (new["kind"].as_str(), new["keys"].clone()),
        (Some("template"), json!(["thing1", "thing2"]))
    );

    // Delete: 204, gone from the listing, a second delete is 404.
    let path = format!("/v1/apps/{}/templates/{new_id}", w.oa);
    let (status, body) = w.call("DELETE", &path, None).await;
    assert_eq!((status, &body), (204, &Value::Null));
    assert!(!W::ids(&w.templates(&w.oa, "").await).contains(&new_id.as_str()));
    let (status, body) = w.call("DELETE", &path, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("template_not_found"))
    );

    // A mini program's subscribe template: add then delete through the newtmpl family.
    let (status, added) = w
        .call(
            "POST",
            &format!("/v1/apps/{}/templates", w.mp),
            Some(json!({"tid": "1234", "kid_list": [1, 3], "scene_desc": "发货提醒"})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let sub_id = added["id"].as_str().unwrap().to_string();
    let list = w.templates(&w.mp, "").await;
    let sub = list.iter().find(|t| t["id"] == sub_id.as_str()).unwrap();
    assert_eq!(
        (sub["kind"].as_str(), sub["keys"].clone()),
        (Some("subscribe_once"), json!(["thing1", "thing3"]))
    );
    let (status, _) = w
        .call(
            "DELETE",
            &format!("/v1/apps/{}/templates/{sub_id}", w.mp),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(W::ids(&w.templates(&w.mp, "").await), ["MP_ship"]);
    assert_eq!(w.calls("/wxaapi/newtmpl/deltemplate"), 1);
    assert_eq!(w.calls("/cgi-bin/template/del_private_template"), 1);
}

type W = World;

#[tokio::test]
async fn adding_is_validated_and_wechat_refusals_are_clear() {
    let w = world().await;
    let path = format!("/v1/apps/{}/templates", w.oa);
    for (body, field) in [
        (json!({"template_id_short": "TM1"}), "keyword_names"),
        (
            json!({"template_id_short": "TM1", "keyword_names": []}),
            "keyword_names",
        ),
        (json!({"tid": "12", "kid_list": [1]}), "kid_list"),
        (
            json!({"tid": "12", "kid_list": [1, 2], "scene_desc": "一二三四五六七八九十一二三四五六"}),
            "scene_desc",
        ),
        (json!({"name": "x"}), "template_id_short"),
    ] {
        let (status, resp) = w.call("POST", &path, Some(body.clone())).await;
        assert_eq!(
            (status, resp["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    let (status, resp) = w
        .call(
            "POST",
            &format!("/v1/apps/{}/templates", w.mp),
            Some(json!({"template_id_short": "TM1", "keyword_names": ["a"]})),
        )
        .await;
    assert_eq!(
        (status, resp["error"]["field"].as_str()),
        (422, Some("template_id_short"))
    );
    assert_eq!(w.calls("/cgi-bin/template/api_add_template"), 0);

    // An official account holds at most 25 private templates: WeChat's 45026 is a 409.
    for i in 0..25 {
        w.control(
            "/templates",
            json!({"appid": w.oa, "id": format!("T{i}"), "kind": "template", "title": "t", "content": "{{thing1.DATA}}"}),
        )
        .await;
    }
    let (status, resp) = w
        .call(
            "POST",
            &path,
            Some(json!({"template_id_short": "TM2", "keyword_names": ["a"]})),
        )
        .await;
    assert_eq!(
        (
            status,
            resp["error"]["code"].as_str(),
            resp["error"]["wechat_errcode"].as_i64()
        ),
        (409, Some("template_limit_reached"), Some(45026))
    );
    // Wrong methods and ids.
    let (status, _) = w.call("PUT", &path, None).await;
    assert_eq!(status, 405);
    let (status, _) = w.call("DELETE", &format!("{path}/no%20such"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn local_server_serves_quota_and_templates() {
    let appid = "wx0000000000000d01";
    let server = one_app_server(appid).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/sandbox/templates", server.url()))
        .json(&json!({"appid": appid, "id": "LOCAL_1", "kind": "template", "title": "t", "content": "{{thing1.DATA}}"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let get = |path: String| {
        http.get(format!("{}{path}", server.url()))
            .bearer_auth("test-key")
            .send()
    };
    let resp = get(format!("/v1/apps/{appid}/templates")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["templates"][0]["id"], "LOCAL_1");
    let resp = get(format!(
        "/v1/apps/{appid}/quota?path=/cgi-bin/message/template/send"
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["used"].as_u64(), body["daily_limit"].as_u64()),
        (Some(0), Some(100_000))
    );
    let resp = http
        .delete(format!(
            "{}/v1/apps/{appid}/templates/LOCAL_1",
            server.url()
        ))
        .bearer_auth("test-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}
