//! Template management and the API quota.

use crate::client::*;
use serde_json::{Value, json};
use wxpush_tests::EmulatorServer;

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

    template_management_follows_facts(&emu, &oa, send).await;
    subscribe_templates_list_require_and_delete(&emu, &mp).await;
    quota_comes_from_the_real_counters(&emu, &oa).await;
}

/// Management endpoints of docs/wechat.md#templates-and-subscribe-notifications: once the app has templates, an id it does not have
/// is refused; adding needs keywords, and a full list refuses another; a deleted template is gone.
async fn template_management_follows_facts(emu: &EmulatorServer, oa: &str, send: Value) {
    let data = json!({"thing1": {"value": "x"}});
    let added = emu
        .post(
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
    assert_eq!(errcode(&template(emu, oa, send).await), 40037);
    let ok = json!({"touser": "fan", "template_id": tid, "data": data});
    assert_eq!(errcode(&template(emu, oa, ok).await), 0);
    assert_eq!(
        errcode(
            &emu.post(
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
    let full = emu
        .post(
            &format!("/cgi-bin/template/api_add_template?access_token={oa}"),
            json!({"template_id_short": "TM00016", "keyword_name_list": ["a"]}),
        )
        .await;
    assert_eq!(errcode(&full), 45026);
    let del = format!("/cgi-bin/template/del_private_template?access_token={oa}");
    assert_eq!(
        errcode(&emu.post(&del, json!({"template_id": tid})).await),
        0
    );
    assert_eq!(
        errcode(&emu.post(&del, json!({"template_id": tid})).await),
        40037
    );
}

/// Subscribe templates: list, the keys required at send, delete.
async fn subscribe_templates_list_require_and_delete(emu: &EmulatorServer, mp: &str) {
    let added = emu
        .post(
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
    let missing = emu
        .post(
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
    let other = emu
        .post(
            &sub,
            json!({"touser": "mpfan", "template_id": "NOPE", "data": {"thing1": {"value": "x"}}}),
        )
        .await;
    assert_eq!(errcode(&other), 40037);
    let full = json!({"touser": "mpfan", "template_id": pri, "data": {"thing1": {"value": "x"}, "thing2": {"value": "y"}}});
    assert_eq!(errcode(&emu.post(&sub, full).await), 0);
    let del = format!("/wxaapi/newtmpl/deltemplate?access_token={mp}");
    assert_eq!(errcode(&emu.post(&del, json!({"priTmplId": pri})).await), 0);
}

/// Quota from the real counters (docs/wechat.md#quotas-and-rate-limits limits).
async fn quota_comes_from_the_real_counters(emu: &EmulatorServer, oa: &str) {
    let quota_path = format!("/cgi-bin/openapi/quota/get?access_token={oa}");
    let quota = |cgi: &str| emu.post(&quota_path, json!({"cgi_path": cgi}));
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
    let bad = emu.post(
        "/sandbox/templates",
        json!({"appid": MP, "id": "x", "kind": "template", "title": "t", "content": "c"}),
    );
    assert!(
        bad.await["error"]["code"].is_string(),
        "mini programs have no template messages"
    );
}
