//! `openapi.yaml` against the real API: the same routes as template.yaml and the send
//! handler (every documented method routed, every other method 405 with the documented
//! `Allow`), and real answers — successes and errors, through the send Lambda's handler on
//! moto and the emulator — valid against the documented schemas.

mod know_before_send;
mod schema;
#[path = "../common/template_yaml.rs"]
mod template_yaml;

use schema::{check, documented, openapi, response_schema};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use template_yaml::deployed_routes;
use wxpush_send::{SendService, handle};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request};

struct Api {
    svc: SendService,
    spec: Value,
}

impl Api {
    /// The send handler with follower syncs and batches, and the spec to check it against.
    fn new(world: &TokenWorld) -> Api {
        let tokens = world.manager(TokenPolicy::default(), 2000);
        let followers = std::sync::Arc::new(wxpush_shared::followers::FollowerSync::new(
            tokens.clone(),
            world.state_store(),
            wxpush_tests::faults::RecordingQueue::new(),
            Default::default(),
        ));
        let svc = SendService::new(tokens, world.state_store(), Duration::from_millis(2000))
            .with_followers(followers);
        let batches = std::sync::Arc::new(wxpush_shared::batch::Batches::new(
            svc.sender.clone(),
            world.state_store(),
            wxpush_tests::faults::RecordingQueue::new(),
            Default::default(),
        ));
        Api {
            svc: svc.with_batches(batches),
            spec: openapi(),
        }
    }

    /// Calls the handler and checks the answer against the spec of `template` (the
    /// documented path); returns status and body.
    async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let resp = handle(
            &self.svc,
            apigw_v1_request(method, path, body.as_ref(), &[]),
        )
        .await;
        let status = resp.status().as_u16();
        let body: Value = if resp.body().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(resp.body().as_ref()).unwrap()
        };
        if status != 204 {
            let schema = response_schema(&self.spec, method, template, status);
            check(
                &self.spec,
                schema,
                &body,
                &format!("{method} {path} ({status})"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        (status, body)
    }

    /// [`Api::call`], which must answer `want`; returns the body.
    async fn expect(
        &self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let (status, answer) = self.call(method, template, path, body).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        answer
    }
}

#[tokio::test]
async fn the_spec_has_the_deployed_routes_and_every_route_is_served() {
    let spec = openapi();
    let ops = documented(&spec);
    assert_eq!(ops.len(), 20, "{ops:?}");
    assert_eq!(
        ops,
        deployed_routes(),
        "openapi.yaml and template.yaml list the same routes"
    );

    let (world, _, _) = TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), 2000),
        world.state_store(),
        Duration::from_millis(2000),
    );
    let unknown = "wx00000000000000ee";
    let mut methods: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, p) in &ops {
        methods.entry(p.clone()).or_default().insert(m.clone());
    }
    let concrete = |p: &str| {
        let id = if p.contains("/messages/") {
            "msg_0123456789abcdef0123456789abcdef"
        } else if p.contains("/batches/") {
            "bat_0123456789abcdef0123456789abcdef"
        } else {
            "TPL_1"
        };
        p.replace("{appid}", unknown)
            .replace("{unionid}", "u-none")
            .replace("{openid}", "o-none")
            .replace("{id}", id)
    };
    for (path, allowed) in &methods {
        let concrete_path = concrete(path);
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let body = (method == "POST").then(|| json!({}));
            let resp = handle(
                &svc,
                apigw_v1_request(method, &concrete_path, body.as_ref(), &[]),
            )
            .await;
            let status = resp.status().as_u16();
            let answer: Value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
            if allowed.contains(method) {
                assert_ne!(
                    answer["error"]["code"], "not_found",
                    "{method} {path}: {answer}"
                );
                assert_ne!(status, 405, "{method} {path}");
            } else {
                assert_eq!(status, 405, "{method} {path} is not documented: {answer}");
                let allow: BTreeSet<String> = resp.headers()["allow"]
                    .to_str()
                    .unwrap()
                    .split(", ")
                    .map(str::to_string)
                    .collect();
                assert_eq!(&allow, allowed, "Allow of {path}");
            }
        }
    }
    // Paths the spec does not have are 404.
    for path in ["/v1/apps/wx00000000000000ee/nothing", "/v1/other"] {
        let resp = handle(&svc, apigw_v1_request("GET", path, None, &[])).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas() {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let api = Api::new(&world);
    let e = &world.emulator;
    e.control(
        "/users",
        json!([
            {"appid": oa, "openid": "o-spec", "unionid": "u-spec"},
            {"appid": mp, "openid": "m-spec", "unionid": "u-spec"},
        ]),
    )
    .await;
    e.control(
        "/templates",
        json!({"appid": oa, "id": "TPL_SPEC", "kind": "template", "title": "t",
               "content": "{{thing1.DATA}}"}),
    )
    .await;
    let msg = json!({"type": "template", "to": {"openid": "o-spec"}, "template_id": "TPL_SPEC",
                     "data": {"thing1": {"value": "hello"}}});
    sends_and_reads(&api, &world, &oa, &mp, &msg).await;
    batches_and_template_changes(&api, &oa).await;
    recorded_events(&api, &world, &oa).await;
    errors(&api, &oa, &msg).await;
    know_before_send::answers(&api, &world, &oa).await;
}

/// A push recorded by the callback on the same table (the app's callback token is
/// `cbtoken`), then listed (forwarding on).
async fn recorded_events(api: &Api, world: &TokenWorld, oa: &str) {
    use wxpush_shared::callback::service::CallbackService;
    let callback = CallbackService::new(
        world.secrets(),
        world.state_store(),
        wxpush_tests::faults::RecordingQueue::new(),
    )
    .with_forwarding(true);
    let now = wxpush_shared::clock::now_unix();
    let query = wxpush_tests::signed_query("cbtoken", &now.to_string(), "7", &[]);
    let xml = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>o-spec</FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>"
    );
    callback
        .receive(oa, &query, xml.as_bytes(), now)
        .await
        .unwrap();
    let events = format!("/v1/apps/{oa}/events");
    let listed = api
        .expect("GET", "/v1/apps/{appid}/events", &events, None, 200)
        .await;
    assert_eq!(listed["events"][0]["event"], "subscribe", "{listed}");
    assert_eq!(listed["events"][0]["forwarding"]["state"], "pending");
}

