//! [`TokenManager`]: the one way wxpush code gets an access_token.

use super::{RefreshFailure, StoreError, TokenError, TokenRecord, TokenStore};
use crate::app::{AppConfig, Secret};
use crate::clock::{now_unix, now_unix_millis};
use crate::secrets::SecretStore;
use crate::wechat::WeChatApi;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Timing rules of the central control. The defaults suit Lambda and WeChat's documented
/// behaviour (docs/wechat.md#access-tokens).
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// A token with less than this left is refreshed on demand. `stable_token` only rotates in
    /// a token's last 300 s, and the old token lives 300 s after a rotation.
    pub refresh_before_expiry: Duration,
    /// How long an instance uses its in-memory copy before reading the store again. Below
    /// WeChat's 5-minute overlap, so a token replaced elsewhere is never used after it dies.
    pub cache_max_age: Duration,
    /// How long a refresher holds the lease. Longer than a WeChat call can take.
    pub lease: Duration,
    /// After a failed refresh, how long other instances wait before calling WeChat again.
    pub failure_backoff: Duration,
    /// How long a caller with no valid token waits for another instance's refresh.
    pub wait: Duration,
    /// Poll interval while waiting (jittered by up to the same again).
    pub poll: Duration,
}

impl TokenPolicy {
    /// The defaults, with the lease and the wait sized for a WeChat call that may take up to
    /// `wechat_timeout` (`WECHAT_TIMEOUT_MS`): the lease outlives the call and the store
    /// writes around it, so no second instance refreshes while the first is still waiting
    /// for WeChat; waiters outlive a dead holder's lease.
    pub fn for_wechat_timeout(wechat_timeout: Duration) -> TokenPolicy {
        let lease = (wechat_timeout + LEASE_MARGIN).max(TokenPolicy::default().lease);
        TokenPolicy {
            lease,
            wait: lease + Duration::from_secs(2),
            ..TokenPolicy::default()
        }
    }
}

/// What a lease adds to the WeChat timeout: the store writes before and after the call.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            refresh_before_expiry: Duration::from_secs(300),
            cache_max_age: Duration::from_secs(60),
            lease: Duration::from_secs(10),
            failure_backoff: Duration::from_secs(5),
            wait: Duration::from_secs(12),
            poll: Duration::from_millis(50),
        }
    }
}

/// A token handed to a caller, with what compare-and-invalidate needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    pub token: Secret,
    /// Unix seconds.
    pub expires_at: i64,
    /// The stored version this token is; 0 when it could not be stored (never invalidates).
    pub version: u64,
}

/// What the scheduled refresh did for one app.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The stored token lives longer than the window: nothing to do.
    NotDue {
        expires_at: i64,
    },
    Refreshed {
        expires_at: i64,
        version: u64,
    },
    /// Another instance holds the lease (refreshing, or backing off after a failure).
    Busy {
        last_failure: Option<String>,
    },
}

/// A lease this process took: its own owner id and the record as it was then.
struct Lease {
    owner: String,
    record: TokenRecord,
}

struct CachedToken {
    token: AccessToken,
    read_at: Instant,
}

