//! The WeChat emulator served in-process on 127.0.0.1:0, with its `/sandbox` control calls.

use crate::logs::{capture_suite_logs, remember_secrets};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use wxpush_cli::sandbox::{EmulatedApp, Emulator};
use wxpush_shared::AppKind;
use wxpush_shared::wechat::{HttpWeChatClient, WeChatApi, WeChatClientConfig};

/// The emulator on 127.0.0.1:0; stopped when dropped.
pub struct EmulatorServer {
    pub emu: Emulator,
    pub base: String,
    handle: JoinHandle<()>,
}

impl Drop for EmulatorServer {
    fn drop(&mut self) {
        self.handle.abort();
        remember_secrets(self.emu.secrets());
    }
}

impl EmulatorServer {
    pub async fn start(apps: Vec<EmulatedApp>) -> EmulatorServer {
        capture_suite_logs();
        let emu = Emulator::new(apps, 7200);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = emu.standalone_router();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        EmulatorServer { emu, base, handle }
    }

    pub fn client(&self, timeout_ms: u64) -> Arc<dyn WeChatApi> {
        Arc::new(HttpWeChatClient::new(WeChatClientConfig {
            api_base: self.base.clone(),
            timeout: Duration::from_millis(timeout_ms),
            connect_timeout: Duration::from_millis(1000),
        }))
    }

    /// A control call (`/sandbox/...`) answering JSON.
    pub async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .post(format!("{}/sandbox{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "control {path} failed: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    /// Drops every pending injected fault (`DELETE /sandbox/faults`).
    pub async fn clear_faults(&self) {
        let resp = reqwest::Client::new()
            .delete(format!("{}/sandbox/faults", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "clearing faults: {}",
            resp.status()
        );
    }

    /// Every message the emulator delivered for `appid` (`GET /sandbox/messages?appid=`).
    pub async fn delivered(&self, appid: &str) -> Vec<serde_json::Value> {
        self.get(&format!("/sandbox/messages?appid={appid}"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many messages the emulator delivered to each openid of `appid`.
    pub async fn delivered_per_user(&self, appid: &str) -> HashMap<String, usize> {
        let mut per_user = HashMap::new();
        for m in self.delivered(appid).await {
            *per_user
                .entry(m["touser"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        per_user
    }

    /// A `POST` of `body` as JSON to `path` (WeChat's API or the sandbox's), answering JSON.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A `GET` of `path`, answering JSON.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub fn emulated(appid: &str, secret: &str, kind: AppKind) -> EmulatedApp {
    EmulatedApp {
        appid: appid.into(),
        secret: secret.into(),
        kind,
        callback: None,
    }
}
