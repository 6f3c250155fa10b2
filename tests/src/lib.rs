//! Shared test fixtures: moto (real AWS APIs on 127.0.0.1 through the real SDK) and the
//! WeChat emulator, started in-process on port 0 and stopped when dropped.

pub mod batch_world;
pub mod faults;
pub mod key_limits;
pub mod signature;
pub mod sim_queue;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_ssm::types::ParameterType;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use wxpush_cli::sandbox::{EmulatedApp, Emulator};
use wxpush_shared::AppKind;
use wxpush_shared::secrets::{CachedSecretStore, SecretStore, SsmSecretStore};
use wxpush_shared::token::{AccessToken, DynamoTokenStore, TokenManager, TokenPolicy, TokenStore};
use wxpush_shared::wechat::{HttpWeChatClient, WeChatApi, WeChatClientConfig};

/// The SDK configuration for moto. Panics (rather than skipping) when the suite was not
/// started through `scripts/test`, so a test can never pass without its backing server.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run the suite with `bash scripts/test`, which starts moto",
    );
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "tests only talk to 127.0.0.1, not {endpoint}"
    );
    wxpush_shared::aws::load_sdk_config().await
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A fresh table shaped like the one in template.yaml (pk/sk strings, TTL on `ttl`).
pub async fn create_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("wxpush-test-");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table in moto");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL in moto");
    name
}

/// An app's parameters in SSM as template.yaml documents them. `None` leaves one out.
pub struct SsmApp<'a> {
    pub appid: &'a str,
    pub kind: Option<&'a str>,
    pub app_secret: Option<&'a str>,
    pub token_api: Option<&'a str>,
}

pub async fn put_app(ssm: &aws_sdk_ssm::Client, prefix: &str, app: SsmApp<'_>) {
    let mut params = vec![(
        "callback_token",
        Some("cbtoken"),
        ParameterType::SecureString,
    )];
    params.push(("app_secret", app.app_secret, ParameterType::SecureString));
    params.push(("kind", app.kind, ParameterType::String));
    params.push(("token_api", app.token_api, ParameterType::String));
    for (name, value, kind) in params {
        if let Some(value) = value {
            ssm.put_parameter()
                .name(format!("{prefix}/apps/{}/{name}", app.appid))
                .value(value)
                .r#type(kind)
                .overwrite(true)
                .send()
                .await
                .expect("put parameter in moto");
        }
    }
}

pub fn random_appid() -> String {
    format!("wx{:016x}", rand::random::<u64>())
}

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

/// Where the suite's logs and the ledger of secrets they must not contain are written
/// (`scripts/check_logs.py` reads both after the run).
pub fn test_log_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-logs"))
}

/// Sends every log line of this test process (wxpush's own at debug, the rest at info) to
/// `target/test-logs/{binary}-{pid}.log` as JSON. Called by the fixtures, so every test
/// that starts one is logged; a test's own `LogCapture` overrides it on its thread.
pub fn capture_suite_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = test_log_dir();
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".into());
        let Ok(file) = std::fs::File::create(dir.join(format!("{exe}-{}.log", std::process::id())))
        else {
            return;
        };
        let filter = tracing_subscriber::EnvFilter::new(
            "info,wxpush_shared=trace,wxpush_cli=trace,wxpush_send=trace,wxpush_callback=trace,\
             wxpush_token_refresh=trace,wxpush_batch_worker=trace,wxpush_tests=trace",
        );
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    });
}

/// Adds secrets to the ledger the log check reads (one per line).
pub fn remember_secrets(secrets: impl IntoIterator<Item = String>) {
    use std::io::Write;
    let dir = test_log_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(mut ledger) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("secrets-{}.txt", std::process::id())))
    else {
        return;
    };
    // One write per process call: lines from concurrent tests never interleave.
    let lines: String = secrets.into_iter().map(|s| s + "\n").collect();
    let _ = ledger.write_all(lines.as_bytes());
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

