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

use crate::aws::SdkClient;
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
    /// The WeChat client's whole-request timeout.
    pub wechat_timeout: Duration,
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

/// What the functions read from their environment (see the table above), apart from the
/// AWS SDK's own variables.
#[derive(Clone, Debug)]
pub struct RuntimeEnv {
    pub table: String,
    pub ssm_prefix: String,
    pub secrets_ttl: Duration,
    pub refresh_window: Duration,
    /// `WXPUSH_QUEUE_URL`, when set.
    pub queue_url: Option<String>,
    /// `WXPUSH_EVENT_BUS`, when set.
    pub event_bus: Option<String>,
    pub wechat: WeChatClientConfig,
}

impl RuntimeEnv {
    pub fn from_env() -> Result<RuntimeEnv, String> {
        let table =
            std::env::var("WXPUSH_TABLE").map_err(|_| "WXPUSH_TABLE is not set".to_string())?;
        Ok(RuntimeEnv {
            table,
            ssm_prefix: std::env::var("WXPUSH_SSM_PREFIX")
                .unwrap_or_else(|_| "/wxpush".to_string()),
            secrets_ttl: env_secs("WXPUSH_SECRETS_TTL_SECS", 300)?,
            refresh_window: env_secs("WXPUSH_REFRESH_WINDOW_SECS", 900)?,
            queue_url: std::env::var("WXPUSH_QUEUE_URL")
                .ok()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty()),
            event_bus: event_bus_from_env(),
            wechat: WeChatClientConfig::from_env(),
        })
    }

    fn secrets(&self, ssm: SsmSecretStore) -> Arc<dyn SecretStore> {
        Arc::new(CachedSecretStore::new(
            ssm,
            self.secrets_ttl,
            SECRET_CACHE_CAPACITY,
        ))
    }

    fn queue(&self, sdk: &aws_config::SdkConfig) -> Arc<dyn JobQueue> {
        match &self.queue_url {
            Some(url) => Arc::new(SqsJobQueue::new(
                SdkClient::deferred(sdk, aws_sdk_sqs::Client::new),
                url,
            )),
            None => Arc::new(UnconfiguredQueue),
        }
    }
}

impl CallbackDeps {
    pub async fn from_env() -> Result<CallbackDeps, String> {
        let env = RuntimeEnv::from_env()?;
        Ok(CallbackDeps::build(
            &crate::aws::load_sdk_config().await,
            &env,
        ))
    }

    /// The callback's clients over `sdk` (the same wiring `from_env` uses).
    pub fn build(sdk: &aws_config::SdkConfig, env: &RuntimeEnv) -> CallbackDeps {
        let ssm = SsmSecretStore::callback_only(
            SdkClient::deferred(sdk, aws_sdk_ssm::Client::new),
            &env.ssm_prefix,
        );
        CallbackDeps {
            secrets: env.secrets(ssm),
            state_store: Arc::new(DynamoStateStore::new(
                SdkClient::deferred(sdk, aws_sdk_dynamodb::Client::new),
                env.table.clone(),
            )),
            queue: env.queue(sdk),
            forwarding: env.event_bus.is_some(),
        }
    }
}

impl AwsDeps {
    pub async fn from_env() -> Result<AwsDeps, String> {
        let env = RuntimeEnv::from_env()?;
        Ok(AwsDeps::build(&crate::aws::load_sdk_config().await, &env))
    }

    /// Every client of the functions that call WeChat, over `sdk` (the same wiring
    /// `from_env` uses).
    pub fn build(sdk: &aws_config::SdkConfig, env: &RuntimeEnv) -> AwsDeps {
        let dynamo = SdkClient::deferred(sdk, aws_sdk_dynamodb::Client::new);
        let store: Arc<dyn TokenStore> =
            Arc::new(DynamoTokenStore::new(dynamo.clone(), &env.table));
        let state_store: Arc<dyn StateStore> =
            Arc::new(DynamoStateStore::new(dynamo, env.table.clone()));
        let secrets = env.secrets(SsmSecretStore::new(
            SdkClient::deferred(sdk, aws_sdk_ssm::Client::new),
            &env.ssm_prefix,
        ));
        let policy = TokenPolicy::for_wechat_timeout(env.wechat.timeout);
        let wechat: Arc<dyn WeChatApi> = Arc::new(HttpWeChatClient::new(env.wechat.clone()));
        let tokens = Arc::new(TokenManager::new(store, secrets.clone(), wechat, policy));
        let event_sink = env.event_bus.clone().map(|bus| {
            Arc::new(EventBridgeSink::new(
                SdkClient::deferred(sdk, aws_sdk_eventbridge::Client::new),
                bus,
            )) as Arc<dyn EventSink>
        });
        AwsDeps {
            tokens,
            secrets,
            state_store,
            queue: env.queue(sdk),
            refresh_window: env.refresh_window,
            event_sink,
            wechat_timeout: env.wechat.timeout,
        }
    }
}
