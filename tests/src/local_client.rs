//! A client of an in-process `wxpush serve --sandbox`: `/v1` with the bearer key, and the
//! `/sandbox` controls; every answer as (status, JSON body).

use serde_json::Value;

pub struct LocalClient {
    pub base: String,
    key: String,
    http: reqwest::Client,
}

impl LocalClient {
    pub fn new(server: &wxpush_cli::local_server::RunningServer, key: &str) -> LocalClient {
        LocalClient {
            base: server.url(),
            key: key.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// A control (`POST /sandbox{path}`), required to succeed; its answer.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self
            .call(reqwest::Method::POST, "/sandbox", path, Some(body), false)
            .await;
        assert!((200..300).contains(&status), "{path}: {status} {answer}");
        answer
    }

    /// `GET /sandbox{path}`.
    pub async fn sandbox_get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, "/sandbox", path, None, false)
            .await
    }

    /// `GET {path}` with the key (`/v1/...`, `/console/state`).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, "", path, None, true).await
    }

    /// `POST {path}` of JSON with the key.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "", path, Some(body), true)
            .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        prefix: &str,
        path: &str,
        body: Option<Value>,
        with_key: bool,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{prefix}{path}", self.base));
        if with_key {
            req = req.bearer_auth(&self.key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the local server answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
