//! Template, subscribe and customer-service messages, and mini program login codes.

use crate::client::*;
use serde_json::{Value, json};

#[tokio::test]
async fn template_messages_follow_wechats_rules() {
    let emu = emulator().await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    emu.control("/users", json!([{"appid": OA, "openid": "fan"}, {"appid": OA, "openid": "gone", "subscribed": false}])).await;
    let msg = |to: &str| json!({"touser": to, "template_id": "T1", "client_msg_id": format!("m-{to}"), "data": {"thing1": {"value": "到货"}}});
    let first = template(&emu, &tok, msg("fan")).await;
    assert_eq!(errcode(&first), 0);
    let again = template(&emu, &tok, msg("fan")).await;
    assert_eq!(
        again["msgid"], first["msgid"],
        "same client_msg_id: same msgid"
    );
    assert_eq!(
        emu.delivered(OA).await.len(),
        1,
        "deduped within the window"
    );
    // Another follower with the same client_msg_id is another message.
    emu.control("/users", json!({"appid": OA, "openid": "fan2"}))
        .await;
    let mut other = msg("fan2");
    other["client_msg_id"] = json!("m-fan");
    assert_ne!(template(&emu, &tok, other).await["msgid"], first["msgid"]);
    // WeChat forgets a client_msg_id after 10 minutes: a resend then is delivered again.
    emu.control("/clock", json!({"advance_secs": 590})).await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    assert_eq!(
        template(&emu, &tok, msg("fan")).await["msgid"],
        first["msgid"]
    );
    emu.control("/clock", json!({"advance_secs": 10})).await;
    let late = template(&emu, &tok, msg("fan")).await;
    assert_eq!(errcode(&late), 0);
    assert_ne!(
        late["msgid"], first["msgid"],
        "past the window: a second delivery"
    );
    assert_eq!(emu.delivered(OA).await.len(), 3);
    assert_eq!(errcode(&template(&emu, &tok, msg("gone")).await), 43004);
    assert_eq!(errcode(&template(&emu, &tok, msg("nobody")).await), 40003);
    assert_eq!(
        errcode(
            &template(
                &emu,
                &tok,
                json!({"touser": "fan", "template_id": "", "data": {}})
            )
            .await
        ),
        40037
    );
    assert_eq!(
        errcode(
            &template(
                &emu,
                &tok,
                json!({"touser": "fan", "template_id": "T1", "data": {"thing1": {}}})
            )
            .await
        ),
        47003
    );
    let messages = emu.get(&format!("/sandbox/messages?appid={OA}")).await;
    let messages = messages.as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "fan once within the window, fan2, fan again after it"
    );
    assert_eq!(messages[0]["touser"], "fan");
    assert_eq!(messages[0]["body"]["data"]["thing1"]["value"], "到货");
    // An MP token cannot send OA template messages; uniform_send is withdrawn.
    let mp_tok = token(&stable(&emu, MP, "mp-secret", false).await);
    assert_eq!(errcode(&template(&emu, &mp_tok, msg("fan")).await), 48001);
    let uniform = emu
        .post(
            &format!("/cgi-bin/message/wxopen/template/uniform_send?access_token={mp_tok}"),
            json!({"touser": "x"}),
        )
        .await;
    assert_eq!(errcode(&uniform), 45109);
}

#[tokio::test]
async fn subscribe_grants_are_one_time_and_values_are_checked() {
    let emu = emulator().await;
    let tok = token(&stable(&emu, MP, "mp-secret", false).await);
    emu.control(
        "/users",
        json!({"appid": MP, "openid": "mpuser", "unionid": "u1"}),
    )
    .await;
    let path = format!("/cgi-bin/message/subscribe/send?access_token={tok}");
    let msg = json!({"touser": "mpuser", "template_id": "TPL", "page": "pages/index?x=1", "data": {"thing1": {"value": "ok"}, "phrase2": {"value": "配送中"}}});
    assert_eq!(
        errcode(&emu.post(&path, msg.clone()).await),
        43101,
        "no grant yet"
    );
    emu.control(
        "/grants",
        json!({"appid": MP, "openid": "mpuser", "template_id": "TPL"}),
    )
    .await;
    assert_eq!(errcode(&emu.post(&path, msg.clone()).await), 0);
    assert_eq!(
        errcode(&emu.post(&path, msg).await),
        43101,
        "the grant was used up"
    );
    emu.control(
        "/grants",
        json!({"appid": MP, "openid": "mpuser", "template_id": "TPL"}),
    )
    .await;
    let bad = json!({"touser": "mpuser", "template_id": "TPL", "data": {"phrase2": {"value": "not chinese"}}});
    let answer = emu.post(&path, bad).await;
    assert_eq!(errcode(&answer), 47003);
    assert!(
        answer["errmsg"]
            .as_str()
            .unwrap()
            .contains("data.phrase2.value")
    );
    let bad_state = json!({"touser": "mpuser", "template_id": "TPL", "miniprogram_state": "prod", "data": {"thing1": {"value": "x"}}});
    assert_eq!(errcode(&emu.post(&path, bad_state).await), 47003);
}