/// A token manager as `wxpush serve` builds one: the embedded store in `db`, one official
/// account from an apps file (secret `secret`), the emulator's WeChat client.
pub fn embedded_token_manager(
    emulator: &EmulatorServer,
    appid: &str,
    secret: &str,
    db: Arc<redb::Database>,
) -> Arc<TokenManager> {
    use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore};
    let file = AppsFile {
        apps: vec![AppEntry {
            appid: appid.into(),
            kind: "official_account".into(),
            app_secret: secret.into(),
            ..AppEntry::default()
        }],
    };
    Arc::new(TokenManager::new(
        Arc::new(wxpush_shared::token::EmbeddedTokenStore::new(db)),
        Arc::new(FileSecretStore::from_file(file).expect("a valid apps file")),
        emulator.client(5000),
        TokenPolicy::default(),
    ))
}

/// A fresh in-memory redb database.
pub fn memory_db() -> Arc<redb::Database> {
    Arc::new(
        redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database"),
    )
}

pub fn emulated(appid: &str, secret: &str, kind: AppKind) -> EmulatedApp {
    EmulatedApp {
        appid: appid.into(),
        secret: secret.into(),
        kind,
        callback: None,
    }
}

/// Everything a token test needs: one moto table, one SSM prefix, the emulator.
pub struct TokenWorld {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub table: String,
    pub prefix: String,
    pub emulator: EmulatorServer,
}

impl TokenWorld {
    pub async fn new(apps: Vec<EmulatedApp>) -> TokenWorld {
        let sdk = sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let table = create_table(&dynamo).await;
        let prefix = format!("/{}", unique("wxpush-test-"));
        let emulator = EmulatorServer::start(apps).await;
        TokenWorld {
            dynamo,
            ssm,
            table,
            prefix,
            emulator,
        }
    }

    pub fn store(&self) -> Arc<dyn TokenStore> {
        Arc::new(DynamoTokenStore::new(
            self.dynamo.clone(),
            self.table.clone(),
        ))
    }

    pub fn state_store(&self) -> Arc<dyn wxpush_shared::store::StateStore> {
        Arc::new(wxpush_shared::store::DynamoStateStore::new(
            self.dynamo.clone(),
            self.table.clone(),
        ))
    }

    pub fn secrets(&self) -> Arc<dyn SecretStore> {
        Arc::new(CachedSecretStore::new(
            SsmSecretStore::new(self.ssm.clone(), &self.prefix),
            Duration::from_secs(300),
            64,
        ))
    }

    /// A new manager, as a new Lambda instance would have: own cache, own lease identity,
    /// own SSM cache and HTTP client.
    pub fn manager(&self, policy: TokenPolicy, timeout_ms: u64) -> Arc<TokenManager> {
        Arc::new(TokenManager::new(
            self.store(),
            self.secrets(),
            self.emulator.client(timeout_ms),
            policy,
        ))
    }
}

impl TokenWorld {
    /// A world with one official account known to the emulator and configured in SSM.
    pub async fn with_app(secret: &str, token_api: Option<&str>) -> (TokenWorld, String) {
        let appid = random_appid();
        let world = TokenWorld::new(vec![emulated(&appid, secret, AppKind::OfficialAccount)]).await;
        let app = SsmApp {
            appid: &appid,
            kind: Some("official_account"),
            app_secret: Some(secret),
            token_api,
        };
        put_app(&world.ssm, &world.prefix, app).await;
        (world, appid)
    }
}

/// `requests` concurrent `get`s spread round-robin over `managers` (as Lambda instances),
/// each required to succeed.
pub async fn concurrent_gets(
    managers: &[Arc<TokenManager>],
    appid: &str,
    requests: usize,
) -> Vec<AccessToken> {
    let tasks: Vec<_> = (0..requests)
        .map(|i| {
            let (m, appid) = (managers[i % managers.len()].clone(), appid.to_string());
            tokio::spawn(async move { m.get(&appid).await })
        })
        .collect();
    let mut tokens = Vec::with_capacity(requests);
    for t in tasks {
        tokens.push(t.await.expect("task").expect("every caller gets a token"));
    }
    tokens
}