/// Tokens, messages, sessions, users, follower syncs, templates and quota: each success in
/// its documented shape.
async fn sends_and_reads(api: &Api, world: &TokenWorld, oa: &str, mp: &str, msg: &Value) {
    let token = format!("/v1/apps/{oa}/token");
    api.expect("GET", "/v1/apps/{appid}/token", &token, None, 200)
        .await;
    let messages = format!("/v1/apps/{oa}/messages");
    let sent = api
        .expect(
            "POST",
            "/v1/apps/{appid}/messages",
            &messages,
            Some(msg.clone()),
            200,
        )
        .await;
    let id = sent["id"].as_str().unwrap();
    let message = format!("/v1/apps/{oa}/messages/{id}");
    api.expect("GET", "/v1/apps/{appid}/messages/{id}", &message, None, 200)
        .await;
    let listed = api
        .expect("GET", "/v1/apps/{appid}/messages", &messages, None, 200)
        .await;
    assert_eq!(listed["messages"][0]["id"], id);
    let bad_limit = format!("{messages}?limit=0");
    api.expect("GET", "/v1/apps/{appid}/messages", &bad_limit, None, 422)
        .await;
    let code = world
        .emulator
        .control("/login-codes", json!({"appid": mp, "openid": "m-spec"}))
        .await;
    let sessions = format!("/v1/apps/{mp}/sessions");
    let login = Some(json!({"code": code["code"]}));
    api.expect("POST", "/v1/apps/{appid}/sessions", &sessions, login, 200)
        .await;
    api.expect("GET", "/v1/users/{unionid}", "/v1/users/u-spec", None, 200)
        .await;
    let per_app = "/v1/apps/{appid}/users";
    let one = api
        .expect(
            "GET",
            per_app,
            &format!("/v1/apps/{mp}/users?unionid=u-spec"),
            None,
            200,
        )
        .await;
    assert_eq!(one["accounts"][0]["openid"], "m-spec");
    let none = format!("/v1/apps/{mp}/users?unionid=u-none");
    api.expect("GET", per_app, &none, None, 404).await;
    let no_unionid = format!("/v1/apps/{mp}/users");
    api.expect("GET", per_app, &no_unionid, None, 422).await;
    let sync = format!("/v1/apps/{oa}/followers/sync");
    let sync_template = "/v1/apps/{appid}/followers/sync";
    api.expect("POST", sync_template, &sync, Some(json!({})), 202)
        .await;
    api.expect("GET", sync_template, &sync, None, 200).await;
    let templates = format!("/v1/apps/{oa}/templates");
    api.expect("GET", "/v1/apps/{appid}/templates", &templates, None, 200)
        .await;
    let quota = format!("/v1/apps/{oa}/quota?path=/cgi-bin/message/template/send");
    api.expect("GET", "/v1/apps/{appid}/quota", &quota, None, 200)
        .await;
}

