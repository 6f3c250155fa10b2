//! Cold-start wiring for the Lambdas: every client built once, from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `WXPUSH_TABLE` | the DynamoDB table | required |
//! | `WXPUSH_SSM_PREFIX` | SSM prefix of the apps | `/wxpush` |
//! | `WXPUSH_SECRETS_TTL_SECS` | how long app config is cached in memory | 300 |
//! | `WXPUSH_REFRESH_WINDOW_SECS` | scheduled refresh: tokens expiring within it | 900 |
//! | `WXPUSH_QUEUE_URL` | the SQS queue of background jobs (follower sync, unionid look-ups) | none: jobs are refused |
//! | `WXPUSH_EVENT_BUS` | the EventBridge bus (name or ARN) recorded callback events are forwarded to | none: events are not forwarded |
//! | `WECHAT_API_BASE`, `WECHAT_TIMEOUT_MS` | the WeChat client | api.weixin.qq.com, 5000 |

use crate::forward::{EventBridgeSink, EventSink};
use crate::queue::{Job, JobQueue, QueueError, SqsJobQueue};
use crate::secrets::{CachedSecretStore, SecretStore, SsmSecretStore};
use crate::store::{DynamoStateStore, StateStore};
use crate::token::{DynamoTokenStore, TokenManager, TokenPolicy, TokenStore};
use crate::wechat::{HttpWeChatClient, WeChatApi, WeChatClientConfig};
use std::sync::Arc;
use std::time::Duration;

/// Bounded so a misconfigured prefix cannot grow memory without limit.
pub const SECRET_CACHE_CAPACITY: usize = 512;

#[derive(Clone)]
pub struct AwsDeps {
    pub tokens: Arc<TokenManager>,
    pub secrets: Arc<dyn SecretStore>,
    pub state_store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub refresh_window: Duration,
    /// Where recorded callback events are forwarded (`WXPUSH_EVENT_BUS`), if anywhere.
    pub event_sink: Option<Arc<dyn EventSink>>,
}

/// `WXPUSH_EVENT_BUS`, when set and not blank.
pub fn event_bus_from_env() -> Option<String> {
    std::env::var("WXPUSH_EVENT_BUS")
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
}

/// The queue of a deployment without `WXPUSH_QUEUE_URL`: every job is refused, saying why.
pub struct UnconfiguredQueue;

#[async_trait::async_trait]
impl JobQueue for UnconfiguredQueue {
    async fn enqueue(&self, _job: &Job) -> Result<(), QueueError> {
        Err(QueueError::Unavailable(
            "WXPUSH_QUEUE_URL is not set for this function".into(),
        ))
    }
}

fn env_secs(name: &str, default: u64) -> Result<Duration, String> {
    match std::env::var(name) {
        Err(_) => Ok(Duration::from_secs(default)),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{name} must be a number of seconds")),
    }
}

/// What the public callback needs, and nothing more: the callback's own app parameters
/// (never an AppSecret), the state table and the jobs queue. No WeChat client and no token
/// manager are built, so its cold start loads no TLS roots for a client it never uses.
#[derive(Clone)]
pub struct CallbackDeps {
    pub secrets: Arc<dyn SecretStore>,
    pub state_store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    /// Whether recorded events are forwarded (`WXPUSH_EVENT_BUS` is set): the callback writes
    /// their outbox rows; the worker delivers them.
    pub forwarding: bool,
}

/// The environment and AWS clients every function starts from.
struct Common {
    sdk: aws_config::SdkConfig,
    table: String,
    prefix: String,
    secrets_ttl: Duration,
}

impl Common {
    async fn from_env() -> Result<Common, String> {
        let table =
            std::env::var("WXPUSH_TABLE").map_err(|_| "WXPUSH_TABLE is not set".to_string())?;
        Ok(Common {
            table,
            prefix: std::env::var("WXPUSH_SSM_PREFIX").unwrap_or_else(|_| "/wxpush".to_string()),
            secrets_ttl: env_secs("WXPUSH_SECRETS_TTL_SECS", 300)?,
            sdk: crate::aws::load_sdk_config().await,
        })
    }

    fn secrets(&self, ssm: SsmSecretStore) -> Arc<dyn SecretStore> {
        Arc::new(CachedSecretStore::new(
            ssm,
            self.secrets_ttl,
            SECRET_CACHE_CAPACITY,
        ))
    }

    fn queue(&self) -> Arc<dyn JobQueue> {
        match std::env::var("WXPUSH_QUEUE_URL") {
            Ok(url) if !url.trim().is_empty() => Arc::new(SqsJobQueue::new(
                aws_sdk_sqs::Client::new(&self.sdk),
                url.trim(),
            )),
            _ => Arc::new(UnconfiguredQueue),
        }
    }
}

impl CallbackDeps {
    pub async fn from_env() -> Result<CallbackDeps, String> {
        let c = Common::from_env().await?;
        let ssm = SsmSecretStore::callback_only(aws_sdk_ssm::Client::new(&c.sdk), &c.prefix);
        Ok(CallbackDeps {
            secrets: c.secrets(ssm),
            state_store: Arc::new(DynamoStateStore::new(
                aws_sdk_dynamodb::Client::new(&c.sdk),
                c.table.clone(),
            )),
            queue: c.queue(),
            forwarding: event_bus_from_env().is_some(),
        })
    }
}

impl AwsDeps {
    pub async fn from_env() -> Result<AwsDeps, String> {
        let c = Common::from_env().await?;
        let refresh_window = env_secs("WXPUSH_REFRESH_WINDOW_SECS", 900)?;
        let dynamo = aws_sdk_dynamodb::Client::new(&c.sdk);
        let store: Arc<dyn TokenStore> = Arc::new(DynamoTokenStore::new(dynamo.clone(), &c.table));
        let state_store: Arc<dyn StateStore> =
            Arc::new(DynamoStateStore::new(dynamo, c.table.clone()));
        let secrets = c.secrets(SsmSecretStore::new(
            aws_sdk_ssm::Client::new(&c.sdk),
            &c.prefix,
        ));
        let wechat_config = WeChatClientConfig::from_env();
        let policy = TokenPolicy::for_wechat_timeout(wechat_config.timeout);
        let wechat: Arc<dyn WeChatApi> =
            Arc::new(HttpWeChatClient::new(wechat_config).map_err(|e| e.to_string())?);
        let tokens = Arc::new(TokenManager::new(store, secrets.clone(), wechat, policy));
        let event_sink = event_bus_from_env().map(|bus| {
            Arc::new(EventBridgeSink::new(
                aws_sdk_eventbridge::Client::new(&c.sdk),
                bus,
            )) as Arc<dyn EventSink>
        });
        Ok(AwsDeps {
            tokens,
            secrets,
            state_store,
            queue: c.queue(),
            refresh_window,
            event_sink,
        })
    }
}