pub struct TokenManager {
    store: Arc<dyn TokenStore>,
    secrets: Arc<dyn SecretStore>,
    wechat: Arc<dyn WeChatApi>,
    policy: TokenPolicy,
    /// Identifies this instance; each lease adds its own random part, so a stale refresh in
    /// this process can never store into, or release, a newer lease of the same process.
    instance: String,
    cache: Mutex<HashMap<String, CachedToken>>,
    /// One slow-path lookup per app per instance: concurrent callers that miss the cache
    /// wait for the first one's result instead of each reading the store.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenManager {
    pub fn new(
        store: Arc<dyn TokenStore>,
        secrets: Arc<dyn SecretStore>,
        wechat: Arc<dyn WeChatApi>,
        policy: TokenPolicy,
    ) -> Self {
        let instance = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        TokenManager {
            store,
            secrets,
            wechat,
            policy,
            instance,
            cache: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn secrets(&self) -> &Arc<dyn SecretStore> {
        &self.secrets
    }

    pub fn wechat(&self) -> &Arc<dyn WeChatApi> {
        &self.wechat
    }

    /// A valid access_token for `appid`: from memory, else the store, else one WeChat call
    /// made by whichever instance wins the lease while the others wait for its result.
    ///
    /// When WeChat fails (down, out of quota) and the stored token is still valid, that token
    /// is returned; only when none is valid does this fail.
    pub async fn get(&self, appid: &str) -> Result<AccessToken, TokenError> {
        if let Some(hit) = self.cached(appid) {
            return Ok(hit);
        }
        let gate = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.entry(appid.to_string()).or_default().clone()
        };
        let _turn = gate.lock().await;
        if let Some(hit) = self.cached(appid) {
            return Ok(hit);
        }
        // Unknown apps fail here, before anything is written to the store; their slot is
        // dropped again, so `in_flight` stays bounded by the configured apps.
        let app = match self.secrets.app(appid).await {
            Ok(app) => app,
            Err(e) => {
                self.in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(appid);
                return Err(e.into());
            }
        };
        let deadline = Instant::now() + self.policy.wait;
        loop {
            let (now, now_ms) = (now_unix(), now_unix_millis());
            let record = self.store.load(appid).await?.unwrap_or_default();
            if self.is_fresh(&record, now) {
                return Ok(self.remember(appid, &record));
            }
            if record.lease_held_at(now_ms) {
                if let Some(token) = record.valid_token(now) {
                    // Due, but still accepted by WeChat: use it while the holder refreshes.
                    return Ok(AccessToken {
                        token: token.clone(),
                        expires_at: record.expires_at,
                        version: record.version,
                    });
                }
                if let Some(failure) = &record.last_failure {
                    return Err(TokenError::RecentlyFailed {
                        appid: appid.to_string(),
                        errcode: failure.errcode,
                        message: failure.message.clone(),
                    });
                }
            } else if let Some(leased) = self.try_lease(appid, now_ms).await? {
                return self.refresh_holding_lease(&app, leased, true).await;
            }
            if Instant::now() >= deadline {
                return Err(TokenError::RefreshInProgress {
                    appid: appid.to_string(),
                });
            }
            let jitter = rand::random_range(0..=self.policy.poll.as_millis() as u64);
            tokio::time::sleep(self.policy.poll + Duration::from_millis(jitter)).await;
        }
    }

    /// Compare-and-invalidate after WeChat rejected `failed` (40001/40014/42001): forgets it
    /// here and marks it unusable in the store only if the store still holds that version,
    /// so a newer token written meanwhile is kept. Returns whether the store changed.
    pub async fn invalidate(&self, appid: &str, failed: &AccessToken) -> Result<bool, TokenError> {
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache
                .get(appid)
                .is_some_and(|c| c.token.token == failed.token)
            {
                cache.remove(appid);
            }
        }
        if failed.version == 0 {
            return Ok(false);
        }
        let changed = self.store.invalidate(appid, failed.version).await?;
        info!(
            appid,
            version = failed.version,
            changed,
            "access_token invalidated after WeChat rejected it"
        );
        Ok(changed)
    }

    /// The scheduled refresh of one app: refreshes when the stored token expires within
    /// `window` (or there is none). Unlike [`get`](Self::get), a failure is an error even
    /// when the old token is still valid, so it is reported.
    pub async fn refresh_if_due(
        &self,
        appid: &str,
        window: Duration,
    ) -> Result<RefreshOutcome, TokenError> {
        let app = self.secrets.app(appid).await?;
        let (now, now_ms) = (now_unix(), now_unix_millis());
        let record = self.store.load(appid).await?.unwrap_or_default();
        let window = window.as_secs() as i64;
        if record.valid_token(now).is_some() && record.expires_at - now > window {
            return Ok(RefreshOutcome::NotDue {
                expires_at: record.expires_at,
            });
        }
        if record.lease_held_at(now_ms) {
            return Ok(RefreshOutcome::Busy {
                last_failure: record.last_failure.map(|f| f.message),
            });
        }
        let Some(leased) = self.try_lease(appid, now_ms).await? else {
            return Ok(RefreshOutcome::Busy { last_failure: None });
        };
        if leased.record.valid_token(now).is_some() && leased.record.expires_at - now > window {
            self.release(appid, &leased.owner, None).await;
            return Ok(RefreshOutcome::NotDue {
                expires_at: leased.record.expires_at,
            });
        }
        let token = self.refresh_holding_lease(&app, leased, false).await?;
        Ok(RefreshOutcome::Refreshed {
            expires_at: token.expires_at,
            version: token.version,
        })
    }

