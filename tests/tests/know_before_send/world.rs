//! One moto table and SSM prefix, the emulator pushing its events to a callback service over
//! the same table, and the `/v1` handler as API Gateway calls it.

use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use wxpush_cli::sandbox::{CallbackKeys, EmulatedApp};
use wxpush_send::{SendService, handle};
use wxpush_shared::AppKind;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::{SsmApp, TokenWorld, apigw_v1_request, put_app, random_appid};

/// The callback token every app of the world has (SSM `callback_token`, plaintext mode).
pub const CALLBACK_TOKEN: &str = "cbtoken";
/// WeChat's per-attempt timeout for the sends.
const TIMEOUT_MS: u64 = 700;

pub struct Know {
    pub world: TokenWorld,
    pub oa: String,
    pub mp: String,
    pub svc: SendService,
    pub callback: Arc<CallbackService>,
    receiver: JoinHandle<()>,
}

impl Drop for Know {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

fn app(appid: &str, secret: &str, kind: AppKind) -> EmulatedApp {
    EmulatedApp {
        appid: appid.into(),
        secret: secret.into(),
        kind,
        callback: Some(CallbackKeys {
            token: CALLBACK_TOKEN.into(),
            encoding_aes_key: None,
            encrypted: false,
        }),
    }
}

/// The callback route as a test server: the emulator's pushes go through the callback
/// service to the world's table.
async fn receive(
    State(callback): State<Arc<CallbackService>>,
    Path(appid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> (http::StatusCode, String) {
    match callback.receive(&appid, &query, &body, now_unix()).await {
        Ok(_) => (http::StatusCode::OK, "success".into()),
        Err(e) => (e.status(), e.to_string()),
    }
}

impl Know {
    /// An official account with the SSM `parameters` given, and a mini program linked to it.
    pub async fn new(parameters: &[(&str, &str)]) -> Know {
        let (oa, mp) = (random_appid(), random_appid());
        let world = TokenWorld::new(vec![
            app(&oa, "oa-secret", AppKind::OfficialAccount),
            app(&mp, "mp-secret", AppKind::MiniProgram),
        ])
        .await;
        for (appid, kind, secret) in [
            (&oa, "official_account", "oa-secret"),
            (&mp, "mini_program", "mp-secret"),
        ] {
            let app = SsmApp {
                appid,
                kind: Some(kind),
                app_secret: Some(secret),
                token_api: None,
            };
            put_app(&world.ssm, &world.prefix, app).await;
        }
        let mut extra = vec![("linked_official_account", mp.as_str(), oa.as_str())];
        extra.extend(parameters.iter().map(|(k, v)| (*k, oa.as_str(), *v)));
        for (name, appid, value) in extra {
            world
                .ssm
                .put_parameter()
                .name(format!("{}/apps/{appid}/{name}", world.prefix))
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .expect("put parameter in moto");
        }
        let svc = SendService::new(
            world.manager(TokenPolicy::default(), TIMEOUT_MS),
            world.state_store(),
            Duration::from_millis(TIMEOUT_MS),
        );
        let callback = Arc::new(CallbackService::new(
            world.secrets(),
            world.state_store(),
            wxpush_tests::faults::RecordingQueue::new(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/wechat", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/wechat/{appid}", axum::routing::post(receive))
            .with_state(callback.clone());
        let receiver = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        world.emulator.emu.set_callback_base(Some(base));
        Know {
            world,
            oa,
            mp,
            svc,
            callback,
            receiver,
        }
    }

    /// A `/v1` call as API Gateway makes it: (status, JSON body).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        let resp = handle(&self.svc, apigw_v1_request(method, path, body, &headers)).await;
        let status = resp.status().as_u16();
        let body = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST /v1/apps/{appid}/messages`.
    pub async fn send(&self, appid: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
        self.api(
            "POST",
            &format!("/v1/apps/{appid}/messages"),
            Some(body),
            key,
        )
        .await
    }

    /// `GET /v1/apps/{appid}/users/{openid}`.
    pub async fn view(&self, appid: &str, openid: &str) -> (u16, Value) {
        self.api(
            "GET",
            &format!("/v1/apps/{appid}/users/{openid}"),
            None,
            None,
        )
        .await
    }

    /// `GET /v1/apps/{appid}/messages/{id}`, which must answer.
    pub async fn message(&self, appid: &str, id: &str) -> Value {
        let (status, body) = self
            .api(
                "GET",
                &format!("/v1/apps/{appid}/messages/{id}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// An emulator control.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.world.emulator.control(path, body).await
    }

    /// A user of `appid` the emulator knows (following), with `extra` fields.
    pub async fn user(&self, appid: &str, openid: &str, extra: Value) {
        let mut u = json!({"appid": appid, "openid": openid});
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.control("/users", u).await;
    }

    /// Calls the emulator had on a WeChat path.
    pub fn calls(&self, path: &str) -> u64 {
        self.world.emulator.emu.calls(path)
    }

    /// Messages the emulator delivered to `openid` of `appid`.
    pub async fn delivered_to(&self, appid: &str, openid: &str) -> Vec<Value> {
        self.world
            .emulator
            .delivered(appid)
            .await
            .into_iter()
            .filter(|m| m["touser"] == openid)
            .collect()
    }

    /// Waits (bounded) until the emulator made `n` pushes, and requires each answered
    /// `success` by the callback.
    pub async fn pushed(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let all = self.world.emulator.get("/sandbox/pushes").await;
            let all = all.as_array().cloned().unwrap_or_default();
            if all.len() >= n {
                for p in &all {
                    assert_eq!(p["answer"], "success", "{p}");
                }
                return all;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("fewer than {n} pushes");
    }

    /// A push WeChat would make, given to the callback service directly (an event the
    /// emulator does not make: one from before, or sent by another system).
    pub async fn push(&self, appid: &str, xml: &str) {
        let now = now_unix();
        let q = wxpush_tests::signed_query(
            CALLBACK_TOKEN,
            &now.to_string(),
            &wxpush_tests::nonce(),
            &[],
        );
        self.callback
            .receive(appid, &q, xml.as_bytes(), now)
            .await
            .expect("the push is recorded");
    }
}

/// A customer-service text message to `openid`.
pub fn text(openid: &str) -> Value {
    json!({"type": "custom", "to": {"openid": openid}, "msgtype": "text", "text": {"content": "您好"}})
}

/// A template message to `openid`.
pub fn template(openid: &str, template_id: &str) -> Value {
    json!({"type": "template", "to": {"openid": openid}, "template_id": template_id,
           "data": {"thing1": {"value": "订单已发货"}}})
}

/// The event head of a push from `openid` at `at`.
pub fn event_xml(openid: &str, at: i64, event: &str, rest: &str) -> String {
    format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>{at}</CreateTime>\
         <MsgType>event</MsgType><Event>{event}</Event>{rest}</xml>"
    )
}
