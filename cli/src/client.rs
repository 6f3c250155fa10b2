//! The HTTP client the operator commands use: they talk to a running wxpush (`wxpush serve`,
//! or the deployed API with SigV4) over the same `/v1` API as every other client.

use crate::auth::{Auth, AuthKind, SigV4Signer, check_transport};
use crate::error::CliError;
use crate::local_key;
use serde_json::Value;
use std::time::Duration;

/// A `/v1` client: the bearer key (local server) or SigV4 (the deployed API).
pub struct ApiClient {
    base: String,
    auth: Auth,
    http: reqwest::Client,
}

/// An answer that is not 2xx: the status and wxpush's error body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Recipients a batch refusal lists: (index, why).
    pub recipients: Vec<(u64, String)>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl ApiFailure {
    /// The failure a non-2xx answer's body describes.
    fn from_body(status: u16, value: &Value) -> ApiFailure {
        let field = |k: &str| {
            value["error"][k]
                .as_str()
                .map(str::to_string)
                .unwrap_or_default()
        };
        let recipients = value["error"]["recipients"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|r| {
                        (
                            r["index"].as_u64().unwrap_or(0),
                            r["error"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        ApiFailure {
            status,
            code: field("code"),
            message: field("message"),
            recipients,
        }
    }
}

/// `--auth` and `--insecure-http`: how the commands may reach `--server`.
#[derive(Clone, Copy)]
pub struct Access {
    pub kind: Option<AuthKind>,
    pub insecure_http: bool,
}

impl ApiClient {
    /// A client of the local server, with its bearer key.
    pub fn new(base: &str, key: &str) -> Result<ApiClient, String> {
        ApiClient::with_auth(base, Auth::Bearer(key.trim().to_string()))
    }

    pub fn with_auth(base: &str, auth: Auth) -> Result<ApiClient, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            auth,
            http,
        })
    }

    /// The `/v1` client for `--server`, `--auth` and `--insecure-http`.
    pub async fn for_server(server: &str, access: Access) -> Result<ApiClient, CliError> {
        let kind = access.kind.unwrap_or_else(|| AuthKind::default_for(server));
        check_transport(server, kind, access.insecure_http).map_err(CliError::Usage)?;
        let auth = match kind {
            AuthKind::Bearer => Auth::Bearer(client_key().map_err(CliError::Usage)?),
            AuthKind::Sigv4 => Auth::SigV4(
                SigV4Signer::from_environment(server)
                    .await
                    .map_err(CliError::Usage)?,
            ),
        };
        ApiClient::with_auth(server, auth).map_err(CliError::Usage)
    }

    pub async fn get(&self, path: &str) -> Result<Result<Value, ApiFailure>, String> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Result<Value, ApiFailure>, String> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// A POST with an `Idempotency-Key` when one is given.
    pub async fn post_keyed(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Result<Value, ApiFailure>, String> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    pub async fn delete(&self, path: &str) -> Result<Result<Value, ApiFailure>, String> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// `Err`: wxpush could not be reached; `Ok(Err)`: it answered with an error.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Result<Value, ApiFailure>, String> {
        let mut req = req
            .build()
            .map_err(|e| format!("bad request: {}", e.without_url()))?;
        match &self.auth {
            Auth::Bearer(key) => {
                let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| "the API key is not a valid header value".to_string())?;
                req.headers_mut()
                    .insert(reqwest::header::AUTHORIZATION, value);
            }
            Auth::SigV4(signer) => signer.sign(&mut req).await?,
        }
        let resp =
            self.http.execute(req).await.map_err(|e| {
                format!("cannot reach wxpush at {}: {}", self.base, e.without_url())
            })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.without_url().to_string())?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(Ok(value));
        }
        Ok(Err(ApiFailure::from_body(status.as_u16(), &value)))
    }
}

/// The API's answer, or the refusal as an error.
pub async fn answer(
    call: impl std::future::Future<Output = Result<Result<Value, ApiFailure>, String>>,
) -> Result<Value, CliError> {
    Ok(call.await??)
}

/// The `/v1` key: `WXPUSH_API_KEY`, else the one `wxpush serve` generated (refused when
/// other users can read its file).
fn client_key() -> Result<String, String> {
    if let Ok(k) = std::env::var("WXPUSH_API_KEY")
        && !k.trim().is_empty()
    {
        return Ok(k.trim().to_string());
    }
    local_key::read_private(&local_key::key_path(std::path::Path::new(".wxpush")))?
        .ok_or_else(|| "set WXPUSH_API_KEY (or start `wxpush serve` here once)".to_string())
}
