//! IAM and the router agree on what a path names. API Gateway authorises a `/v1` request
//! against its route ARN (`arn:…:execute-api:{region}:{account}:{api}/$default/GET/v1/apps/
//! {appid}/token`), built from the path as the caller sent it; the `ANY /v1/{proxy+}` route
//! forwards any path to the send function. So a path that IAM sees as another resource
//! (a trailing `/`, `//`, `%2F`, `.` and `..` segments, a backslash, other letter case) must
//! not be served as the route an IAM policy denies.
//!
//! The check: a small evaluator of `execute-api:Invoke` Allow/Deny statements with IAM's `*`
//! and `?` wildcards (case-sensitive, `*` crossing `/`), a set of policies (the README's
//! per-app example, a `Deny GET /v1/apps/*/token`, a Deny of each route), and every variant
//! of every route's path through the send Lambda's handler as a real API Gateway v2 event.
//! For each variant IAM denies it (under every ARN API Gateway might build: the path as sent
//! or percent-decoded) or the handler refuses it as an unknown route — never "IAM allows,
//! the handler serves a route the policy denies".

#[path = "common/template_yaml.rs"]
mod template_yaml;

use serde_json::{Value, json};
use std::collections::BTreeSet;

use std::sync::Arc;
use std::time::Duration;
use template_yaml::deployed_routes;
use wxpush_send::{SendService, handle};
use wxpush_shared::AppKind;
use wxpush_shared::batch::{BatchConfig, Batches};
use wxpush_shared::store::{EmbeddedStateStore, StateStore};
use wxpush_tests::faults::RecordingQueue;
use wxpush_tests::{EmulatorServer, apigw_v1_request, embedded_token_manager, emulated, memory_db};

const APP: &str = "wx0123456789abcdef";
const API: &str = "arn:aws-cn:execute-api:cn-north-1:123456789012:abcdef1234/$default";

/// One statement of an identity policy on `execute-api:Invoke`.
struct Statement {
    allow: bool,
    resources: Vec<String>,
}

/// IAM's wildcard match: `*` any run of characters (`/` included), `?` any one; case-sensitive.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// IAM's evaluation: an explicit Deny wins, else an Allow is needed.
fn iam_allows(policy: &[Statement], arn: &str) -> bool {
    let hit = |allow: bool| {
        policy.iter().filter(|s| s.allow == allow).any(|s| {
            s.resources
                .iter()
                .any(|r| glob(r.as_bytes(), arn.as_bytes()))
        })
    };
    !hit(false) && hit(true)
}

fn arn(method: &str, path: &str) -> String {
    format!("{API}/{method}{path}")
}

