//! The WeChat emulator's own rules (facts.md), checked over HTTP as a client sees them.

use serde_json::{Value, json};
use wxpush_shared::AppKind;
use wxpush_tests::{EmulatorServer, emulated};

const OA: &str = "wx00000000000000aa";
const MP: &str = "wx00000000000000bb";

async fn emulator() -> EmulatorServer {
    EmulatorServer::start(vec![
        emulated(OA, "oa-secret", AppKind::OfficialAccount),
        emulated(MP, "mp-secret", AppKind::MiniProgram),
    ])
    .await
}

async fn post(emu: &EmulatorServer, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}{path}", emu.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn stable(emu: &EmulatorServer, appid: &str, secret: &str, force: bool) -> Value {
    post(emu, "/cgi-bin/stable_token", json!({"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force})).await
}

async fn classic(emu: &EmulatorServer, appid: &str, secret: &str) -> Value {
    emu.get(&format!(
        "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
    ))
    .await
}

fn token(v: &Value) -> String {
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {v}"))
        .to_string()
}

async fn template(emu: &EmulatorServer, tok: &str, body: Value) -> Value {
    post(
        emu,
        &format!("/cgi-bin/message/template/send?access_token={tok}"),
        body,
    )
    .await
}

fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn classic_token_rotates_and_the_old_one_lives_five_minutes() {
    let emu = emulator().await;
    let first = token(&classic(&emu, OA, "oa-secret").await);
    let second = token(&classic(&emu, OA, "oa-secret").await);
    assert_ne!(first, second);
    let user = json!({"appid": OA, "openid": "o1", "subscribed": true});
    emu.control("/users", user).await;
    let msg = json!({"touser": "o1", "template_id": "T1", "data": {"thing1": {"value": "hi"}}});
    assert_eq!(
        errcode(&template(&emu, &first, msg.clone()).await),
        0,
        "old token still works"
    );
    emu.control("/clock", json!({"advance_secs": 301})).await;
    assert_eq!(
        errcode(&template(&emu, &first, msg.clone()).await),
        42001,
        "old token expired after the overlap"
    );
    assert_eq!(errcode(&template(&emu, &second, msg.clone()).await), 0);
    let third = token(&classic(&emu, OA, "oa-secret").await);
    let _fourth = token(&classic(&emu, OA, "oa-secret").await);
    assert_eq!(
        errcode(&template(&emu, &second, msg.clone()).await),
        40001,
        "two rotations ago: dead"
    );
    assert_eq!(errcode(&template(&emu, &third, msg.clone()).await), 0);
    emu.control("/clock", json!({"advance_secs": 7200})).await;
    assert_eq!(errcode(&template(&emu, &third, msg).await), 42001);
}

#[tokio::test]
async fn stable_token_keeps_its_token_and_rotates_in_the_last_five_minutes() {
    let emu = emulator().await;
    let a = stable(&emu, OA, "oa-secret", false).await;
    let b = stable(&emu, OA, "oa-secret", false).await;
    assert_eq!(token(&a), token(&b));
    assert!(b["expires_in"].as_i64().unwrap() <= 7200);
    emu.control("/clock", json!({"advance_secs": 6950})).await;
    let c = stable(&emu, OA, "oa-secret", false).await;
    assert_ne!(token(&c), token(&a), "rotated inside the last 300 s");
    assert!(c["expires_in"].as_i64().unwrap() >= 300);
    // Isolated from /cgi-bin/token.
    let classic_tok = token(&classic(&emu, OA, "oa-secret").await);
    assert_eq!(
        token(&stable(&emu, OA, "oa-secret", false).await),
        token(&c)
    );
    assert_ne!(classic_tok, token(&c));
    // force_refresh rotates, but not twice within 30 s.
    let f1 = token(&stable(&emu, OA, "oa-secret", true).await);
    assert_ne!(f1, token(&c));
    let f2 = token(&stable(&emu, OA, "oa-secret", true).await);
    assert_eq!(f1, f2, "second force within 30 s does not refresh");
    emu.control("/clock", json!({"advance_secs": 31})).await;
    assert_ne!(token(&stable(&emu, OA, "oa-secret", true).await), f1);
}

#[tokio::test]
async fn credentials_quota_and_invalidation() {
    let emu = emulator().await;
    assert_eq!(errcode(&stable(&emu, OA, "wrong", false).await), 40125);
    assert_eq!(errcode(&classic(&emu, OA, "wrong").await), 40125);
    assert_eq!(
        errcode(&stable(&emu, "wx0000000000000000", "x", false).await),
        40013
    );
    assert_eq!(
        errcode(
            &post(
                &emu,
                "/cgi-bin/stable_token",
                json!({"grant_type": "x", "appid": OA, "secret": "oa-secret"})
            )
            .await
        ),
        40002
    );
    emu.control(
        "/quotas",
        json!({"path": "/cgi-bin/token", "daily_limit": 3}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(errcode(&classic(&emu, OA, "oa-secret").await), 0);
    }
    assert_eq!(errcode(&classic(&emu, OA, "oa-secret").await), 45009);
    emu.control("/clock", json!({"advance_secs": 86_400})).await;
    let tok = token(&classic(&emu, OA, "oa-secret").await);
    emu.control("/users", json!({"appid": OA, "openid": "o1"}))
        .await;
    emu.control("/tokens/invalidate", json!({"appid": OA}))
        .await;
    let msg = json!({"touser": "o1", "template_id": "T1", "data": {"thing1": {"value": "hi"}}});
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), 40001);
    assert_eq!(errcode(&template(&emu, "", msg).await), 41001);
    let stats = emu.get("/sandbox/stats").await;
    assert_eq!(
        stats["/cgi-bin/token"], 6,
        "every call counts, refused ones too"
    );
    assert_eq!(stats["/cgi-bin/message/template/send"], 2);
}

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
    emu.control("/clock", json!({"advance_secs": 599})).await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    assert_eq!(
        template(&emu, &tok, msg("fan")).await["msgid"],
        first["msgid"]
    );
    emu.control("/clock", json!({"advance_secs": 1})).await;
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
    assert_eq!(messages.len(), 1, "delivered once despite the retry");
    assert_eq!(messages[0]["touser"], "fan");
    assert_eq!(messages[0]["body"]["data"]["thing1"]["value"], "到货");
    // An MP token cannot send OA template messages; uniform_send is withdrawn.
    let mp_tok = token(&stable(&emu, MP, "mp-secret", false).await);
    assert_eq!(errcode(&template(&emu, &mp_tok, msg("fan")).await), 48001);
    let uniform = post(
        &emu,
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
        errcode(&post(&emu, &path, msg.clone()).await),
        43101,
        "no grant yet"
    );
    emu.control(
        "/grants",
        json!({"appid": MP, "openid": "mpuser", "template_id": "TPL"}),
    )
    .await;
    assert_eq!(errcode(&post(&emu, &path, msg.clone()).await), 0);
    assert_eq!(
        errcode(&post(&emu, &path, msg).await),
        43101,
        "the grant was used up"
    );
    emu.control(
        "/grants",
        json!({"appid": MP, "openid": "mpuser", "template_id": "TPL"}),
    )
    .await;
    let bad = json!({"touser": "mpuser", "template_id": "TPL", "data": {"phrase2": {"value": "not chinese"}}});
    let answer = post(&emu, &path, bad).await;
    assert_eq!(errcode(&answer), 47003);
    assert!(
        answer["errmsg"]
            .as_str()
            .unwrap()
            .contains("data.phrase2.value")
    );
    let bad_state = json!({"touser": "mpuser", "template_id": "TPL", "miniprogram_state": "prod", "data": {"thing1": {"value": "x"}}});
    assert_eq!(errcode(&post(&emu, &path, bad_state).await), 47003);
}

