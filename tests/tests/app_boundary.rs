//! The per-app boundary under IAM. API Gateway authorises each `/v1` request by its route ARN
//! (`arn:aws:execute-api:{region}:{account}:{api}/$default/{METHOD}/{path}`), so a policy that
//! names one app's paths must keep its holder away from every other app's data. Here a
//! policy is evaluated as IAM does (`*` matches any run of characters, `/` included; no
//! statement → denied) in front of the real handler (moto + the emulator), for a service
//! scoped to a mini program `A` whose users also follow the official account `B`:
//! - the directory: `GET /v1/apps/A/users?unionid=U` answers A's account only; the cross-app
//!   `GET /v1/users/U` is its own route, which such a policy does not grant;
//! - `uniform`: posted to A it is refused (it would go out through B), so a message through B
//!   needs a grant on B's route.

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::clock::now_unix;
use wxpush_shared::store::{Attr, ItemKey, Op, attrs};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request_as};

const API: &str = "arn:aws:execute-api:cn-north-1:123456789012:a1b2c3d4e5/$default";

/// IAM's wildcard match: `*` any run of characters (`/` too), `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// An identity policy: `execute-api:Invoke` allowed on these resources, nothing else.
struct Policy(Vec<String>);

impl Policy {
    /// Whether IAM lets the holder invoke `method path` (the query is not part of the ARN).
    fn allows(&self, method: &str, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or(path);
        let arn = format!("{API}/{method}{path}");
        self.0.iter().any(|r| glob(r, &arn))
    }
}

/// Every explicit `/v1` route of template.yaml, as (METHOD, path template).
fn declared_routes() -> Vec<(String, String)> {
    let t =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let mut out = Vec::new();
    let mut method = None;
    for line in t.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("Method: ") {
            method = Some(m.to_string());
        } else if let Some(p) = line.strip_prefix("Path: ")
            && p.starts_with("/v1/")
            && let Some(m) = method.take()
        {
            out.push((m, p.to_string()));
        }
    }
    out
}

/// The declared route a request takes, if any (else API Gateway's catch-all).
fn route_of(method: &str, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    declared_routes().into_iter().find_map(|(m, p)| {
        let tpl: Vec<&str> = p.split('/').collect();
        let same = m == method
            && tpl.len() == segs.len()
            && tpl
                .iter()
                .zip(&segs)
                .all(|(t, s)| t.starts_with('{') || t == s);
        same.then_some(p)
    })
}

struct World {
    world: TokenWorld,
    svc: SendService,
    /// The mini program the service is scoped to, and the official account it is linked to.
    a: String,
    b: String,
}

const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/mp-service/i-1";

impl World {
    async fn new() -> World {
        let (world, b, a) = TokenWorld::with_oa_and_mp().await;
        let svc = SendService::new(
            world.manager(TokenPolicy::default(), 2000),
            world.state_store(),
            Duration::from_secs(2),
        );
        World { world, svc, a, b }
    }

    /// The person `U` with an account in each app, as the login and the callback record them.
    async fn person(&self, unionid: &str, a_openid: &str, b_openid: &str) {
        self.world
            .emulator
            .control(
                "/users",
                json!({"appid": self.b, "openid": b_openid, "unionid": unionid}),
            )
            .await;
        let s = |v: &str| Attr::S(v.to_string());
        let mut ops = Vec::new();
        for (appid, openid) in [(&self.a, a_openid), (&self.b, b_openid)] {
            ops.push(Op::Set {
                key: ItemKey::account(appid, openid),
                attrs: attrs([
                    ("appid", s(appid)),
                    ("openid", s(openid)),
                    ("unionid", s(unionid)),
                ]),
            });
            ops.push(Op::Set {
                key: ItemKey::union_account(unionid, appid),
                attrs: attrs([("appid", s(appid)), ("openid", s(openid))]),
            });
        }
        self.world
            .state_store()
            .record(&ops, now_unix())
            .await
            .unwrap();
    }

    /// The request as the holder of `policy` makes it: 403 from IAM unless allowed, else the
    /// handler's answer.
    async fn call(
        &self,
        policy: &Policy,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        if !policy.allows(method, path) {
            return (403, json!({"message": "Forbidden"}));
        }
        let req = apigw_v1_request_as(CALLER, method, path, body.as_ref(), &[]);
        let resp = handle(&self.svc, req).await;
        let body = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
        (resp.status().as_u16(), body)
    }
}

fn template_to(to: Value, kind: &str) -> Value {
    json!({"type": kind, "to": to, "template_id": "TPL_order",
           "data": {"thing1": {"value": "发货了"}}})
}

/// The world of both tests: the person `U-bound` in A and B, and a policy granting
/// everything of app A — the broadest per-app grant there is.
async fn scoped_world() -> (World, Policy) {
    let w = World::new().await;
    w.person("U-bound", "a-openid", "b-openid").await;
    let scoped = Policy(vec![format!("{API}/*/v1/apps/{}/*", w.a)]);
    (w, scoped)
}

