//! `openapi.yaml` against the real API: the same routes as template.yaml and the send
//! handler (every documented method routed, every other method 405 with the documented
//! `Allow`), and real answers — successes and errors, through the send Lambda's handler on
//! moto and the emulator — valid against the documented schemas.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use wxpush_send::{SendService, handle};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{TokenWorld, apigw_v1_request};

/// openapi.yaml as JSON, read with PyYAML from the test venv (cfn-lint's dependency).
fn openapi() -> Value {
    let lint = std::env::var("WXPUSH_CFN_LINT")
        .expect("WXPUSH_CFN_LINT is not set: run the suite with `bash scripts/test`");
    let python = std::path::Path::new(&lint).with_file_name("python");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            path,
        ])
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("openapi.yaml is valid YAML")
}

/// (METHOD, path) of every documented operation.
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// (METHOD, path) of the send function's IAM-authorised routes in template.yaml.
fn deployed() -> BTreeSet<(String, String)> {
    let t =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let mut ops = BTreeSet::new();
    let lines: Vec<&str> = t.lines().map(str::trim).collect();
    for w in lines.windows(2) {
        if let (Some(m), Some(p)) = (w[0].strip_prefix("Method: "), w[1].strip_prefix("Path: "))
            && p.starts_with("/v1/")
            && m != "ANY"
        {
            ops.insert((m.to_string(), p.to_string()));
        }
    }
    ops
}

/// A schema node with `$ref`s followed.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut node = spec;
            for part in r.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            resolve(spec, node)
        }
        None => schema,
    }
}

