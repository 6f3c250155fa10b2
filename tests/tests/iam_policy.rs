//! template.yaml's IAM policies against what the code does. Each function's clients are built
//! exactly as its `main` builds them (`CallbackDeps::build`, `AwsDeps::build`, the send
//! service, the worker's runner), pointed at a recording proxy in front of moto; a scenario
//! drives every route, event and job kind of that function; then every recorded AWS operation
//! (`TransactWriteItems` as the per-item actions IAM checks, with the item's partition key) must
//! be allowed by that function's policy, and every action and key prefix the policy allows must
//! have been used — exactly what the code calls, no more.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wxpush_shared::clock::now_unix;
use wxpush_shared::queue::Job;
use wxpush_shared::runtime::{AwsDeps, CallbackDeps, RuntimeEnv};
use wxpush_tests::{TokenWorld, apigw_v1_request, signed_query};

/// (IAM action, partition key when the operation names an item or a partition).
type Use = (String, Option<String>);

/// A proxy in front of moto that records the AWS operations going through it.
struct Recorder {
    url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn recorder() -> Recorder {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("run with `bash scripts/test`");
    let calls: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let c = calls.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (c, http, moto) = (c.clone(), http.clone(), moto.clone());
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                c.lock()
                    .unwrap()
                    .push((target, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let mut req = http.request(
                    method,
                    format!(
                        "{moto}{}",
                        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
                    ),
                );
                for (k, v) in &headers {
                    if k != "host" && k != "content-length" {
                        req = req.header(k, v);
                    }
                }
                let resp = req.body(body).send().await.unwrap();
                let status = resp.status();
                let mut out = axum::http::Response::builder().status(status.as_u16());
                for (k, v) in resp.headers() {
                    if k != "content-length" && k != "transfer-encoding" {
                        out = out.header(k.as_str(), v.as_bytes());
                    }
                }
                out.body(axum::body::Body::from(resp.bytes().await.unwrap()))
                    .unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Recorder { url, calls, server }
}

impl Recorder {
    /// The resources the recorded calls name, beyond the table: (operation, resource) for
    /// SSM parameter names and paths, SQS queue URLs and EventBridge buses.
    fn resources(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (target, body) in self.calls.lock().unwrap().iter() {
            let op = target.rsplit('.').next().unwrap_or("").to_string();
            let mut add = |v: &Value| {
                if let Some(s) = v.as_str() {
                    out.push((op.clone(), s.to_string()));
                }
            };
            add(&body["QueueUrl"]);
            add(&body["Path"]);
            add(&body["Name"]);
            for n in body["Names"].as_array().into_iter().flatten() {
                add(n);
            }
            for e in body["Entries"].as_array().into_iter().flatten() {
                add(&e["EventBusName"]);
            }
        }
        out
    }

    async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .load()
            .await
    }

    /// The IAM actions the recorded calls need.
    fn uses(&self) -> Vec<Use> {
        let pk = |v: &Value| v["pk"]["S"].as_str().map(str::to_string);
        let mut out = Vec::new();
        for (target, body) in self.calls.lock().unwrap().iter() {
            let Some((service, op)) = target.split_once('.') else {
                panic!("an AWS call the recorder cannot classify (no X-Amz-Target): {body}");
            };
            match service {
                "DynamoDB_20120810" => match op {
                    "TransactWriteItems" => {
                        for item in body["TransactItems"].as_array().unwrap() {
                            for (kind, action) in [
                                ("Put", "PutItem"),
                                ("Update", "UpdateItem"),
                                ("Delete", "DeleteItem"),
                                ("ConditionCheck", "ConditionCheckItem"),
                            ] {
                                let part = &item[kind];
                                if !part.is_null() {
                                    let key = pk(&part["Item"]).or_else(|| pk(&part["Key"]));
                                    out.push((format!("dynamodb:{action}"), key));
                                }
                            }
                        }
                    }
                    "PutItem" => out.push(("dynamodb:PutItem".into(), pk(&body["Item"]))),
                    "Query" => out.push((
                        "dynamodb:Query".into(),
                        body["ExpressionAttributeValues"][":pk"]["S"]
                            .as_str()
                            .map(str::to_string),
                    )),
                    other => out.push((format!("dynamodb:{other}"), pk(&body["Key"]))),
                },
                "AmazonSSM" => out.push((format!("ssm:{op}"), None)),
                "AmazonSQS" => {
                    let op = if op == "SendMessageBatch" {
                        "SendMessage"
                    } else {
                        op
                    };
                    out.push((format!("sqs:{op}"), None))
                }
                "AWSEvents" => out.push((format!("events:{op}"), None)),
                "AWSWAF_20190729" => out.push((format!("wafv2:{op}"), None)),
                other => panic!("an unexpected AWS service: {other}"),
            }
        }
        out
    }
}

/// One Allow statement of a function's policy: its actions and `dynamodb:LeadingKeys`.
#[derive(Debug)]
struct Statement {
    actions: Vec<String>,
    leading_keys: Option<Vec<String>>,
}

fn policy(function: &str, next: &str) -> Vec<Statement> {
    let t =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let section = t
        .split(&format!("\n  {function}:\n"))
        .nth(1)
        .unwrap()
        .split(next)
        .next()
        .unwrap();
    let list = |s: &str| -> Vec<String> {
        s.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|a| a.trim().trim_matches('"').to_string())
            .filter(|a| !a.is_empty())
            .collect()
    };
    section
        .split("Effect: Allow")
        .skip(1)
        .filter_map(|stmt| {
            let stmt = stmt.split("Effect:").next().unwrap();
            let action = stmt
                .lines()
                .find_map(|l| l.trim().strip_prefix("Action: "))?;
            let leading_keys = stmt
                .lines()
                .find_map(|l| l.trim().strip_prefix("dynamodb:LeadingKeys: "))
                .map(list);
            Some(Statement {
                actions: list(action),
                leading_keys,
            })
        })
        .filter(|s| s.actions != ["sts:AssumeRole"])
        .collect()
}

/// Every use allowed by `policy`; every action and key prefix of `policy` used, but for
/// `unexercised` (actions moto cannot show, each with the reason in the caller).
fn check(function: &str, policy: &[Statement], uses: &[Use], unexercised: &[&str]) {
    let allowed = |(action, pk): &Use| {
        policy.iter().any(|s| {
            s.actions.contains(action)
                && match (&s.leading_keys, pk) {
                    (None, _) => true,
                    (Some(prefixes), Some(pk)) => prefixes
                        .iter()
                        .any(|p| pk.starts_with(p.trim_end_matches('*'))),
                    (Some(_), None) => false,
                }
        })
    };
    let refused: BTreeSet<&Use> = uses.iter().filter(|u| !allowed(u)).collect();
    assert!(
        refused.is_empty(),
        "{function}: the code calls what its policy does not allow: {refused:?}"
    );
    let used: BTreeSet<&str> = uses.iter().map(|(a, _)| a.as_str()).collect();
    let mut unused = BTreeSet::new();
    for s in policy {
        for a in &s.actions {
            if !used.contains(a.as_str()) && !unexercised.contains(&a.as_str()) {
                unused.insert(a.clone());
            }
        }
        for prefix in s.leading_keys.iter().flatten() {
            let p = prefix.trim_end_matches('*');
            let hit = uses.iter().any(|(a, pk)| {
                s.actions.contains(a) && pk.as_deref().is_some_and(|k| k.starts_with(p))
            });
            let unused_key = format!("{:?} on {prefix}", s.actions);
            if !hit && !unexercised.contains(&unused_key.as_str()) {
                unused.insert(unused_key);
            }
        }
    }
    assert!(
        unused.is_empty(),
        "{function}: its policy allows what the code never calls: {unused:?}"
    );
}

/// Every resource a function's calls name is one its policy allows: parameters under the
/// prefix (with `names`, only those parameters, read by name; else the path), the jobs queue,
/// (with `bus`) the stack's bus and (with `ip_set`) the callback's WAF IP set, by its name.
fn check_resources(
    function: &str,
    resources: &[(String, String)],
    prefix: &str,
    names: Option<&[&str]>,
    queue_url: &str,
    bus: Option<&str>,
    ip_set: Option<&str>,
) {
    for (op, resource) in resources {
        match (op.as_str(), names) {
            ("GetParameters", Some(names)) => assert!(
                resource.starts_with(&format!("{prefix}/apps/"))
                    && names.iter().any(|n| resource.ends_with(&format!("/{n}"))),
                "{function} reads {resource}"
            ),
            ("GetParametersByPath", None) => assert!(
                resource.starts_with(&format!("{prefix}/apps")),
                "{function} reads {resource}"
            ),
            ("SendMessage" | "SendMessageBatch", _) => assert_eq!(resource, queue_url),
            ("PutEvents", _) if bus.is_some() => assert_eq!(
                Some(resource.as_str()),
                bus,
                "events go to the stack's bus only"
            ),
            ("GetIPSet" | "UpdateIPSet", _) if ip_set.is_some() => assert_eq!(
                Some(resource.as_str()),
                ip_set,
                "WeChat's addresses go to the callback's IP set only"
            ),
            (other, _) => panic!("{function}: unexpected {other} on {resource}"),
        }
    }
}

fn env(world: &TokenWorld, queue_url: &str, bus: &str, wechat_base: &str) -> RuntimeEnv {
    RuntimeEnv {
        table: world.table.clone(),
        ssm_prefix: world.prefix.clone(),
        secrets_ttl: Duration::from_secs(300),
        refresh_window: Duration::from_secs(900),
        queue_url: Some(queue_url.to_string()),
        event_bus: Some(bus.to_string()),
        wechat: wxpush_shared::wechat::WeChatClientConfig {
            api_base: wechat_base.to_string(),
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
        },
    }
}

fn xml(from: &str, time: i64, body: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName><CreateTime>{time}</CreateTime>{body}</xml>"
    )
}