#[tokio::test]
async fn customer_service_window_and_login_codes() {
    let emu = emulator().await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    let now = emu.emu.now();
    emu.control("/users", json!([{"appid": OA, "openid": "recent", "last_interaction": now - 60}, {"appid": OA, "openid": "old", "last_interaction": now - 49 * 3600}])).await;
    let path = format!("/cgi-bin/message/custom/send?access_token={tok}");
    let text = |to: &str| json!({"touser": to, "msgtype": "text", "text": {"content": "你好"}});
    assert_eq!(errcode(&post(&emu, &path, text("old")).await), 45015);
    for _ in 0..5 {
        assert_eq!(errcode(&post(&emu, &path, text("recent")).await), 0);
    }
    assert_eq!(errcode(&post(&emu, &path, text("recent")).await), 45047);
    assert_eq!(
        errcode(&post(&emu, &path, json!({"touser": "recent", "msgtype": "fax"})).await),
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
    let batch = post(
        &emu,
        &format!("/cgi-bin/user/info/batchget?access_token={tok}"),
        json!({"user_list": list}),
    )
    .await;
    assert_eq!(batch["user_info_list"].as_array().unwrap().len(), 100);
    assert_eq!(batch["user_info_list"][0]["unionid"], "u00000");
    let too_many: Vec<Value> = seen[..101].iter().map(|o| json!({"openid": o})).collect();
    assert_eq!(
        errcode(
            &post(
                &emu,
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

#[tokio::test]
async fn faults_errcode_status_and_late_answers() {
    let emu = emulator().await;
    let tok = token(&stable(&emu, OA, "oa-secret", false).await);
    emu.control("/users", json!({"appid": OA, "openid": "fan"}))
        .await;
    let path = "/cgi-bin/message/template/send";
    let msg = json!({"touser": "fan", "template_id": "T1", "data": {"thing1": {"value": "x"}}});
    emu.control("/faults", json!({"path": path, "errcode": -1, "times": 2}))
        .await;
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), -1);
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), -1);
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), 0);
    emu.control("/faults", json!({"path": path, "http_status": 503}))
        .await;
    let resp = reqwest::Client::new()
        .post(format!("{}{path}?access_token={tok}", emu.base))
        .json(&msg)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    // A slow WeChat (delay_ms) acts when the delay is over, even for a client that gave up.
    emu.control("/faults", json!({"path": path, "delay_ms": 800}))
        .await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let send = |c: reqwest::Client| {
        let url = format!("{}{path}?access_token={tok}", emu.base);
        let msg = msg.clone();
        async move { c.post(url).json(&msg).send().await }
    };
    assert!(send(client.clone()).await.unwrap_err().is_timeout());
    let count = |v: serde_json::Value| v.as_array().unwrap().len();
    assert_eq!(count(emu.get("/sandbox/messages").await), 1, "not yet");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(
        count(emu.get("/sandbox/messages").await),
        2,
        "the late call was delivered"
    );
    // after_delivery: delivered at once, answered late.
    emu.control(
        "/faults",
        json!({"path": path, "delay_ms": 800, "after_delivery": true}),
    )
    .await;
    assert!(send(client.clone()).await.unwrap_err().is_timeout());
    assert_eq!(
        count(emu.get("/sandbox/messages").await),
        3,
        "delivered before the answer"
    );
    // Faults on one path are used in the order given; after_delivery with a status: the
    // message goes out, the answer is the proxy's; 200 after delivery is unreadable.
    for fault in [
        json!({"path": path, "errcode": 45009}),
        json!({"path": path, "http_status": 502, "after_delivery": true}),
        json!({"path": path, "http_status": 200, "after_delivery": true}),
        json!({"path": path, "http_status": 503}),
    ] {
        emu.control("/faults", fault).await;
    }
    let plain = reqwest::Client::new();
    assert_eq!(errcode(&template(&emu, &tok, msg.clone()).await), 45009);
    let r = send(plain.clone()).await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(count(emu.get("/sandbox/messages").await), 4);
    let r = send(plain.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).is_err());
    assert_eq!(count(emu.get("/sandbox/messages").await), 5);
    assert_eq!(send(plain.clone()).await.unwrap().status(), 503);
    assert_eq!(
        count(emu.get("/sandbox/messages").await),
        5,
        "503 before delivery"
    );
    let resp = plain
        .post(format!("{}/sandbox/faults", emu.base))
        .json(&json!({"path": path, "errcode": -1, "after_delivery": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "an errcode means WeChat did nothing");
    // Bad controls are refused clearly.
    let resp = reqwest::Client::new()
        .post(format!("{}/sandbox/faults", emu.base))
        .json(&json!({"path": path, "errcode": 1, "delay_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = reqwest::Client::new()
        .post(format!("{}/sandbox/users", emu.base))
        .json(&json!({"appid": "wx1", "openid": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    emu.control("/reset", json!({})).await;
    assert_eq!(emu.get("/sandbox/messages").await, json!([]));
    assert_eq!(emu.get("/sandbox/stats").await, json!({}));
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
        async move { errcode(&post(emu, &path, body).await) }
    };
    // (token, msgtype, object, errcode): what facts.md §4.4 requires of each.
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

#[tokio::test]
async fn templates_and_quota_follow_facts() {
    let emu = emulator().await;
    let oa = token(&stable(&emu, OA, "oa-secret", false).await);
    let mp = token(&stable(&emu, MP, "mp-secret", false).await);
    emu.control(
        "/users",
        json!([{"appid": OA, "openid": "fan"}, {"appid": MP, "openid": "mpfan"}]),
    )
    .await;
    let data = json!({"thing1": {"value": "x"}});
    // No templates registered: any id is taken, as before.
    let send = json!({"touser": "fan", "template_id": "ANY", "data": data});
    assert_eq!(errcode(&template(&emu, &oa, send.clone()).await), 0);

    // Management endpoints of facts.md §9.
    let added = post(
        &emu,
        &format!("/cgi-bin/template/api_add_template?access_token={oa}"),
        json!({"template_id_short": "TM00015", "keyword_name_list": ["商品"]}),
    )
    .await;
    let tid = added["template_id"].as_str().unwrap().to_string();
    let list = emu
        .get(&format!(
            "/cgi-bin/template/get_all_private_template?access_token={oa}"
        ))
        .await;
    assert_eq!(list["template_list"][0]["template_id"], tid.as_str());
    assert_eq!(list["template_list"][0]["content"], "商品:{{thing1.DATA}}");
    // Now the app has templates: an id it does not have is 40037.
    assert_eq!(errcode(&template(&emu, &oa, send).await), 40037);
    let ok = json!({"touser": "fan", "template_id": tid, "data": data});
    assert_eq!(errcode(&template(&emu, &oa, ok).await), 0);
    assert_eq!(
        errcode(
            &post(
                &emu,
                &format!("/cgi-bin/template/api_add_template?access_token={oa}"),
                json!({"template_id_short": "TM00015"}),
            )
            .await
        ),
        47003,
        "keyword_name_list is required"
    );
    for i in 0..24 {
        emu.control("/templates", json!({"appid": OA, "id": format!("T{i}"), "kind": "template", "title": "t", "content": "{{thing1.DATA}}"})).await;
    }
    let full = post(
        &emu,
        &format!("/cgi-bin/template/api_add_template?access_token={oa}"),
        json!({"template_id_short": "TM00016", "keyword_name_list": ["a"]}),
    )
    .await;
    assert_eq!(errcode(&full), 45026);
    let del = format!("/cgi-bin/template/del_private_template?access_token={oa}");
    assert_eq!(
        errcode(&post(&emu, &del, json!({"template_id": tid})).await),
        0
    );
    assert_eq!(
        errcode(&post(&emu, &del, json!({"template_id": tid})).await),
        40037
    );

    // Subscribe templates: list, the keys required at send, delete.
    let added = post(
        &emu,
        &format!("/wxaapi/newtmpl/addtemplate?access_token={mp}"),
        json!({"tid": "1001", "kidList": [1, 2], "sceneDesc": "发货"}),
    )
    .await;
    let pri = added["priTmplId"].as_str().unwrap().to_string();
    let list = emu
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={mp}"))
        .await;
    assert_eq!(
        (
            list["data"][0]["priTmplId"].as_str(),
            list["data"][0]["type"].as_i64()
        ),
        (Some(pri.as_str()), Some(2))
    );
    emu.control(
        "/grants",
        json!({"appid": MP, "openid": "mpfan", "template_id": pri}),
    )
    .await;
    let sub = format!("/cgi-bin/message/subscribe/send?access_token={mp}");
    let missing = post(
        &emu,
        &sub,
        json!({"touser": "mpfan", "template_id": pri, "data": {"thing1": {"value": "x"}}}),
    )
    .await;
    assert_eq!(errcode(&missing), 47003);
    assert!(
        missing["errmsg"]
            .as_str()
            .unwrap()
            .contains("data.thing2.value")
    );
    let other = post(
        &emu,
        &sub,
        json!({"touser": "mpfan", "template_id": "NOPE", "data": {"thing1": {"value": "x"}}}),
    )
    .await;
    assert_eq!(errcode(&other), 40037);
    let full = json!({"touser": "mpfan", "template_id": pri, "data": {"thing1": {"value": "x"}, "thing2": {"value": "y"}}});
    assert_eq!(errcode(&post(&emu, &sub, full).await), 0);
    let del = format!("/wxaapi/newtmpl/deltemplate?access_token={mp}");
    assert_eq!(
        errcode(&post(&emu, &del, json!({"priTmplId": pri})).await),
        0
    );

    // Quota from the real counters (facts.md §6 limits).
    let quota_path = format!("/cgi-bin/openapi/quota/get?access_token={oa}");
    let quota = |cgi: &str| post(&emu, &quota_path, json!({"cgi_path": cgi}));
    // Three calls, the refused one (40037) included: a call is charged before it is judged.
    let q = quota("/cgi-bin/message/template/send").await;
    assert_eq!(
        q["quota"],
        json!({"daily_limit": 100000, "used": 3, "remain": 99997})
    );
    let q = quota("/cgi-bin/stable_token").await;
    assert_eq!(
        q["quota"],
        json!({"daily_limit": 500000, "used": 1, "remain": 499999})
    );
    assert_eq!(errcode(&quota("/cgi-bin/nope").await), 76021);
    let bad = post(
        &emu,
        "/sandbox/templates",
        json!({"appid": MP, "id": "x", "kind": "template", "title": "t", "content": "c"}),
    );
    assert!(
        bad.await["error"]["code"].is_string(),
        "mini programs have no template messages"
    );
}
