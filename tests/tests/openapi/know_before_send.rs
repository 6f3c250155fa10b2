//! The answers of "know before you send" in their documented shapes: the user view, a
//! refusal before WeChat, a fallback sent and read back, an intercepted template's page.

use super::Api;
use serde_json::json;
use wxpush_tests::TokenWorld;

/// Runs after the other checks (it blocks the world's template).
pub async fn answers(api: &Api, world: &TokenWorld, oa: &str) {
    let view = "/v1/apps/{appid}/users/{openid}";
    let seen = api
        .expect(
            "GET",
            view,
            &format!("/v1/apps/{oa}/users/o-spec"),
            None,
            200,
        )
        .await;
    assert!(seen["sent_today"].as_i64().unwrap() >= 1, "{seen}");
    api.expect(
        "GET",
        view,
        &format!("/v1/apps/{oa}/users/o-none"),
        None,
        404,
    )
    .await;
    let messages = format!("/v1/apps/{oa}/messages");
    let send = "/v1/apps/{appid}/messages";
    let no_grant = json!({"type": "oa_subscribe", "to": {"openid": "o-spec"}, "template_id": "OAT",
                          "data": {"thing1": {"value": "x"}}, "require_grant": true});
    let held = api
        .expect("POST", send, &messages, Some(no_grant), 409)
        .await;
    assert_eq!(held["error"]["code"], "no_grant");
    // The emulator knows no interaction of o-spec: WeChat answers 45015, the fallback goes.
    let custom = json!({"type": "custom", "to": {"openid": "o-spec"}, "msgtype": "text",
                        "text": {"content": "在吗"},
                        "fallback": {"type": "template", "template_id": "TPL_SPEC",
                                     "data": {"thing1": {"value": "hello"}}}});
    let sent = api.expect("POST", send, &messages, Some(custom), 200).await;
    assert_eq!(sent["sent_as"], "fallback");
    let one = format!("/v1/apps/{oa}/messages/{}", sent["id"].as_str().unwrap());
    let read = api
        .expect("GET", "/v1/apps/{appid}/messages/{id}", &one, None, 200)
        .await;
    assert_eq!(read["fallback"]["reason"], "wechat_45015", "{read}");
    world
        .emulator
        .control("/templates/TPL_SPEC/block", json!({"appid": oa}))
        .await;
    let msg = json!({"type": "template", "to": {"openid": "o-spec"}, "template_id": "TPL_SPEC",
                     "data": {"thing1": {"value": "hello"}}});
    api.expect("POST", send, &messages, Some(msg), 200).await;
    let blocked = "/v1/apps/{appid}/templates/{id}/blocked";
    let page = api
        .expect(
            "GET",
            blocked,
            &format!("/v1/apps/{oa}/templates/TPL_SPEC/blocked?limit=1"),
            None,
            200,
        )
        .await;
    assert!(page["messages"][0]["message_id"].is_string(), "{page}");
    assert!(page["cursor"].is_string(), "{page}");
}