#[tokio::test]
async fn each_functions_policy_allows_exactly_what_its_code_calls() {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let sdk = wxpush_tests::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = wxpush_tests::moto_queue(&sqs, "iam-jobs").await;
    let bus = wxpush_tests::unique("iam-bus");
    aws_sdk_eventbridge::Client::new(&sdk)
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let e = &world.emulator;
    let env = env(&world, &queue_url, &bus, &e.base);
    e.control(
        "/users",
        json!({"appid": oa, "openid": "o-iam", "unionid": "u-iam"}),
    )
    .await;
    e.control(
        "/users",
        json!({"appid": oa, "openid": "o-new", "unionid": "u-new"}),
    )
    .await;
    e.control(
        "/users",
        json!({"appid": mp, "openid": "m-iam", "unionid": "u-iam"}),
    )
    .await;
    e.control(
        "/grants",
        json!({"appid": mp, "openid": "m-iam", "template_id": "SUB1"}),
    )
    .await;

    // ---- the callback: verify, new follower, known follower, delivery report, grant, a
    // retried push (nonce and event already seen).
    let rec = recorder().await;
    let deps = CallbackDeps::build(&rec.sdk().await, &env);
    assert!(deps.forwarding);
    let callback = wxpush_shared::callback::service::CallbackService::new(
        deps.secrets,
        deps.state_store,
        deps.queue,
    )
    .with_forwarding(deps.forwarding);
    let now = now_unix();
    let q = |extra: &[(&str, &str)]| {
        signed_query("cbtoken", &now.to_string(), &wxpush_tests::nonce(), extra)
    };
    callback
        .verify_url(&oa, &q(&[("echostr", "hi")]), now)
        .await
        .unwrap();
    // A follower whose unionid wxpush knows (its mapping comes from the account record).
    world
        .state_store()
        .record(
            &[wxpush_shared::store::Op::Set {
                key: wxpush_shared::store::ItemKey::account(&oa, "o-iam"),
                attrs: wxpush_shared::store::attrs([
                    ("unionid", wxpush_shared::store::Attr::S("u-iam".into())),
                    ("subscribed", wxpush_shared::store::Attr::Bool(true)),
                ]),
            }],
            now,
        )
        .await
        .unwrap();
    let pushes = [
        xml(
            "o-new",
            now,
            "<MsgType>event</MsgType><Event>subscribe</Event><EventKey></EventKey>",
        ),
        xml(
            "o-iam",
            now,
            "<MsgType>event</MsgType><Event>subscribe</Event><EventKey></EventKey>",
        ),
        xml(
            "o-iam",
            now + 1,
            "<MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>1</MsgID><Status>success</Status>",
        ),
        xml(
            "m-iam",
            now,
            "<MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>SUB1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent>",
        ),
    ];
    for (i, body) in pushes.iter().enumerate() {
        let appid = if i == 3 { &mp } else { &oa };
        let query = q(&[]);
        callback
            .receive(appid, &query, body.as_bytes(), now)
            .await
            .unwrap();
        if i == 0 {
            // WeChat's retry: the same signed query and body.
            callback
                .receive(appid, &query, body.as_bytes(), now)
                .await
                .unwrap();
        }
    }
    // The callback reads only its four parameters by name (never an AppSecret), and queues
    // only to the jobs queue.
    check_resources(
        "callback",
        &rec.resources(),
        &world.prefix,
        Some(&[
            "kind",
            "callback_token",
            "encoding_aes_key",
            "callback_mode",
        ]),
        &queue_url,
        None,
        None,
    );
    check(
        "CallbackFunction",
        &policy("CallbackFunction", "\n  SendFunction:"),
        &rec.uses(),
        // kms: moto's SSM decrypts without KMS, and the data-key grants apply only with a
        // customer key (KmsKeyArn).
        &["kms:Decrypt", "kms:GenerateDataKey"],
    );

    // ---- the send function: every route.
    let rec = recorder().await;
    let svc = wxpush_send::service(
        AwsDeps::build(&rec.sdk().await, &env),
        wxpush_shared::batch::BatchConfig::default(),
    );
    let call = |method: &str, path: String, body: Option<Value>, headers: &[(&str, &str)]| {
        let req = apigw_v1_request(method, &path, body.as_ref(), headers);
        let svc = &svc;
        async move {
            let resp = wxpush_send::handle(svc, req).await;
            let status = resp.status().as_u16();
            let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
            (status, body)
        }
    };
    let ok = |(status, body): (u16, Value), want: u16| {
        assert_eq!(status, want, "{body}");
        body
    };
    ok(
        call("GET", format!("/v1/apps/{oa}/token"), None, &[]).await,
        200,
    );
    let template = json!({"type": "template", "to": {"unionid": "u-iam"}, "template_id": "T1",
                          "data": {"thing1": {"value": "hi"}}});
    let sent = ok(
        call(
            "POST",
            format!("/v1/apps/{oa}/messages"),
            Some(template.clone()),
            &[("idempotency-key", "iam-1")],
        )
        .await,
        200,
    );
    ok(
        call(
            "GET",
            format!("/v1/apps/{oa}/messages/{}", sent["id"].as_str().unwrap()),
            None,
            &[],
        )
        .await,
        200,
    );
    ok(call("POST", format!("/v1/apps/{mp}/messages"), Some(json!({"type": "subscribe", "to": {"openid": "m-iam"}, "template_id": "SUB1", "data": {"thing1": {"value": "x"}}})), &[]).await, 200);
    let code = e
        .control("/login-codes", json!({"appid": mp, "openid": "m-iam"}))
        .await;
    ok(
        call(
            "POST",
            format!("/v1/apps/{mp}/sessions"),
            Some(json!({"code": code["code"]})),
            &[],
        )
        .await,
        200,
    );
    ok(call("GET", "/v1/users/u-iam".into(), None, &[]).await, 200);
    ok(
        call(
            "GET",
            format!("/v1/apps/{mp}/users?unionid=u-iam"),
            None,
            &[],
        )
        .await,
        200,
    );
    ok(
        call(
            "POST",
            format!("/v1/apps/{oa}/followers/sync"),
            Some(json!({})),
            &[],
        )
        .await,
        202,
    );
    ok(
        call("GET", format!("/v1/apps/{oa}/followers/sync"), None, &[]).await,
        200,
    );
    let batch = ok(call("POST", format!("/v1/apps/{oa}/batches"), Some(json!({"message": {"type": "template", "template_id": "T1", "data": {"thing1": {"value": "hi"}}}, "recipients": [{"openid": "o-iam"}, {"unionid": "u-new"}]})), &[]).await, 202);
    let batch_id = batch["id"].as_str().unwrap().to_string();
    ok(
        call(
            "GET",
            format!("/v1/apps/{oa}/batches/{batch_id}"),
            None,
            &[],
        )
        .await,
        200,
    );
    ok(
        call("GET", format!("/v1/apps/{oa}/templates"), None, &[]).await,
        200,
    );
    ok(
        call(
            "GET",
            format!("/v1/apps/{oa}/quota?path=/cgi-bin/message/template/send"),
            None,
            &[],
        )
        .await,
        200,
    );
    e.control("/templates", json!({"appid": oa, "id": "T2", "kind": "template", "title": "t", "content": "{{thing1.DATA}}"})).await;
    let added = ok(
        call(
            "POST",
            format!("/v1/apps/{oa}/templates"),
            Some(json!({"template_id_short": "TM00015", "keyword_names": ["thing1"]})),
            &[],
        )
        .await,
        201,
    );
    let (status, _) = call(
        "DELETE",
        format!("/v1/apps/{oa}/templates/{}", added["id"].as_str().unwrap()),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    // A second batch, cancelled before any worker runs.
    let cancelled = ok(call("POST", format!("/v1/apps/{oa}/batches"), Some(json!({"message": {"type": "template", "template_id": "T1", "data": {"thing1": {"value": "x"}}}, "recipients": [{"openid": "o-iam"}]})), &[]).await, 202);
    ok(
        call(
            "DELETE",
            format!(
                "/v1/apps/{oa}/batches/{}",
                cancelled["id"].as_str().unwrap()
            ),
            None,
            &[],
        )
        .await,
        200,
    );
    check_resources(
        "send",
        &rec.resources(),
        &world.prefix,
        None,
        &queue_url,
        None,
        None,
    );
    check(
        "SendFunction",
        &policy("SendFunction", "\n  TokenRefreshFunction:"),
        &rec.uses(),
        &["kms:Decrypt", "kms:GenerateDataKey"],
    );

    // ---- the token refresh: every app's token, refreshed when due, and (CallbackFirewall
    // on) WeChat's callback addresses into the WAF IP set: written while empty, then read.
    let waf = aws_sdk_wafv2::Client::new(&sdk);
    let ip_set_arn = waf
        .create_ip_set()
        .name(wxpush_tests::unique("iam-ips"))
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .ip_address_version(aws_sdk_wafv2::types::IpAddressVersion::Ipv4)
        .set_addresses(Some(vec![]))
        .send()
        .await
        .unwrap()
        .summary()
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let rec = recorder().await;
    let rec_sdk = rec.sdk().await;
    let deps = AwsDeps::build(&rec_sdk, &env);
    let report =
        wxpush_token_refresh::refresh_all(deps.tokens.clone(), Duration::from_secs(7_200)).await;
    assert!(report.failed.is_empty(), "{report:?}");
    let ip_set = wxpush_token_refresh::callback_ips::CallbackIpSet::from_arn(
        wxpush_shared::aws::SdkClient::deferred(&rec_sdk, aws_sdk_wafv2::Client::new),
        &ip_set_arn,
    )
    .unwrap();
    for _ in 0..2 {
        ip_set.refresh(&deps.tokens, now_unix()).await.unwrap();
    }
    check_resources(
        "token refresh",
        &rec.resources(),
        &world.prefix,
        None,
        &queue_url,
        None,
        Some(ip_set.name()),
    );
    check(
        "TokenRefreshFunction",
        &policy("TokenRefreshFunction", "\n  BatchWorkerFunction:"),
        &rec.uses(),
        &["kms:Decrypt", "kms:GenerateDataKey"],
    );

    // ---- the worker: every job the others queued (follower look-up, sync, batch fan-out and
    // chunks, event forwarding) and the scheduled outbox sweep, read from the real queue.
    let rec = recorder().await;
    let runner = wxpush_batch_worker::runner(
        AwsDeps::build(&rec.sdk().await, &env),
        wxpush_shared::batch::BatchConfig::default(),
    );
    let mut kinds = BTreeMap::new();
    let mut jobs: Vec<Job> = vec![Job::SweepOutbox];
    for _ in 0..60 {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            jobs.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if jobs.is_empty() && got.messages().is_empty() {
            break;
        }
        for job in std::mem::take(&mut jobs) {
            let kind = serde_json::to_value(&job).unwrap()["job"]
                .as_str()
                .unwrap()
                .to_string();
            // Delayed follow-ups may be early here; a failure is retried by the next turn.
            let _ = runner
                .run(&job, Instant::now() + Duration::from_secs(30))
                .await;
            *kinds.entry(kind).or_insert(0) += 1;
        }
    }
    for kind in [
        "complete_follower",
        "follower_sync",
        "batch_fanout",
        "batch_chunk",
        "forward_event",
        "sweep_outbox",
    ] {
        assert!(kinds.contains_key(kind), "no {kind} job ran: {kinds:?}");
    }
    check_resources(
        "worker",
        &rec.resources(),
        &world.prefix,
        None,
        &queue_url,
        Some(&bus),
        None,
    );
    check(
        "BatchWorkerFunction",
        &policy("BatchWorkerFunction", "\nOutputs:"),
        &rec.uses(),
        // kms: moto's SSM decrypts without KMS; the SQS event source (not the code) receives
        // and deletes the messages and reads the queue's attributes.
        &[
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            // A give-up's failure row deleted when another run's real send replaced it: two
            // runs of one chunk racing (batch_guarantees.rs runs it on the embedded store).
            r#"["dynamodb:DeleteItem"] on bfail#*"#,
        ],
    );
}