/// A callback service over an in-memory embedded store, for `apps` (appid, token, aes key,
/// kind), with the emulator at hand for the jobs it queues. Returns the store for inspection.
pub async fn callback_service(
    apps: &[(&str, &str, Option<&str>, AppKind)],
) -> (
    wxpush_shared::callback::service::CallbackService,
    Arc<dyn wxpush_shared::store::StateStore>,
    EmulatorServer,
) {
    let (svc, store, emulator, _) = callback_service_with_queue(apps).await;
    (svc, store, emulator)
}

/// [`callback_service`], also returning the queue its follow-up jobs go to.
pub async fn callback_service_with_queue(
    apps: &[(&str, &str, Option<&str>, AppKind)],
) -> (
    wxpush_shared::callback::service::CallbackService,
    Arc<dyn wxpush_shared::store::StateStore>,
    EmulatorServer,
    Arc<faults::RecordingQueue>,
) {
    use wxpush_shared::secrets::{AppEntry, AppsFile, FileSecretStore};
    use wxpush_shared::store::{EmbeddedStateStore, StateStore};
    let emulator = EmulatorServer::start(
        apps.iter()
            .map(|(id, _, _, kind)| emulated(id, "cb-secret", *kind))
            .collect(),
    )
    .await;
    let file = AppsFile {
        apps: apps
            .iter()
            .map(|(appid, token, key, kind)| AppEntry {
                appid: appid.to_string(),
                kind: kind.as_str().into(),
                app_secret: "cb-secret".into(),
                callback_token: Some(token.to_string()),
                encoding_aes_key: key.map(str::to_string),
                ..AppEntry::default()
            })
            .collect(),
    };
    remember_secrets(apps.iter().flat_map(|(_, token, key, _)| {
        std::iter::once(token.to_string()).chain(key.map(str::to_string))
    }));
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecretStore::from_file(file).unwrap());
    let store: Arc<dyn StateStore> = Arc::new(EmbeddedStateStore::new(memory_db()));
    let queue = faults::RecordingQueue::new();
    (
        wxpush_shared::callback::service::CallbackService::new(
            secrets,
            store.clone(),
            queue.clone(),
        ),
        store,
        emulator,
        queue,
    )
}

/// Runs every job `queue` holds (and those they queue) with `runner`, as the batch-worker
/// would; each must succeed. Returns how many ran. Bounded to 1 000 jobs.
pub async fn run_jobs(
    queue: &faults::RecordingQueue,
    runner: &wxpush_shared::jobs::JobRunner,
) -> usize {
    let mut ran = 0;
    for _ in 0..1000 {
        let jobs = queue.take();
        if jobs.is_empty() {
            break;
        }
        for job in jobs {
            runner
                .run(&job, std::time::Instant::now() + Duration::from_secs(60))
                .await
                .unwrap_or_else(|e| panic!("job {job:?} failed: {e}"));
            ran += 1;
        }
    }
    ran
}

/// A job runner over `tokens` and `store` (the follower sync with a queue nobody reads).
pub fn job_runner(
    tokens: Arc<TokenManager>,
    store: Arc<dyn wxpush_shared::store::StateStore>,
    queue: Arc<dyn wxpush_shared::queue::JobQueue>,
) -> wxpush_shared::jobs::JobRunner {
    use wxpush_shared::callback::followup::FollowerCompletion;
    use wxpush_shared::followers::{FollowerSync, SyncConfig};
    wxpush_shared::jobs::JobRunner::new(
        Arc::new(FollowerSync::new(
            tokens.clone(),
            store.clone(),
            queue.clone(),
            SyncConfig::default(),
        )),
        Arc::new(FollowerCompletion::new(tokens, store).with_queue(queue)),
    )
}

/// A fresh `nonce` as WeChat would send with each push (plaintext mode refuses a
/// (timestamp, nonce) pair seen with another body).
pub fn nonce() -> String {
    rand::random::<u32>().to_string()
}