/// `%XX` decoded (what API Gateway might put in the ARN instead of the path as sent).
fn percent_decoded(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path IAM might see as another resource than the route it names: `path` (the route
/// `template` with its ids) rewritten in every way a client can send it, none of them `path`
/// itself. Letter case and percent-encoding change the route's words and the appid, never
/// an opaque id (`ab` and `AB` are two unionids).
fn variants(template: &str, path: &str, others: &[String]) -> BTreeSet<String> {
    let segs: Vec<&str> = path[1..].split('/').collect();
    let opaque: Vec<bool> = template[1..]
        .split('/')
        .map(|t| t == "{id}" || t == "{unionid}" || t == "{openid}")
        .collect();
    let join = |s: &[String]| format!("/{}", s.join("/"));
    let owned: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
    let mut out = BTreeSet::new();
    for tail in ["/", "//", "/.", "/./", "/x/..", ";", "%2F", "%20", "."] {
        out.insert(format!("{path}{tail}"));
    }
    out.insert(format!("/{path}"));
    out.insert(path.to_uppercase());
    for i in 0..segs.len() {
        // A separator before segment i, written otherwise.
        if i > 0 {
            for sep in [
                "//",
                "%2F",
                "%2f",
                "\\",
                "/./",
                "/%2e/",
                "/x/../",
                "/x/%2e%2e/",
                "/%2E%2E/",
            ] {
                out.insert(format!(
                    "/{}{sep}{}",
                    segs[..i].join("/"),
                    segs[i..].join("/")
                ));
            }
        }
        // The segment in other letter case, and with a letter percent-encoded.
        if opaque[i] {
            continue;
        }
        let mut upper = owned.clone();
        upper[i] = segs[i].to_uppercase();
        out.insert(join(&upper));
        if let Some((at, c)) = segs[i]
            .char_indices()
            .find(|(_, c)| c.is_ascii_alphabetic())
        {
            let mut enc = owned.clone();
            enc[i] = format!("{}%{:02X}{}", &segs[i][..at], c as u32, &segs[i][at + 1..]);
            out.insert(join(&enc));
        }
    }
    // Through another route's path and back up (`/v1/apps/A/messages/{id}/../../token`).
    for other in others {
        let o: Vec<&str> = other[1..].split('/').collect();
        let common = o.iter().zip(&segs).take_while(|(a, b)| a == b).count();
        if common == o.len() {
            continue;
        }
        let ups = vec![".."; o.len() - common].join("/");
        let rest = segs[common..].join("/");
        let v = format!("{other}/{ups}/{rest}");
        out.insert(v.trim_end_matches('/').to_string());
    }
    out.remove(path);
    out
}

/// The handler refused the request before serving any route: no such route (404
/// `not_found`), an app it does not know (404 `unknown_app`), a template id of the wrong
/// shape (404, "not a WeChat template id"), or another method (405).
fn refused(status: u16, body: &Value) -> bool {
    let code = body["error"]["code"].as_str().unwrap_or("");
    let message = body["error"]["message"].as_str().unwrap_or("");
    status == 405
        || (status == 404
            && (matches!(code, "not_found" | "unknown_app")
                || message.ends_with(": not a WeChat template id")))
}

/// The policies under test: the README's per-app example, a Deny of every app's token, a
/// Deny of everything of one app, and a Deny of each route alone.
fn policies(routes: &[(String, String)]) -> Vec<(String, Vec<Statement>)> {
    let allow = |r: Vec<String>| Statement {
        allow: true,
        resources: r,
    };
    let deny = |r: Vec<String>| Statement {
        allow: false,
        resources: r,
    };
    let mut out = vec![
        (
            "the README's per-app grant".to_string(),
            vec![allow(vec![
                arn("POST", &format!("/v1/apps/{APP}/messages")),
                arn("GET", &format!("/v1/apps/{APP}/messages/*")),
                arn("GET", &format!("/v1/apps/{APP}/token")),
            ])],
        ),
        (
            "everything but tokens".to_string(),
            vec![
                allow(vec![format!("{API}/*/v1/*")]),
                deny(vec![arn("GET", "/v1/apps/*/token")]),
            ],
        ),
        (
            "everything but one app".to_string(),
            vec![
                allow(vec![format!("{API}/*")]),
                deny(vec![format!("{API}/*/v1/apps/{APP}/*")]),
            ],
        ),
    ];
    for (m, p) in routes {
        out.push((
            format!("everything but {m} {p}"),
            vec![allow(vec![format!("{API}/*")]), deny(vec![arn(m, p)])],
        ));
    }
    out
}

/// The send service over the emulator and an embedded store, with a message and a batch of
/// `APP` recorded, so that every route, served, answers something other than "no route".
async fn service(emulator: &EmulatorServer) -> (SendService, String, String) {
    let db = memory_db();
    let tokens = embedded_token_manager(emulator, APP, "route-secret", db.clone());
    let store: Arc<dyn StateStore> = Arc::new(EmbeddedStateStore::new(db));
    let svc = SendService::new(tokens, store.clone(), Duration::from_secs(2));
    let batches = Arc::new(Batches::new(
        svc.sender.clone(),
        store,
        RecordingQueue::new(),
        BatchConfig::default(),
    ));
    let svc = svc.with_batches(batches);
    emulator
        .control("/users", json!({"appid": APP, "openid": "fan"}))
        .await;
    let message = json!({"type": "template", "to": {"openid": "fan"}, "template_id": "T",
                         "data": {"thing1": {"value": "hi"}}});
    let (status, sent) = call(
        &svc,
        "POST",
        &format!("/v1/apps/{APP}/messages"),
        Some(&message),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let batch = json!({"message": {"type": "template", "template_id": "T",
                                   "data": {"thing1": {"value": "hi"}}},
                       "recipients": [{"openid": "fan"}]});
    let (status, created) = call(
        &svc,
        "POST",
        &format!("/v1/apps/{APP}/batches"),
        Some(&batch),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    (svc, id(&sent), id(&created))
}

async fn call(svc: &SendService, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let resp = handle(svc, apigw_v1_request(method, path, body, &[])).await;
    let answer = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
    (resp.status().as_u16(), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_iam_allows_is_served_as_a_route_the_policy_denies() {
    let emulator = EmulatorServer::start(vec![emulated(
        APP,
        "route-secret",
        AppKind::OfficialAccount,
    )])
    .await;
    let (svc, message_id, batch_id) = service(&emulator).await;
    let templates: Vec<String> = deployed_routes().into_iter().map(|(_, p)| p).collect();
    let routes: Vec<(String, String)> = deployed_routes()
        .into_iter()
        .map(|(m, p)| {
            let id = if p.contains("/messages/") {
                message_id.clone()
            } else if p.contains("/batches/") {
                batch_id.clone()
            } else {
                "TPL_1".to_string()
            };
            let concrete = p
                .replace("{appid}", APP)
                .replace("{unionid}", "u-none")
                .replace("{openid}", "fan")
                .replace("{id}", &id);
            (m, concrete)
        })
        .collect();
    assert_eq!(routes.len(), 20, "{routes:?}");
    let body = |m: &str| (m == "POST").then(|| json!({}));
    // Served as it is, every route answers something else than a refusal (else this test
    // could not tell a refusal from a served request).
    for (m, p) in &routes {
        let (status, answer) = call(&svc, m, p, body(m).as_ref()).await;
        assert!(!refused(status, &answer), "{m} {p}: {status} {answer}");
    }
    let paths: Vec<String> = routes.iter().map(|(_, p)| p.clone()).collect();
    // Every variant of every route, answered once (methods: the route's, lower case, HEAD).
    let mut answers: Vec<Vec<(String, String, u16, Value)>> = Vec::new();
    for ((m, p), template) in routes.iter().zip(&templates) {
        let mut of_route = Vec::new();
        for v in variants(template, p, &paths).into_iter().chain([p.clone()]) {
            for method in [m.clone(), m.to_lowercase(), "HEAD".to_string()] {
                if v == *p && method == *m {
                    continue;
                }
                let (status, answer) = call(&svc, &method, &v, body(m).as_ref()).await;
                of_route.push((method, v.clone(), status, answer));
            }
        }
        answers.push(of_route);
    }
    let mut bypasses = Vec::new();
    let mut checked = 0;
    for (name, policy) in policies(&routes) {
        for ((m, p), of_route) in routes.iter().zip(&answers) {
            if iam_allows(&policy, &arn(m, p)) {
                continue;
            }
            // Route (m, p) is denied: no way of writing it may be allowed and served.
            for (method, v, status, answer) in of_route {
                checked += 1;
                let arns = [arn(method, v), arn(method, &percent_decoded(v))];
                if arns.iter().any(|a| iam_allows(&policy, a)) && !refused(*status, answer) {
                    bypasses.push(format!("{name}: {method} {v} → {status} {answer}"));
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} cases");
    assert!(
        bypasses.is_empty(),
        "IAM allows these and the handler serves a denied route ({} of {checked}):\n{}",
        bypasses.len(),
        bypasses.join("\n")
    );
}

#[test]
fn the_policy_evaluator_follows_iam() {
    assert!(glob(b"a*c", b"abbc"));
    assert!(glob(b"a*", b"a/b/c"), "* crosses /");
    assert!(glob(b"*", b""));
    assert!(!glob(b"a*c", b"abcd"));
    assert!(glob(b"a?c", b"abc"));
    assert!(!glob(b"a?c", b"ac"));
    assert!(!glob(b"ABC", b"abc"), "case-sensitive");
    assert!(glob(b"a**b*", b"aXbY"));
    let policy = [
        Statement {
            allow: true,
            resources: vec!["x/*".into()],
        },
        Statement {
            allow: false,
            resources: vec!["x/GET/t".into()],
        },
    ];
    assert!(iam_allows(&policy, "x/GET/u"));
    assert!(!iam_allows(&policy, "x/GET/t"), "an explicit Deny wins");
    assert!(
        iam_allows(&policy, "x/GET/t/"),
        "the Deny names the path exactly"
    );
    assert!(!iam_allows(&policy, "y/GET/u"), "nothing allows it");
    assert_eq!(percent_decoded("/a%2Fb%2f%zz%4"), "/a/b/%zz%4");
}