    fn cached(&self, appid: &str) -> Option<AccessToken> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(appid)?;
        let fresh_enough = entry.read_at.elapsed() < self.policy.cache_max_age;
        let lives_long_enough = entry.token.expires_at - now_unix()
            > self.policy.refresh_before_expiry.as_secs() as i64;
        (fresh_enough && lives_long_enough).then(|| entry.token.clone())
    }

    fn remember(&self, appid: &str, record: &TokenRecord) -> AccessToken {
        let token = AccessToken {
            token: record
                .access_token
                .clone()
                .unwrap_or_else(|| Secret::new("")),
            expires_at: record.expires_at,
            version: record.version,
        };
        self.remember_token(appid, &token);
        token
    }

    fn remember_token(&self, appid: &str, token: &AccessToken) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            appid.to_string(),
            CachedToken {
                token: token.clone(),
                read_at: Instant::now(),
            },
        );
    }

    fn is_fresh(&self, record: &TokenRecord, now: i64) -> bool {
        record.valid_token(now).is_some()
            && record.expires_at - now > self.policy.refresh_before_expiry.as_secs() as i64
    }

    async fn try_lease(&self, appid: &str, now_ms: i64) -> Result<Option<Lease>, StoreError> {
        let until = now_ms + self.policy.lease.as_millis() as i64;
        let owner = format!("{}-{:016x}", self.instance, rand::random::<u64>());
        let record = self
            .store
            .try_acquire_lease(appid, &owner, now_ms, until)
            .await?;
        Ok(record.map(|record| Lease { owner, record }))
    }

    async fn release(&self, appid: &str, owner: &str, failure: Option<&RefreshFailure>) {
        let hold_until = now_unix_millis() + self.policy.failure_backoff.as_millis() as i64;
        if let Err(e) = self
            .store
            .release_lease(appid, owner, failure, hold_until)
            .await
        {
            // The lease then simply expires.
            warn!(appid, error = %e, "could not release the token lease");
        }
    }

    /// Called holding the lease, with the record as it was when the lease was taken.
    /// `fall_back` returns the still-valid old token when WeChat fails.
    async fn refresh_holding_lease(
        &self,
        app: &AppConfig,
        lease: Lease,
        fall_back: bool,
    ) -> Result<AccessToken, TokenError> {
        let appid = app.appid.as_str();
        let Lease {
            owner,
            record: leased,
        } = lease;
        let started = now_unix();
        if fall_back && self.is_fresh(&leased, started) {
            // Another instance refreshed between our read and our lease.
            self.release(appid, &owner, None).await;
            return Ok(self.remember(appid, &leased));
        }
        crate::metrics::count("WeChatTokenCalls", 1.0, &[]);
        match self.wechat.fetch_token(app).await {
            Ok(issued) => {
                let expires_at = started + issued.expires_in.max(0);
                // stable_token answers with the same token while it is valid: same version then,
                // so compare-and-invalidate still recognises it.
                let version = if leased.access_token.as_ref() == Some(&issued.access_token) {
                    leased.version.max(1)
                } else {
                    leased.version + 1
                };
                let stored = self
                    .store
                    .store_token(appid, &owner, &issued.access_token, expires_at, version)
                    .await;
                let version = match stored {
                    Ok(true) => version,
                    Ok(false) => {
                        warn!(
                            appid,
                            "token lease was lost before the new token was stored; using it unstored"
                        );
                        0
                    }
                    Err(e) => {
                        warn!(appid, error = %e, "could not store the new access_token; using it unstored");
                        // Free the lease (if the store answers again) so the next caller
                        // refreshes at once instead of waiting for the lease to run out.
                        self.release(appid, &owner, None).await;
                        0
                    }
                };
                info!(
                    appid,
                    expires_at, version, "access_token fetched from WeChat"
                );
                let token = AccessToken {
                    token: issued.access_token,
                    expires_at,
                    version,
                };
                if version != 0 {
                    self.remember_token(appid, &token);
                }
                Ok(token)
            }
            Err(source) => {
                let failure = RefreshFailure {
                    errcode: source.errcode(),
                    message: source.to_string(),
                    at_ms: now_unix_millis(),
                };
                warn!(appid, errcode = ?failure.errcode, error = %failure.message, "access_token refresh failed");
                self.release(appid, &owner, Some(&failure)).await;
                if fall_back && let Some(token) = leased.valid_token(now_unix()) {
                    warn!(
                        appid,
                        expires_at = leased.expires_at,
                        "WeChat refused a refresh; serving the still-valid token"
                    );
                    return Ok(AccessToken {
                        token: token.clone(),
                        expires_at: leased.expires_at,
                        version: leased.version,
                    });
                }
                Err(TokenError::WeChat {
                    appid: appid.to_string(),
                    source,
                })
            }
        }
    }
}
