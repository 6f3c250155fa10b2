//! The send function: every route.

use crate::Stack;
use crate::policy::{check, check_resources, policy};
use crate::recorder::recorder;
use serde_json::{Value, json};
use wxpush_send::SendService;
use wxpush_shared::runtime::AwsDeps;
use wxpush_tests::apigw_v1_request;

/// `method path` through the send handler with `headers`, which must answer `want`; returns
/// the body.
async fn call_with(
    svc: &SendService,
    (method, path): (&str, String),
    body: Option<Value>,
    headers: &[(&str, &str)],
    want: u16,
) -> Value {
    let req = apigw_v1_request(method, &path, body.as_ref(), headers);
    let resp = wxpush_send::handle(svc, req).await;
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
    assert_eq!(status, want, "{body}");
    body
}

/// [`call_with`] without headers.
async fn call(svc: &SendService, route: (&str, String), body: Option<Value>, want: u16) -> Value {
    call_with(svc, route, body, &[], want).await
}

/// The token, a message sent and read, a subscription message, a login, the users' routes.
async fn messages_sessions_and_users(svc: &SendService, s: &Stack) {
    let (oa, mp) = (&s.oa, &s.mp);
    call(svc, ("GET", format!("/v1/apps/{oa}/token")), None, 200).await;
    let template = json!({"type": "template", "to": {"unionid": "u-iam"}, "template_id": "T1",
                          "data": {"thing1": {"value": "hi"}}});
    let sent = call_with(
        svc,
        ("POST", format!("/v1/apps/{oa}/messages")),
        Some(template.clone()),
        &[("idempotency-key", "iam-1")],
        200,
    )
    .await;
    let id = sent["id"].as_str().unwrap();
    call(
        svc,
        ("GET", format!("/v1/apps/{oa}/messages/{id}")),
        None,
        200,
    )
    .await;
    let subscribe = json!({"type": "subscribe", "to": {"openid": "m-iam"}, "template_id": "SUB1", "data": {"thing1": {"value": "x"}}});
    let messages = ("POST", format!("/v1/apps/{mp}/messages"));
    call(svc, messages, Some(subscribe), 200).await;
    let code = s
        .world
        .emulator
        .control("/login-codes", json!({"appid": mp, "openid": "m-iam"}))
        .await;
    let login = Some(json!({"code": code["code"]}));
    call(svc, ("POST", format!("/v1/apps/{mp}/sessions")), login, 200).await;
    call(svc, ("GET", "/v1/users/u-iam".into()), None, 200).await;
    let users = ("GET", format!("/v1/apps/{mp}/users?unionid=u-iam"));
    call(svc, users, None, 200).await;
}

/// A follower sync, a batch, the templates and quota, a template added and deleted, and a
/// second batch, cancelled before any worker runs.
async fn syncs_batches_and_templates(svc: &SendService, s: &Stack) {
    let oa = &s.oa;
    let sync = format!("/v1/apps/{oa}/followers/sync");
    call(svc, ("POST", sync.clone()), Some(json!({})), 202).await;
    call(svc, ("GET", sync), None, 200).await;
    let batches = format!("/v1/apps/{oa}/batches");
    let batch = json!({"message": {"type": "template", "template_id": "T1", "data": {"thing1": {"value": "hi"}}}, "recipients": [{"openid": "o-iam"}, {"unionid": "u-new"}]});
    let batch = call(svc, ("POST", batches.clone()), Some(batch), 202).await;
    let batch_id = batch["id"].as_str().unwrap().to_string();
    call(svc, ("GET", format!("{batches}/{batch_id}")), None, 200).await;
    let templates = format!("/v1/apps/{oa}/templates");
    call(svc, ("GET", templates.clone()), None, 200).await;
    let quota = format!("/v1/apps/{oa}/quota?path=/cgi-bin/message/template/send");
    call(svc, ("GET", quota), None, 200).await;
    s.world.emulator.control("/templates", json!({"appid": oa, "id": "T2", "kind": "template", "title": "t", "content": "{{thing1.DATA}}"})).await;
    let short = json!({"template_id_short": "TM00015", "keyword_names": ["thing1"]});
    let added = call(svc, ("POST", templates.clone()), Some(short), 201).await;
    let added = format!("{templates}/{}", added["id"].as_str().unwrap());
    call(svc, ("DELETE", added), None, 204).await;
    let cancelled = json!({"message": {"type": "template", "template_id": "T1", "data": {"thing1": {"value": "x"}}}, "recipients": [{"openid": "o-iam"}]});
    let cancelled = call(svc, ("POST", batches.clone()), Some(cancelled), 202).await;
    let cancelled = format!("{batches}/{}", cancelled["id"].as_str().unwrap());
    call(svc, ("DELETE", cancelled), None, 200).await;
}

pub async fn calls_what_its_policy_allows(s: &Stack) {
    let rec = recorder().await;
    let svc = wxpush_send::service(
        AwsDeps::build(&rec.sdk().await, &s.env),
        wxpush_shared::batch::BatchConfig::default(),
    );
    messages_sessions_and_users(&svc, s).await;
    syncs_batches_and_templates(&svc, s).await;
    check_resources(
        "send",
        &rec.resources(),
        &s.world.prefix,
        None,
        &s.queue_url,
        None,
        None,
    );
    check(
        "SendFunction",
        &policy("SendFunction", "\n  TokenRefreshFunction:"),
        &rec.uses(),
        &["kms:Decrypt", "kms:GenerateDataKey"],
    );
}
