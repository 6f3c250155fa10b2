//! A proxy in front of moto that records the AWS operations a function's clients send, and
//! what IAM needs to allow them.

use serde_json::Value;
use std::sync::{Arc, Mutex};

/// (IAM action, partition key when the operation names an item or a partition).
pub type Use = (String, Option<String>);

/// A proxy in front of moto that records the AWS operations going through it.
pub struct Recorder {
    url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn recorder() -> Recorder {
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
    pub fn resources(&self) -> Vec<(String, String)> {
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

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .load()
            .await
    }

    /// The IAM actions the recorded calls need.
    pub fn uses(&self) -> Vec<Use> {
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
