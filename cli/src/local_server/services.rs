//! The services `wxpush serve` runs, wired as the Lambdas wire them but over one embedded
//! database: the token manager, sending, batches, the follower sync, callbacks, forwarding,
//! and the job runner the local worker drives.

use super::config::{DataLocation, LOCAL_COMPLETION_DELAY, ServeConfig};
use redb::Database;
use std::sync::Arc;
use wxpush_send::SendService;
use wxpush_shared::batch::Batches;
use wxpush_shared::callback::followup::FollowerCompletion;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::followers::FollowerSync;
use wxpush_shared::forward::{EventSink, Forwarder, WebhookSink, WebhookTarget};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::{JobQueue, LocalJobQueue, LocalJobs};
use wxpush_shared::secrets::{FileSecretStore, SecretStore};
use wxpush_shared::store::{EmbeddedStateStore, StateStore};
use wxpush_shared::token::{EmbeddedTokenStore, TokenManager, TokenPolicy, TokenStore};
use wxpush_shared::wechat::{HttpWeChatClient, WeChatApi, WeChatClientConfig};

/// Everything the routes, the worker and the timers use.
pub(super) struct Services {
    pub tokens: Arc<TokenManager>,
    pub queue: Arc<dyn JobQueue>,
    /// The queued jobs, for the local worker.
    pub jobs: LocalJobs,
    pub runner: Arc<JobRunner>,
    pub send: SendService,
    pub callback: CallbackService,
}

/// The embedded database's stores.
struct Storage {
    /// SQS's stand-in: a queue kept in the same file, so queued jobs, their delays and
    /// their retries survive a crash or a restart; one worker task runs them.
    queue: LocalJobQueue,
    jobs: LocalJobs,
    tokens: Arc<dyn TokenStore>,
    state: Arc<dyn StateStore>,
}

impl Services {
    pub fn build(
        cfg: &ServeConfig,
        secrets: FileSecretStore,
        wechat: WeChatClientConfig,
    ) -> Result<Services, String> {
        let secrets: Arc<dyn SecretStore> = Arc::new(secrets);
        let storage = Storage::open(&cfg.data)?;
        let state_store = storage.state;
        let wechat_timeout = wechat.timeout;
        let wechat: Arc<dyn WeChatApi> = Arc::new(HttpWeChatClient::new(wechat));
        let tokens = Arc::new(TokenManager::new(
            storage.tokens,
            secrets.clone(),
            wechat,
            TokenPolicy::for_wechat_timeout(wechat_timeout),
        ));
        let followers = Arc::new(FollowerSync::new(
            tokens.clone(),
            state_store.clone(),
            Arc::new(storage.queue.clone()),
            cfg.sync.clone(),
        ));
        let queue: Arc<dyn JobQueue> = Arc::new(storage.queue);
        let send = SendService::new(tokens.clone(), state_store.clone(), wechat_timeout)
            .with_followers(followers.clone());
        let batches = Arc::new(Batches::new(
            send.sender.clone(),
            state_store.clone(),
            queue.clone(),
            cfg.batches.clone(),
        ));
        let mut runner = JobRunner::new(
            followers,
            Arc::new(FollowerCompletion::new(tokens.clone(), state_store.clone())),
        )
        .with_batches(batches.clone());
        if let Some(target) = &cfg.forward {
            let forwarder = forwarder(target, &state_store, &queue, &secrets)?;
            runner = runner.with_forwarder(Arc::new(forwarder));
        }
        let callback = CallbackService::new(secrets, state_store, queue.clone())
            .with_forwarding(cfg.forward.is_some())
            .with_completion_delay(LOCAL_COMPLETION_DELAY);
        Ok(Services {
            tokens,
            queue,
            jobs: storage.jobs,
            runner: Arc::new(runner),
            send: send.with_batches(batches),
            callback,
        })
    }
}

/// `--forward URL`: recorded events delivered to the webhook. No dead-letter queue here:
/// an event is retried until the webhook takes it.
fn forwarder(
    target: &WebhookTarget,
    state_store: &Arc<dyn StateStore>,
    queue: &Arc<dyn JobQueue>,
    secrets: &Arc<dyn SecretStore>,
) -> Result<Forwarder, String> {
    let sink: Arc<dyn EventSink> = Arc::new(WebhookSink::new(target.clone())?);
    Ok(
        Forwarder::new(state_store.clone(), queue.clone(), secrets.clone(), sink)
            .without_dead_letter(),
    )
}

impl Storage {
    fn open(data: &DataLocation) -> Result<Storage, String> {
        let db = open_db(data)?;
        let (queue, jobs) = LocalJobQueue::open(db.clone()).map_err(|e| e.to_string())?;
        Ok(Storage {
            queue,
            jobs,
            tokens: Arc::new(EmbeddedTokenStore::new(db.clone())),
            state: Arc::new(EmbeddedStateStore::new(db)),
        })
    }
}

fn open_db(data: &DataLocation) -> Result<Arc<Database>, String> {
    let db = match data {
        DataLocation::Memory => {
            Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())
        }
        DataLocation::File(path) => {
            // Access tokens and decrypted user messages: the owner's only.
            crate::private_fs::prepare_private_file(path)?;
            Database::create(path)
        }
    };
    db.map(Arc::new)
        .map_err(|e| format!("cannot open the embedded database: {e}"))
}