/// A query map as WeChat sends it: `signature` over (token, timestamp, nonce), plus `extra`.
pub fn signed_query(
    token: &str,
    timestamp: &str,
    nonce: &str,
    extra: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let mut q: std::collections::HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    q.insert(
        "signature".into(),
        wxpush_shared::callback::signature::compute(&[token, timestamp, nonce]),
    );
    q.insert("timestamp".into(), timestamp.into());
    q.insert("nonce".into(), nonce.into());
    q
}

impl TokenWorld {
    /// An official account and a mini program linked to it (`linked_official_account`), both
    /// known to the emulator (secrets `oa-secret`, `mp-secret`) and configured in SSM.
    pub async fn with_oa_and_mp() -> (TokenWorld, String, String) {
        let (oa, mp) = (random_appid(), random_appid());
        let world = TokenWorld::new(vec![
            emulated(&oa, "oa-secret", AppKind::OfficialAccount),
            emulated(&mp, "mp-secret", AppKind::MiniProgram),
        ])
        .await;
        let apps = [
            (&oa, "official_account", "oa-secret"),
            (&mp, "mini_program", "mp-secret"),
        ];
        for (appid, kind, secret) in apps {
            put_app(
                &world.ssm,
                &world.prefix,
                SsmApp {
                    appid,
                    kind: Some(kind),
                    app_secret: Some(secret),
                    token_api: None,
                },
            )
            .await;
        }
        world
            .ssm
            .put_parameter()
            .name(format!(
                "{}/apps/{mp}/linked_official_account",
                world.prefix
            ))
            .value(&oa)
            .r#type(ParameterType::String)
            .send()
            .await
            .expect("put parameter in moto");
        (world, oa, mp)
    }
}

/// A real API Gateway v2 (HTTP API) event for the private `/v1` API, from the fixture, with
/// `method`, `path`, an optional JSON body and extra headers; signed by the fixture's caller.
pub fn apigw_v1_request(
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    headers: &[(&str, &str)],
) -> lambda_http::Request {
    apigw_v1_request_as(
        "arn:aws-cn:sts::123456789012:assumed-role/order-service/order-service",
        method,
        path,
        body,
        headers,
    )
}

/// [`apigw_v1_request`] from the IAM principal `caller` (the `userArn` API Gateway verified).
pub fn apigw_v1_request_as(
    caller: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    headers: &[(&str, &str)],
) -> lambda_http::Request {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/apigw-v2-get-token.json"
    ))
    .unwrap();
    let mut e: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    e["rawQueryString"] = serde_json::json!(query);
    e["rawPath"] = serde_json::json!(path);
    e["requestContext"]["http"]["path"] = serde_json::json!(path);
    e["requestContext"]["http"]["method"] = serde_json::json!(method);
    e["requestContext"]["authorizer"]["iam"]["userArn"] = serde_json::json!(caller);
    e["routeKey"] = serde_json::json!("ANY /v1/{proxy+}");
    if let Some(b) = body {
        e["body"] = serde_json::json!(b.to_string());
        e["headers"]["content-type"] = serde_json::json!("application/json");
    }
    for (name, value) in headers {
        e["headers"][*name] = serde_json::json!(value);
    }
    lambda_http::request::from_str(&e.to_string()).expect("a real API Gateway v2 event parses")
}

/// `wxpush serve --sandbox` in-process on 127.0.0.1:0 with an in-memory store; stops when dropped.
pub async fn local_server(
    apps: wxpush_shared::secrets::AppsFile,
    api_key: &str,
) -> wxpush_cli::serve::RunningServer {
    local_server_forwarding(apps, api_key, None, Duration::from_secs(3600)).await
}

/// The secret [`local_server_forwarding`] signs forwarded events with.
pub const FORWARD_SECRET: &str = "test-forward-secret-0123456789abcdef";