#[tokio::test]
async fn customer_service_window_and_login_codes() {
    let emu = emulator().await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    let now = emu.emu.now();
    emu.control("/users", json!([{"appid": OA, "openid": "recent", "last_interaction": now - 60}, {"appid": OA, "openid": "old", "last_interaction": now - 49 * 3600}])).await;
    let path = format!("/cgi-bin/message/custom/send?access_token={tok}");
    let text = |to: &str| json!({"touser": to, "msgtype": "text", "text": {"content": "你好"}});
    assert_eq!(errcode(&emu.post(&path, text("old")).await), 45015);
    for _ in 0..5 {
        assert_eq!(errcode(&emu.post(&path, text("recent")).await), 0);
    }
    assert_eq!(errcode(&emu.post(&path, text("recent")).await), 45047);
    assert_eq!(
        errcode(
            &emu.post(&path, json!({"touser": "recent", "msgtype": "fax"}))
                .await
        ),
        40008
    );

    emu.control(
        "/users",
        json!({"appid": MP, "openid": "mpuser", "unionid": "u9"}),
    )
    .await;
    let code = emu
        .control("/login-codes", json!({"appid": MP, "openid": "mpuser"}))
        .await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let login = |code: &str, secret: &str| {
        format!(
            "/sns/jscode2session?appid={MP}&secret={secret}&js_code={code}&grant_type=authorization_code"
        )
    };
    assert_eq!(errcode(&emu.get(&login(&code, "wrong")).await), 40125);
    let ok = emu.get(&login(&code, "mp-secret")).await;
    assert_eq!(
        (ok["openid"].as_str(), ok["unionid"].as_str()),
        (Some("mpuser"), Some("u9"))
    );
    assert!(ok["session_key"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(
        errcode(&emu.get(&login(&code, "mp-secret")).await),
        40029,
        "codes are single-use"
    );
    assert_eq!(errcode(&emu.get(&login("bogus", "mp-secret")).await), 40029);
}

#[tokio::test]
async fn custom_send_checks_each_msgtype_shape() {
    let emu = emulator().await;
    let now = emu.emu.now();
    let oa = token(&stable(&emu, OA, "oa-secret", false).await);
    let mp = token(&stable(&emu, MP, "mp-secret", false).await);
    let users: Vec<Value> = (0..12)
        .flat_map(|i| {
            [OA, MP].map(
                |a| json!({"appid": a, "openid": format!("u{i}"), "last_interaction": now - 60}),
            )
        })
        .collect();
    emu.control("/users", json!(users)).await;
    let send = |tok: &str, to: &str, msgtype: &str, object: Value| {
        let path = format!("/cgi-bin/message/custom/send?access_token={tok}");
        let mut body = json!({"touser": to, "msgtype": msgtype});
        body[msgtype] = object;
        let emu = &emu;
        async move { errcode(&emu.post(&path, body).await) }
    };
    // (token, msgtype, object, errcode): what docs/wechat.md#customer-service-messages requires of each.
    let cases = [
        (&oa, "voice", json!({"media_id": "M"}), 0),
        (&oa, "voice", json!({}), 40007),
        (&oa, "video", json!({"media_id": "M"}), 40007),
        (
            &oa,
            "music",
            json!({"hqmusicurl": "https://a", "thumb_media_id": "T"}),
            47001,
        ),
        (&oa, "mpnewsarticle", json!({"article_id": "A"}), 0),
        (&oa, "msgmenu", json!({"list": [{"id": "1"}]}), 47001),
        (&oa, "wxcard", json!({}), 40056),
        (
            &oa,
            "link",
            json!({"title": "t", "description": "d", "url": "https://a", "thumb_url": "https://b"}),
            40008,
        ),
        (
            &oa,
            "miniprogrampage",
            json!({"title": "t", "pagepath": "p", "thumb_media_id": "T"}),
            47001,
        ),
        (&mp, "voice", json!({"media_id": "M"}), 40008),
        (
            &mp,
            "link",
            json!({"title": "t", "url": "https://a", "thumb_url": "https://b"}),
            47001,
        ),
        (
            &mp,
            "miniprogrampage",
            json!({"title": "t", "pagepath": "p", "thumb_media_id": "T"}),
            0,
        ),
    ];
    for (i, (tok, msgtype, object, want)) in cases.into_iter().enumerate() {
        let got = send(tok, &format!("u{i}"), msgtype, object.clone()).await;
        assert_eq!(got, want, "{msgtype} {object}");
    }
    assert_eq!(emu.delivered(OA).await.len(), 2);
    assert_eq!(emu.delivered(MP).await.len(), 1);
}