/// Checks `value` against `schema` (the subset openapi.yaml uses: type, nullable, required,
/// properties, items, enum, oneOf, and the error code's snake_case pattern). Returns the first
/// mismatch as `path: why`.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(options) = schema["oneOf"].as_array() {
        return options
            .iter()
            .any(|o| check(spec, o, value, at).is_ok())
            .then_some(())
            .ok_or_else(|| format!("{at}: matches none of oneOf"));
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some(other) => return Err(format!("{at}: the test does not know type {other}")),
        None => true,
    };
    if !ok {
        return Err(format!("{at}: {value} is not a {}", schema["type"]));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if schema["pattern"] == "^[a-z][a-z0-9_]*$" {
        let s = value.as_str().unwrap_or("");
        let snake = s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !snake {
            return Err(format!("{at}: {s} is not snake_case"));
        }
    }
    if let Some(required) = schema["required"].as_array() {
        for r in required {
            let r = r.as_str().unwrap();
            if value.get(r).is_none() {
                return Err(format!("{at}: `{r}` is required but missing from {value}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (k, v) in obj {
            match props.get(k) {
                Some(p) => check(spec, p, v, &format!("{at}.{k}"))?,
                None if schema.get("additionalProperties").is_some() => check(
                    spec,
                    &schema["additionalProperties"],
                    v,
                    &format!("{at}.{k}"),
                )?,
                None => return Err(format!("{at}: `{k}` is not documented")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(spec, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The documented schema of `method path`'s answer with `status` (else `default`).
fn response_schema<'a>(spec: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let responses = &spec["paths"][path][method.to_lowercase()]["responses"];
    let r = responses
        .get(status.to_string())
        .unwrap_or_else(|| &responses["default"]);
    let r = resolve(spec, r);
    let schema = &r["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path}: status {status} has no documented schema"
    );
    schema
}

struct Api {
    svc: SendService,
    spec: Value,
}

impl Api {
    /// Calls the handler and checks the answer against the spec of `template` (the
    /// documented path); returns status, body and the `Allow` header.
    async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let resp = handle(
            &self.svc,
            apigw_v1_request(method, path, body.as_ref(), &[]),
        )
        .await;
        let status = resp.status().as_u16();
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
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
        (status, body, allow)
    }
}

#[tokio::test]
async fn the_spec_has_the_deployed_routes_and_every_route_is_served() {
    let spec = openapi();
    let ops = documented(&spec);
    assert_eq!(ops.len(), 15, "{ops:?}");
    assert_eq!(
        ops,
        deployed(),
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
    let api = Api {
        svc: svc.with_batches(batches),
        spec: openapi(),
    };
    let e = &world.emulator;
    e.control(
        "/users",
        json!({"appid": oa, "openid": "o-spec", "unionid": "u-spec"}),
    )
    .await;
    e.control(
        "/users",
        json!({"appid": mp, "openid": "m-spec", "unionid": "u-spec"}),
    )
    .await;
    e.control(
        "/templates",
        json!({"appid": oa, "id": "TPL_SPEC", "kind": "template", "title": "t",
               "content": "{{thing1.DATA}}"}),
    )
    .await;

    let (s, token, _) = api
        .call(
            "GET",
            "/v1/apps/{appid}/token",
            &format!("/v1/apps/{oa}/token"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{token}");
    let msg = json!({"type": "template", "to": {"openid": "o-spec"}, "template_id": "TPL_SPEC",
                     "data": {"thing1": {"value": "hello"}}});
    let (s, sent, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/messages",
            &format!("/v1/apps/{oa}/messages"),
            Some(msg.clone()),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    let id = sent["id"].as_str().unwrap();
    let (s, _, _) = api
        .call(
            "GET",
            "/v1/apps/{appid}/messages/{id}",
            &format!("/v1/apps/{oa}/messages/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let code = e
        .control("/login-codes", json!({"appid": mp, "openid": "m-spec"}))
        .await;
    let (s, who, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/sessions",
            &format!("/v1/apps/{mp}/sessions"),
            Some(json!({"code": code["code"]})),
        )
        .await;
    assert_eq!(s, 200, "{who}");
    let (s, _, _) = api
        .call("GET", "/v1/users/{unionid}", "/v1/users/u-spec", None)
        .await;
    assert_eq!(s, 200);
    let per_app = "/v1/apps/{appid}/users";
    let (s, one, _) = api
        .call(
            "GET",
            per_app,
            &format!("/v1/apps/{mp}/users?unionid=u-spec"),
            None,
        )
        .await;
    assert_eq!(
        (s, one["accounts"][0]["openid"].as_str()),
        (200, Some("m-spec"))
    );
    let (s, _, _) = api
        .call(
            "GET",
            per_app,
            &format!("/v1/apps/{mp}/users?unionid=u-none"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = api
        .call("GET", per_app, &format!("/v1/apps/{mp}/users"), None)
        .await;
    assert_eq!(s, 422);
    let (s, started, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/followers/sync",
            &format!("/v1/apps/{oa}/followers/sync"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 202, "{started}");
    let (s, _, _) = api
        .call(
            "GET",
            "/v1/apps/{appid}/followers/sync",
            &format!("/v1/apps/{oa}/followers/sync"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = api
        .call(
            "GET",
            "/v1/apps/{appid}/templates",
            &format!("/v1/apps/{oa}/templates"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = api
        .call(
            "GET",
            "/v1/apps/{appid}/quota",
            &format!("/v1/apps/{oa}/quota?path=/cgi-bin/message/template/send"),
            None,
        )
        .await;
    assert_eq!(s, 200);

    // Batches and template changes.
    let batch_body = json!({"message": {"type": "template", "template_id": "TPL_SPEC",
                                        "data": {"thing1": {"value": "x"}}},
                            "recipients": [{"openid": "o-spec"}, {"openid": "o-spec"}]});
    let (s, batch, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/batches",
            &format!("/v1/apps/{oa}/batches"),
            Some(batch_body),
        )
        .await;
    assert_eq!(s, 202, "{batch}");
    let id = batch["id"].as_str().unwrap();
    let (s, _, _) = api
        .call(
            "GET",
            "/v1/apps/{appid}/batches/{id}",
            &format!("/v1/apps/{oa}/batches/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = api
        .call(
            "DELETE",
            "/v1/apps/{appid}/batches/{id}",
            &format!("/v1/apps/{oa}/batches/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, added, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/templates",
            &format!("/v1/apps/{oa}/templates"),
            Some(json!({"template_id_short": "TM00015", "keyword_names": ["thing1"]})),
        )
        .await;
    assert_eq!(s, 201, "{added}");
    let (s, _, _) = api
        .call(
            "DELETE",
            "/v1/apps/{appid}/templates/{id}",
            &format!("/v1/apps/{oa}/templates/{}", added["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);

    // Errors, each in the documented shape.
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/messages",
            &format!("/v1/apps/{oa}/messages"),
            Some(json!({"type": "fax"})),
        )
        .await;
    assert_eq!(s, 422);
    let mut missing_key = msg.clone();
    missing_key["data"] = json!({"thing9": {"value": "x"}});
    let (s, err, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/messages",
            &format!("/v1/apps/{oa}/messages"),
            Some(missing_key),
        )
        .await;
    assert_eq!(s, 422, "{err}");
    let (s, _, _) = api
        .call(
            "GET",
            "/v1/apps/{appid}/token",
            "/v1/apps/wx00000000000000ee/token",
            None,
        )
        .await;
    assert_eq!(s, 404);
    let mut to_nobody = msg.clone();
    to_nobody["to"] = json!({"openid": "o-nobody"});
    let (s, refused, _) = api
        .call(
            "POST",
            "/v1/apps/{appid}/messages",
            &format!("/v1/apps/{oa}/messages"),
            Some(to_nobody),
        )
        .await;
    assert_eq!(s, 422, "{refused}");
    assert_eq!(refused["error"]["wechat_errcode"], 40003);
    let (s, bad, _) = api
        .call("POST", "/v1/apps/{appid}/batches", &format!("/v1/apps/{oa}/batches"),
              Some(json!({"message": {"type": "template", "template_id": "TPL_SPEC", "data": {"thing1": {"value": "x"}}},
                          "recipients": [{"openid": ""}]})))
        .await;
    assert_eq!(s, 422, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_recipients");
}