/// [`local_server`] forwarding recorded events to the webhook `forward` (`--forward URL`,
/// signed with [`FORWARD_SECRET`]), sweeping the outbox every `sweep_every`.
pub async fn local_server_forwarding(
    apps: wxpush_shared::secrets::AppsFile,
    api_key: &str,
    forward: Option<String>,
    sweep_every: Duration,
) -> wxpush_cli::serve::RunningServer {
    use wxpush_cli::serve::{DataLocation, ServeConfig, start};
    capture_suite_logs();
    remember_secrets(apps.apps.iter().flat_map(|a| {
        [
            Some(a.app_secret.clone()),
            a.callback_token.clone(),
            a.encoding_aes_key.clone(),
        ]
        .into_iter()
        .flatten()
    }));
    remember_secrets([api_key.to_string(), FORWARD_SECRET.to_string()]);
    let forward = forward.map(|url| wxpush_shared::forward::WebhookTarget {
        url,
        secret: wxpush_shared::Secret::new(FORWARD_SECRET),
    });
    start(ServeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        apps,
        sandbox: true,
        data: DataLocation::Memory,
        api_key: api_key.into(),
        wechat: WeChatClientConfig::default(),
        refresh_every: Duration::from_secs(3600),
        refresh_window: Duration::from_secs(900),
        sync: wxpush_shared::followers::SyncConfig {
            backoff: Duration::from_millis(10),
            ..Default::default()
        },
        batches: wxpush_shared::batch::BatchConfig {
            retry_backoff: Duration::from_millis(200),
            flush_interval: Duration::from_millis(300),
            check_interval: Duration::from_millis(300),
            ..Default::default()
        },
        forward,
        sweep_every,
        callback_guard: Default::default(),
    })
    .await
    .expect("the local server starts")
}

