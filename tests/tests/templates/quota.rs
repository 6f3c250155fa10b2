//! `GET /v1/apps/{appid}/quota`: WeChat's daily counters, bad paths, WeChat's errors.

use crate::{World, world};
use serde_json::json;

#[tokio::test]
async fn quota_reports_the_daily_counters() {
    let w = world().await;
    w.control("/users", json!({"appid": w.oa, "openid": "fan"}))
        .await;
    for _ in 0..2 {
        let body = json!({"type": "template", "to": {"openid": "fan"}, "template_id": "T", "data": {"thing1": {"value": "x"}}});
        let (status, resp) = w.send(&w.oa, body).await;
        assert_eq!(status, 200, "{resp}");
    }
    let base = format!("/v1/apps/{}/quota", w.oa);
    the_counters_are_wechats(&w, &base).await;
    bad_paths_never_reach_wechat(&w, &base).await;
    wechat_errors_map_as_for_every_call(&w, &base).await;
}

/// The counters as WeChat keeps them, for a path as given or percent-encoded.
async fn the_counters_are_wechats(w: &World, base: &str) {
    let (status, body) = w
        .call(
            "GET",
            &format!("{base}?path=/cgi-bin/message/template/send"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"path": "/cgi-bin/message/template/send", "daily_limit": 100000, "used": 2, "remain": 99998})
    );
    // Percent-encoded, and a limit set for the test.
    w.control(
        "/quotas",
        json!({"path": "/cgi-bin/message/template/send", "daily_limit": 5}),
    )
    .await;
    let (_, body) = w
        .call(
            "GET",
            &format!("{base}?path=%2Fcgi-bin%2Fmessage%2Ftemplate%2Fsend"),
            None,
        )
        .await;
    assert_eq!(
        (body["daily_limit"].as_u64(), body["remain"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(w.calls("/cgi-bin/openapi/quota/get"), 2);
}

/// Malformed paths, and a path WeChat keeps no quota for (76021): 422 on `path`.
async fn bad_paths_never_reach_wechat(w: &World, base: &str) {
    for query in ["", "?path=", "?path=cgi-bin/token", "?path=/a%20b"] {
        let (status, body) = w.call("GET", &format!("{base}{query}"), None).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("path")),
            "{query}: {body}"
        );
    }
    assert_eq!(
        w.calls("/cgi-bin/openapi/quota/get"),
        2,
        "bad paths never reach WeChat"
    );
    // A path WeChat keeps no quota for (76021).
    let (status, body) = w
        .call("GET", &format!("{base}?path=/cgi-bin/nope"), None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("path")),
        "{body}"
    );
}

/// WeChat's errors map as for every call; a refused token is refreshed once; an unknown
/// app is 404.
async fn wechat_errors_map_as_for_every_call(w: &World, base: &str) {
    w.control(
        "/faults",
        json!({"path": "/cgi-bin/openapi/quota/get", "errcode": 45009}),
    )
    .await;
    let (status, body) = w
        .call("GET", &format!("{base}?path=/cgi-bin/token"), None)
        .await;
    assert_eq!(
        (status, body["error"]["wechat_errcode"].as_i64()),
        (429, Some(45009))
    );
    w.control("/tokens/invalidate", json!({"appid": w.oa}))
        .await;
    let (status, body) = w
        .call("GET", &format!("{base}?path=/cgi-bin/stable_token"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["daily_limit"], 500_000);
    let (status, body) = w
        .call(
            "GET",
            "/v1/apps/wx00000000000000ff/quota?path=/cgi-bin/token",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_app"))
    );
}
