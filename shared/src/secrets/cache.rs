//! A bounded, time-limited cache in front of any [`SecretStore`], with a cached listing of
//! the configured appids: a request naming an appid that is not configured costs no read of
//! the secret store (the callback route is public; made-up appids must not become SSM calls
//! that exhaust the account's rate or evict real apps from the cache).

use super::{ConfigError, SecretStore};
use crate::app::AppConfig;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the listing of configured appids is trusted. A newly configured app is served
/// after at most this long; a removed one is refused after it (and after its entry's TTL).
pub const LISTING_TTL: Duration = Duration::from_secs(60);

/// How long a listed app whose configuration cannot be built (a missing or invalid
/// parameter, safe mode without `encoding_aes_key`, no parameter the reader may read) is
/// answered with the same error before the store is read again: a flood on its public
/// callback URL costs one read per this interval, and an operator's fix is served after it.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);

/// An app's configuration, or why it could not be read, and until when that answer stands.
struct Entry {
    until: Instant,
    value: Result<Arc<AppConfig>, ConfigError>,
}

pub struct CachedSecretStore<S> {
    inner: S,
    ttl: Duration,
    capacity: usize,
    /// Listed apps only: nothing unknown is ever stored, so nothing unknown evicts them.
    /// A failed read is kept too ([`FAILURE_TTL`], or [`LISTING_RETRY`] when the store
    /// itself failed), bounded by the same capacity.
    entries: Mutex<HashMap<String, Entry>>,
    /// The appids the store lists; refreshed by one caller at a time.
    listing: tokio::sync::Mutex<Listing>,
}

/// The last good listing and when it was read; when the last attempt failed, and why.
#[derive(Default)]
struct Listing {
    apps: Option<(Instant, Arc<HashSet<String>>)>,
    failed: Option<(Instant, ConfigError)>,
}

/// After a failed listing (or a failed read of an app's parameters), how long before the
/// store is asked again: a flood of requests while SSM throttles makes at most one call per
/// this interval.
pub const LISTING_RETRY: Duration = Duration::from_secs(5);

impl<S: SecretStore> CachedSecretStore<S> {
    /// `ttl`: how long a read stays fresh (secrets rotated in SSM are picked up after it);
    /// `capacity`: how many apps are held at most.
    pub fn new(inner: S, ttl: Duration, capacity: usize) -> Self {
        CachedSecretStore {
            inner,
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
            listing: tokio::sync::Mutex::new(Listing::default()),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The cached answer for `appid` (a configuration or the error its read ended with),
    /// while it stands.
    fn lookup(&self, appid: &str) -> Option<Result<Arc<AppConfig>, ConfigError>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(appid)?;
        (Instant::now() < entry.until).then(|| entry.value.clone())
    }

    /// How long an answer read from the store stands: a configuration `ttl`; a configuration
    /// error [`FAILURE_TTL`]; a failure of the store itself [`LISTING_RETRY`] (never longer
    /// than `ttl`).
    fn lifetime(&self, value: &Result<Arc<AppConfig>, ConfigError>) -> Duration {
        match value {
            Ok(_) => self.ttl,
            Err(ConfigError::Backend(_)) => LISTING_RETRY.min(self.ttl),
            Err(_) => FAILURE_TTL.min(self.ttl),
        }
    }

    fn remember(&self, appid: &str, value: Result<Arc<AppConfig>, ConfigError>) {
        let until = Instant::now() + self.lifetime(&value);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(appid) {
            // Make room: drop expired entries, then the one that expires first.
            let now = Instant::now();
            entries.retain(|_, e| now < e.until);
            if entries.len() >= self.capacity
                && let Some(first) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&first);
            }
        }
        entries.insert(appid.to_string(), Entry { until, value });
    }

    /// The configured appids: the cached listing, or one new listing (names only) when it is
    /// older than [`LISTING_TTL`]. Concurrent callers share one listing call.
    ///
    /// When the listing fails, the last good one keeps serving (and the store is asked again
    /// only after [`LISTING_RETRY`]); with none, the error is returned for that long without
    /// asking again.
    async fn configured(&self) -> Result<Arc<HashSet<String>>, ConfigError> {
        let mut listing = self.listing.lock().await;
        if let Some((at, apps)) = &listing.apps
            && at.elapsed() < LISTING_TTL.min(self.ttl)
        {
            return Ok(apps.clone());
        }
        if let Some((at, err)) = &listing.failed
            && at.elapsed() < LISTING_RETRY
        {
            return match &listing.apps {
                Some((_, stale)) => Ok(stale.clone()),
                None => Err(err.clone()),
            };
        }
        match self.inner.list_apps().await {
            Ok(apps) => {
                let apps: Arc<HashSet<String>> = Arc::new(apps.into_iter().collect());
                *listing = Listing {
                    apps: Some((Instant::now(), apps.clone())),
                    failed: None,
                };
                Ok(apps)
            }
            Err(err) => {
                listing.failed = Some((Instant::now(), err.clone()));
                match &listing.apps {
                    Some((_, stale)) => Ok(stale.clone()),
                    None => Err(err),
                }
            }
        }
    }
}