/// A query map as a query string.
pub fn query_string(q: &std::collections::HashMap<String, String>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in q {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A real API Gateway v2 event for the public `/wechat/{appid}` route, from the fixture.
pub fn apigw_callback_request(
    method: &str,
    appid: &str,
    q: &std::collections::HashMap<String, String>,
    body: &[u8],
    base64: bool,
) -> lambda_http::Request {
    use base64::Engine;
    use serde_json::json;
    let mut e: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/apigw-v2-wechat-post.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let path = format!("/wechat/{appid}");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["routeKey"] = json!(format!("{method} /wechat/{{appid}}"));
    e["pathParameters"]["appid"] = json!(appid);
    e["rawQueryString"] = json!(query_string(q));
    e["queryStringParameters"] = json!(q);
    if base64 {
        e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        e["isBase64Encoded"] = json!(true);
    } else {
        e["body"] = json!(String::from_utf8_lossy(body));
    }
    lambda_http::request::from_str(&e.to_string()).expect("a real API Gateway v2 event parses")
}

/// Log lines, captured as the JSON subscriber would write them.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Captures every log line of this thread (use a current-thread runtime) until the guard
    /// is dropped.
    pub fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let logs = LogCapture::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `Sender::send` as a test calls it: (HTTP status, JSON body) whatever the outcome.
pub async fn send_message(
    svc: &wxpush_send::SendService,
    appid: &str,
    body: &serde_json::Value,
    key: Option<&str>,
    budget: Duration,
) -> (u16, serde_json::Value) {
    match svc
        .sender
        .send(
            appid,
            body.to_string().as_bytes(),
            key,
            "test-caller",
            std::time::Instant::now() + budget,
        )
        .await
    {
        Ok(o) => (o.status.as_u16(), o.body),
        Err(e) => (e.status().as_u16(), e.body()),
    }
}

/// A jobs queue in moto, with SQS's visibility timeout at 1 s so failed records come back
/// quickly.
pub async fn moto_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(unique(prefix))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .expect("create the queue in moto")
        .queue_url
        .expect("a queue url")
}

/// What [`drive_sqs`] did.
#[derive(Debug, Default)]
pub struct SqsDrive {
    pub invocations: usize,
    /// Records delivered with an `ApproximateReceiveCount` above 1.
    pub redelivered: usize,
}

/// Delivers what is in the moto queue to the batch-worker handler as SQS would: one real SQS
/// event (`tests/data/sqs-event.json`, with each record's id, receipt handle, body and
/// receive count) per receive of up to 10, then deletes the records the handler did not
/// report as failed — except for the first `lose_deletes` invocations, whose deletes are
/// "lost", so SQS delivers those records again. `budget_ms` is each invocation's time left.
/// Stops after `max_invocations`, or when the queue stays empty for four polls.
pub async fn drive_sqs(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    runner: &wxpush_shared::jobs::JobRunner,
    budget_ms: i64,
    lose_deletes: usize,
    max_invocations: usize,
) -> SqsDrive {
    use aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount;
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../data/sqs-event.json")).unwrap();
    let mut done = SqsDrive::default();
    let mut empty_polls = 0;
    while done.invocations < max_invocations && empty_polls < 4 {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(ApproximateReceiveCount)
            .send()
            .await
            .expect("receive from moto");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_polls += 1;
            tokio::time::sleep(Duration::from_millis(400)).await;
            continue;
        }
        empty_polls = 0;
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&ApproximateReceiveCount))
                    .cloned()
                    .unwrap_or_else(|| "1".into());
                if count != "1" {
                    done.redelivered += 1;
                }
                let mut r = fixture["Records"][0].clone();
                r["messageId"] = serde_json::json!(m.message_id());
                r["receiptHandle"] = serde_json::json!(m.receipt_handle());
                r["body"] = serde_json::json!(m.body());
                r["attributes"]["ApproximateReceiveCount"] = serde_json::json!(count);
                r
            })
            .collect();
        let mut event = fixture.clone();
        event["Records"] = serde_json::json!(records);
        let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(event).unwrap();
        let mut context = lambda_runtime::Context::default();
        context.deadline = (wxpush_shared::clock::now_unix_millis() + budget_ms) as u64;
        let response = wxpush_batch_worker::handle_event(
            runner,
            lambda_runtime::LambdaEvent::new(event, context),
            wxpush_batch_worker::DEFAULT_MAX_RECEIVES,
        )
        .await;
        done.invocations += 1;
        if done.invocations <= lose_deletes {
            continue;
        }
        for m in &messages {
            let failed = response
                .batch_item_failures
                .iter()
                .any(|f| Some(f.item_identifier.as_str()) == m.message_id());
            if !failed {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    done
}

/// An HTTPS server on 127.0.0.1:0 with the self-signed certificate of `tests/data/tls/`
/// (a test-only key): answers every request `200` with a body that fits both clients under
/// test — a WeChat `stable_token` answer, and an empty DynamoDB `ListTables`. Stopped when
/// dropped.
pub struct TlsServer {
    pub port: u16,
    handle: JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Both HTTPS clients of a function, as `wxpush_shared` builds them (the process's one root
/// store), pointed at `base`, with an app to ask a token for.
pub async fn https_clients(
    base: &str,
) -> (
    wxpush_shared::wechat::HttpWeChatClient,
    aws_sdk_dynamodb::Client,
    wxpush_shared::AppConfig,
) {
    let wechat = HttpWeChatClient::new(WeChatClientConfig {
        api_base: base.to_string(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    });
    let sdk = wxpush_shared::aws::load_sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(base)
            .build(),
    );
    let app = wxpush_shared::AppConfig {
        appid: "wx0123456789abcdef".into(),
        kind: AppKind::OfficialAccount,
        app_secret: wxpush_shared::Secret::new("tls-test-secret"),
        callback_token: None,
        encoding_aes_key: None,
        linked_official_account: None,
        token_api: wxpush_shared::TokenApi::Stable,
        callback_mode: wxpush_shared::CallbackMode::Plaintext,
        batch_rate: None,
        daily_caps: Default::default(),
    };
    (wechat, dynamo, app)
}

/// The certificate [`TlsServer`] presents, as PEM.
pub const TLS_TEST_CERT: &str = include_str!("../data/tls/test-server-cert.pem");

impl TlsServer {
    pub async fn start() -> TlsServer {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cert = CertificateDer::from_pem_slice(TLS_TEST_CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("../data/tls/test-server-key.pem"))
            .unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            // Bounded by the test: it ends when the server is dropped.
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return; // the client refused our certificate
                    };
                    let mut request = vec![0u8; 16 * 1024];
                    let _ = tls.read(&mut request).await;
                    let body =
                        r#"{"access_token":"tls-test-token","expires_in":7200,"TableNames":[]}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { port, handle }
    }
}