/// Asserts that IAM refused each answer and none shows B's openid, and that nothing went out
/// through B.
async fn nothing_of_b(w: &World, answers: &[(u16, Value)]) {
    for (status, body) in answers {
        assert_eq!(*status, 403, "{body}");
        assert!(!body.to_string().contains("b-openid"), "{body}");
    }
    assert!(
        w.world.emulator.delivered(&w.b).await.is_empty(),
        "nothing went out through B"
    );
}

#[tokio::test]
async fn the_directory_answers_one_app_per_route() {
    let (w, scoped) = scoped_world().await;
    let (a, b) = (w.a.clone(), w.b.clone());
    // The per-app directory is a route of its own that the policy covers: A's account only.
    let users_a = format!("/v1/apps/{a}/users?unionid=U-bound");
    assert_eq!(
        route_of("GET", &users_a).as_deref(),
        Some("/v1/apps/{appid}/users"),
        "an explicit route, so IAM can scope it per app"
    );
    let (status, body) = w.call(&scoped, "GET", &users_a, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"unionid": "U-bound",
               "accounts": [{"appid": a, "openid": "a-openid", "subscribed": null}]})
    );
    let none = format!("/v1/apps/{a}/users?unionid=U-none");
    let (status, body) = w.call(&scoped, "GET", &none, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
    // B's accounts are out of reach: the per-app route names B (not granted), and the
    // cross-app route is a separate grant.
    let mut answers = vec![];
    for path in [
        format!("/v1/apps/{b}/users?unionid=U-bound"),
        "/v1/users/U-bound".to_string(),
    ] {
        answers.push(w.call(&scoped, "GET", &path, None).await);
    }
    nothing_of_b(&w, &answers).await;
    // The operator's own grant on the cross-app route reads the whole directory.
    let operator = Policy(vec![format!("{API}/GET/v1/users/*")]);
    let (status, all) = w.call(&operator, "GET", "/v1/users/U-bound", None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["accounts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn uniform_needs_a_grant_on_the_official_accounts_route() {
    let (w, scoped) = scoped_world().await;
    let (a, b) = (w.a.clone(), w.b.clone());
    let to_a = format!("/v1/apps/{a}/messages");
    let to_b = format!("/v1/apps/{b}/messages");
    // uniform posted to A would go out through B: refused, naming the form IAM scopes to B.
    let old_form = template_to(json!({"openid": "a-openid"}), "uniform");
    let (status, refused) = w.call(&scoped, "POST", &to_a, Some(old_form)).await;
    assert_eq!(status, 422, "{refused}");
    let why = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        why.contains(&to_b) && why.contains("\"appid\""),
        "{refused}"
    );
    let by_unionid = template_to(json!({"unionid": "U-bound"}), "uniform");
    let (status, _) = w.call(&scoped, "POST", &to_a, Some(by_unionid)).await;
    assert_eq!(status, 422);
    // Nor as a batch on A's route.
    let message = json!({"type": "uniform", "template_id": "TPL_order",
                         "data": {"thing1": {"value": "发货了"}}});
    let batch = json!({"message": message, "recipients": [{"openid": "a-openid", "appid": a}]});
    let batches_a = format!("/v1/apps/{a}/batches");
    let (status, refused) = w.call(&scoped, "POST", &batches_a, Some(batch)).await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (422, Some("type")),
        "{refused}"
    );
    // Every way through B is B's route, which the policy does not grant.
    let new_form = template_to(json!({"openid": "a-openid", "appid": a}), "uniform");
    let plain = template_to(json!({"openid": "b-openid"}), "template");
    let answers = vec![
        w.call(&scoped, "POST", &to_b, Some(new_form.clone())).await,
        w.call(&scoped, "POST", &to_b, Some(plain)).await,
    ];
    nothing_of_b(&w, &answers).await;
    // A service granted B's send routes sends the new form through B; a uniform batch there
    // names its mini program users the same way (a bare openid is refused with the batch).
    let oa_sender = Policy(vec![
        format!("{API}/POST{to_b}"),
        format!("{API}/POST/v1/apps/{b}/batches"),
    ]);
    let bare = json!({"message": message, "recipients": [{"openid": "a-openid"}]});
    let batches_b = format!("/v1/apps/{b}/batches");
    let (status, refused) = w.call(&oa_sender, "POST", &batches_b, Some(bare)).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("invalid_recipients")),
        "{refused}"
    );
    let (status, sent) = w.call(&oa_sender, "POST", &to_b, Some(new_form)).await;
    assert_eq!(status, 200, "{sent}");
    let delivered = w.world.emulator.delivered(&b).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["touser"], "b-openid");
}

#[test]
fn the_policy_evaluator_matches_as_iam_does() {
    let p = Policy(vec![format!("{API}/*/v1/apps/wx0000000000000001/*")]);
    assert!(p.allows("GET", "/v1/apps/wx0000000000000001/users?unionid=U"));
    assert!(p.allows("POST", "/v1/apps/wx0000000000000001/messages"));
    assert!(!p.allows("POST", "/v1/apps/wx0000000000000002/messages"));
    assert!(!p.allows("GET", "/v1/users/U"));
    assert!(glob("a*c", "a/b/c") && !glob("a?c", "a/bc") && glob("*", ""));
}