/// A batch created, read and cancelled; a template added and deleted.
async fn batches_and_template_changes(api: &Api, oa: &str) {
    let batch_body = json!({"message": {"type": "template", "template_id": "TPL_SPEC",
                                        "data": {"thing1": {"value": "x"}}},
                            "recipients": [{"openid": "o-spec"}, {"openid": "o-spec"}]});
    let batches = format!("/v1/apps/{oa}/batches");
    let batch = api
        .expect(
            "POST",
            "/v1/apps/{appid}/batches",
            &batches,
            Some(batch_body),
            202,
        )
        .await;
    let batch = format!("/v1/apps/{oa}/batches/{}", batch["id"].as_str().unwrap());
    let one_batch = "/v1/apps/{appid}/batches/{id}";
    api.expect("GET", one_batch, &batch, None, 200).await;
    api.expect("DELETE", one_batch, &batch, None, 200).await;
    let listed = api
        .expect("GET", "/v1/apps/{appid}/batches", &batches, None, 200)
        .await;
    assert_eq!(listed["batches"].as_array().unwrap().len(), 1, "{listed}");
    let templates = format!("/v1/apps/{oa}/templates");
    let short = json!({"template_id_short": "TM00015", "keyword_names": ["thing1"]});
    let added = api
        .expect(
            "POST",
            "/v1/apps/{appid}/templates",
            &templates,
            Some(short),
            201,
        )
        .await;
    let added = format!("/v1/apps/{oa}/templates/{}", added["id"].as_str().unwrap());
    api.expect(
        "DELETE",
        "/v1/apps/{appid}/templates/{id}",
        &added,
        None,
        204,
    )
    .await;
}

/// Errors, each in the documented shape.
async fn errors(api: &Api, oa: &str, msg: &Value) {
    let messages = format!("/v1/apps/{oa}/messages");
    let send = |body: Value, want: u16| {
        api.expect(
            "POST",
            "/v1/apps/{appid}/messages",
            &messages,
            Some(body),
            want,
        )
    };
    send(json!({"type": "fax"}), 422).await;
    let mut missing_key = msg.clone();
    missing_key["data"] = json!({"thing9": {"value": "x"}});
    send(missing_key, 422).await;
    let unknown_app = "/v1/apps/wx00000000000000ee/token";
    api.expect("GET", "/v1/apps/{appid}/token", unknown_app, None, 404)
        .await;
    let mut to_nobody = msg.clone();
    to_nobody["to"] = json!({"openid": "o-nobody"});
    let refused = send(to_nobody, 422).await;
    assert_eq!(refused["error"]["wechat_errcode"], 40003);
    let bad_batch = json!({"message": {"type": "template", "template_id": "TPL_SPEC", "data": {"thing1": {"value": "x"}}},
                           "recipients": [{"openid": ""}]});
    let batches = format!("/v1/apps/{oa}/batches");
    let bad = api
        .expect(
            "POST",
            "/v1/apps/{appid}/batches",
            &batches,
            Some(bad_batch),
            422,
        )
        .await;
    assert_eq!(bad["error"]["code"], "invalid_recipients");
}
