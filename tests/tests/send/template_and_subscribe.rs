//! Template and subscription messages: sent, delivered and reported; a grant used once;
//! `uniform` through the official account; unionid recipients; refusals before WeChat.

use crate::{World, subscribe, template, world};
use serde_json::{Value, json};
use wxpush_shared::clock::now_unix;
use wxpush_tests::random_appid;

#[tokio::test]
async fn template_message_sent_then_delivered() {
    let w = world().await;
    w.user(&w.oa, "fan", json!({})).await;
    let (status, body) = w.send(&w.oa, template(json!({"openid": "fan"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "sent");
    let id = body["id"].as_str().unwrap().to_string();
    let msgid = body["wechat_msgid"].as_i64().unwrap();
    let delivered = w.delivered(&w.oa).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["msgid"], msgid);
    assert_eq!(delivered[0]["body"]["client_msg_id"], format!("wxp-{id}"));
    assert_eq!(delivered[0]["body"]["url"], "https://shop.example.com/o/1");

    let record = w.svc.sender.message(&w.oa, &id).await.unwrap();
    assert_eq!(
        (record["status"].as_str(), record["wechat_msgid"].as_i64()),
        (Some("sent"), Some(msgid))
    );
    // TEMPLATESENDJOBFINISH arrives through the callback and updates what GET shows.
    let callback = wxpush_shared::callback::service::CallbackService::new(
        w.world.secrets(),
        w.world.state_store(),
        wxpush_tests::faults::RecordingQueue::new(),
    );
    let now = now_unix();
    let xml = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>fan</FromUserName><CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>{msgid}</MsgID><Status>failed:user block</Status></xml>"
    );
    let q = wxpush_tests::signed_query("cbtoken", &now.to_string(), "1", &[]);
    callback
        .receive(&w.oa, &q, xml.as_bytes(), now)
        .await
        .unwrap();
    let record = w.svc.sender.message(&w.oa, &id).await.unwrap();
    assert_eq!(record["status"], "user_blocked");
    assert_eq!(record["delivery"]["status"], "failed:user block");
    assert_eq!(
        w.svc
            .sender
            .message(&w.oa, "msg_nope")
            .await
            .unwrap_err()
            .status(),
        404
    );
}

#[tokio::test]
async fn subscribe_grant_is_one_time() {
    let w = world().await;
    w.user(&w.mp, "mpuser", json!({})).await;
    w.world
        .emulator
        .control(
            "/grants",
            json!({"appid": w.mp, "openid": "mpuser", "template_id": "SUB_1"}),
        )
        .await;
    let (status, body) = w.send(&w.mp, subscribe(json!({"openid": "mpuser"}))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    let (status, body) = w.send(&w.mp, subscribe(json!({"openid": "mpuser"}))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["wechat_errcode"].as_i64()
        ),
        (Some("subscription_required"), Some(43101))
    );
    assert_eq!(w.delivered(&w.mp).await.len(), 1);
    let sent = &w.delivered(&w.mp).await[0]["body"];
    assert_eq!(
        (
            sent["page"].as_str(),
            sent["miniprogram_state"].as_str(),
            sent["lang"].as_str()
        ),
        (Some("pages/order?id=1"), Some("formal"), Some("zh_CN"))
    );
}

/// A template message as `uniform`, to `to`.
fn uniform(to: Value) -> Value {
    let mut body = template(to);
    body["type"] = json!("uniform");
    body
}

/// `uniform` is posted to the official account it goes out through (so IAM scopes it to that
/// account's route), naming the mini program user as `{"openid", "appid"}`; the old form on
/// the mini program's route is refused, naming the new one.
#[tokio::test]
async fn uniform_reaches_the_official_account_through_the_unionid() {
    let w = world().await;
    w.user(&w.oa, "oa-openid", json!({"unionid": "U-42"})).await;
    w.link(&w.mp, "mp-openid", "U-42").await;
    w.link(&w.oa, "oa-openid", "U-42").await;
    let mut body = uniform(json!({"openid": "mp-openid", "appid": w.mp}));
    body["miniprogram"] = json!({"appid": w.mp, "pagepath": "pages/index"});
    let (status, resp) = w.send(&w.oa, body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    let delivered = w.delivered(&w.oa).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["touser"], "oa-openid");
    assert_eq!(delivered[0]["path"], "/cgi-bin/message/template/send");
    assert_eq!(
        w.calls("/cgi-bin/message/wxopen/template/uniform_send"),
        0,
        "the withdrawn API is never called"
    );
    let record = w
        .svc
        .sender
        .message(&w.oa, resp["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(record["sent_by"], w.oa.as_str());

    uniform_in_the_old_form_is_refused(&w).await;
    uniform_naming_a_wrong_app_is_refused(&w).await;
    assert_eq!(w.delivered(&w.oa).await.len(), 1, "nothing more was sent");
    uniform_to_an_unknown_user_is_refused(&w).await;
}

/// The old form, on the mini program's route: refused before anything is sent.
async fn uniform_in_the_old_form_is_refused(w: &World) {
    for to in [json!({"openid": "mp-openid"}), json!({"unionid": "U-42"})] {
        let (status, resp) = w.send(&w.mp, uniform(to)).await;
        assert_eq!(
            (status, resp["error"]["field"].as_str()),
            (422, Some("type"))
        );
        let why = resp["error"]["message"].as_str().unwrap();
        assert!(
            why.contains(&format!("POST /v1/apps/{}/messages", w.oa))
                && why.contains(&format!("\"appid\": \"{}\"", w.mp)),
            "{why}"
        );
    }
}

/// A bare openid is ambiguous under uniform; `to.appid` belongs to uniform only, and must
/// name a mini program linked to this official account.
async fn uniform_naming_a_wrong_app_is_refused(w: &World) {
    let refusals = [
        (uniform(json!({"openid": "oa-openid"})), "to"),
        (
            template(json!({"openid": "mp-openid", "appid": w.mp})),
            "to.appid",
        ),
        (
            uniform(json!({"openid": "mp-openid", "appid": w.oa})),
            "to.appid",
        ),
        (
            uniform(json!({"openid": "mp-openid", "appid": random_appid()})),
            "to.appid",
        ),
        (
            uniform(json!({"openid": "mp-openid", "appid": "nope"})),
            "to.appid",
        ),
        (
            uniform(json!({"unionid": "U-42", "appid": w.mp})),
            "to.appid",
        ),
    ];
    for (body, field) in refusals {
        let (status, resp) = w.send(&w.oa, body.clone()).await;
        assert_eq!(
            (status, resp["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {resp}"
        );
    }
}

/// A mini program user with no unionid known, and a unionid with no official account.
async fn uniform_to_an_unknown_user_is_refused(w: &World) {
    let (status, resp) = w
        .send(&w.oa, uniform(json!({"openid": "stranger", "appid": w.mp})))
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (404, Some("unknown_recipient"))
    );
    w.link(&w.mp, "mp-only", "U-7").await;
    let (status, resp) = w.send(&w.oa, uniform(json!({"unionid": "U-7"}))).await;
    assert_eq!(status, 404);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has no account in app"),
        "{resp}"
    );
}

#[tokio::test]
async fn unionid_recipients_and_validation() {
    let w = world().await;
    w.user(&w.oa, "fan-u", json!({})).await;
    w.link(&w.oa, "fan-u", "U-1").await;
    let (status, _) = w.send(&w.oa, template(json!({"unionid": "U-1"}))).await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(&w.oa).await[0]["touser"], "fan-u");
    let (status, body) = w
        .send(&w.oa, template(json!({"unionid": "U-unknown"})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_recipient"))
    );
    // Refused before WeChat is called.
    let before = (
        w.calls("/cgi-bin/message/template/send"),
        w.calls("/cgi-bin/message/subscribe/send"),
    );
    let (status, body) = w
        .send(&w.mp, {
            let mut b = subscribe(json!({"openid": "x"}));
            b["data"]["phrase2"]["value"] = json!("abc");
            b
        })
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert_eq!(body["error"]["field"], "data.phrase2.value");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("phrase"),
        "{body}"
    );
    let (status, _) = w.send(&w.mp, template(json!({"openid": "x"}))).await;
    assert_eq!(status, 422, "template from a mini program");
    let (status, _) = w
        .send(&random_appid(), template(json!({"openid": "x"})))
        .await;
    assert_eq!(status, 404);
    let after = (
        w.calls("/cgi-bin/message/template/send"),
        w.calls("/cgi-bin/message/subscribe/send"),
    );
    assert_eq!(after, before, "invalid requests never reach WeChat");
}