#[async_trait]
impl<S: SecretStore> SecretStore for CachedSecretStore<S> {
    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
        if let Some(hit) = self.lookup(appid) {
            return hit;
        }
        if !crate::app::is_valid_appid(appid) || !self.configured().await?.contains(appid) {
            return Err(ConfigError::UnknownApp {
                appid: appid.to_string(),
            });
        }
        // Only listed apps get here. A read that fails is kept as well, briefly: a listed app
        // that cannot be built must not turn every request naming it into a store read.
        // Errors name the app and the parameter, never a value, so keeping one keeps no secret.
        let value = self.inner.app(appid).await;
        self.remember(appid, value.clone());
        value
    }

    async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
        self.inner.list_apps().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{AppKind, Secret, TokenApi};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize, AtomicUsize);

    #[async_trait]
    impl SecretStore for Counting {
        async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(AppConfig {
                appid: appid.into(),
                kind: AppKind::MiniProgram,
                app_secret: Secret::new("x"),
                callback_token: None,
                encoding_aes_key: None,
                linked_official_account: None,
                token_api: TokenApi::Stable,
                callback_mode: crate::app::CallbackMode::Plaintext,
                batch_rate: None,
                daily_caps: Default::default(),
            }))
        }
        async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(["a", "b", "c"].iter().map(|a| appid(a)).collect())
        }
    }

    fn appid(short: &str) -> String {
        format!("wx{:0>16}", short.as_bytes()[0] - b'a' + 10)
    }

    #[tokio::test]
    async fn caches_and_bounds() {
        let cache = CachedSecretStore::new(
            Counting(AtomicUsize::new(0), AtomicUsize::new(0)),
            Duration::from_secs(60),
            2,
        );
        let (a, b, c) = (appid("a"), appid("b"), appid("c"));
        cache.app(&a).await.unwrap();
        cache.app(&a).await.unwrap();
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 1);
        cache.app(&b).await.unwrap();
        cache.app(&c).await.unwrap();
        assert!(cache.entries.lock().unwrap().len() <= 2);
        cache.app(&a).await.unwrap(); // evicted as the oldest: read again
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 4);
        // Unknown and malformed appids: refused from the listing, never read, never cached.
        for i in 0..1000 {
            let made_up = format!("wxffff{i:012x}");
            assert!(matches!(
                cache.app(&made_up).await,
                Err(ConfigError::UnknownApp { .. })
            ));
        }
        assert!(cache.app("not-an-appid").await.is_err());
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 4);
        assert_eq!(cache.inner().1.load(Ordering::SeqCst), 1, "one listing");
        assert!(cache.entries.lock().unwrap().len() <= 2);
        assert!(cache.lookup(&a).is_some(), "real apps stay cached");
    }

    /// Lists once (when `.0` starts at 0), then fails every time.
    struct Flaky(AtomicUsize);

    #[async_trait]
    impl SecretStore for Flaky {
        async fn app(&self, _appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
            Err(ConfigError::Backend("down".into()))
        }
        async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(vec![appid("a")]),
                _ => Err(ConfigError::Backend("throttled".into())),
            }
        }
    }

    #[tokio::test]
    async fn a_failing_listing_is_asked_rarely_and_the_last_one_serves() {
        let cache = CachedSecretStore::new(Flaky(AtomicUsize::new(0)), Duration::from_secs(1), 8);
        assert!(cache.configured().await.unwrap().contains(&appid("a")));
        // Expire it, then a flood while the store throttles: one more listing call, and the
        // last good listing keeps answering.
        cache.listing.lock().await.apps.as_mut().unwrap().0 -= Duration::from_secs(120);
        for _ in 0..500 {
            assert!(cache.configured().await.unwrap().contains(&appid("a")));
        }
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 2);
        // With no good listing at all, the error is answered without asking again.
        let empty = CachedSecretStore::new(Flaky(AtomicUsize::new(1)), Duration::from_secs(60), 8);
        for _ in 0..500 {
            assert!(empty.configured().await.is_err());
        }
        assert_eq!(empty.inner().0.load(Ordering::SeqCst), 2);
    }

    /// Lists a, b and c; a is configured, b cannot be built, c's read fails. Counts reads.
    struct Broken(AtomicUsize);

    #[async_trait]
    impl SecretStore for Broken {
        async fn app(&self, id: &str) -> Result<Arc<AppConfig>, ConfigError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if id == appid("a") {
                return Counting(AtomicUsize::new(0), AtomicUsize::new(0))
                    .app(id)
                    .await;
            }
            Err(if id == appid("b") {
                ConfigError::InvalidParameter {
                    appid: id.into(),
                    name: "callback_mode".into(),
                    reason: "safe and compatible mode need parameter `encoding_aes_key`".into(),
                }
            } else {
                ConfigError::Backend("SSM GetParameters failed: throttled".into())
            })
        }
        async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
            Ok(["a", "b", "c"].iter().map(|a| appid(a)).collect())
        }
    }

    #[tokio::test]
    async fn a_listed_app_that_cannot_be_read_is_asked_rarely() {
        let cache =
            CachedSecretStore::new(Broken(AtomicUsize::new(0)), Duration::from_secs(300), 2);
        let (a, b, c) = (appid("a"), appid("b"), appid("c"));
        let first = cache.app(&b).await.unwrap_err();
        for _ in 0..1000 {
            assert_eq!(cache.app(&b).await.unwrap_err(), first, "the same error");
        }
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 1, "one read");
        // Once FAILURE_TTL is over, the store is read again (the operator's fix is served).
        let until = cache.entries.lock().unwrap().get(&b).unwrap().until;
        assert!(until <= Instant::now() + FAILURE_TTL);
        cache.entries.lock().unwrap().get_mut(&b).unwrap().until = Instant::now();
        assert_eq!(cache.app(&b).await.unwrap_err(), first);
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 2);
        // A failing store: kept for LISTING_RETRY only.
        for _ in 0..100 {
            assert!(matches!(cache.app(&c).await, Err(ConfigError::Backend(_))));
        }
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 3);
        let until = cache.entries.lock().unwrap().get(&c).unwrap().until;
        assert!(until <= Instant::now() + LISTING_RETRY);
        // Bounded like the rest, and a failure goes before a working app: a stays cached.
        cache.app(&a).await.unwrap();
        cache.app(&b).await.unwrap_err();
        cache.app(&c).await.unwrap_err();
        assert!(cache.entries.lock().unwrap().len() <= 2);
        assert!(
            matches!(cache.lookup(&a), Some(Ok(_))),
            "a working app stays"
        );
    }
}
