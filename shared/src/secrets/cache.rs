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

/// An app's configuration and when it was read.
type Entry = (Instant, Arc<AppConfig>);

pub struct CachedSecretStore<S> {
    inner: S,
    ttl: Duration,
    capacity: usize,
    /// Configured apps only: nothing unknown is ever stored, so nothing unknown evicts them.
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

/// After a failed listing, how long before the store is asked again: a flood of requests
/// while SSM throttles makes at most one listing call per this interval.
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

    fn lookup(&self, appid: &str) -> Option<Arc<AppConfig>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, value) = entries.get(appid)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    fn remember(&self, appid: &str, value: Arc<AppConfig>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(appid) {
            // Make room: drop expired entries, then the oldest one.
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(appid.to_string(), (Instant::now(), value));
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
            return Ok(hit);
        }
        if !crate::app::is_valid_appid(appid) || !self.configured().await?.contains(appid) {
            return Err(ConfigError::UnknownApp {
                appid: appid.to_string(),
            });
        }
        // Only configured apps get here. Their errors (a missing parameter) are not cached:
        // the operator's fix is picked up at once.
        let value = self.inner.app(appid).await?;
        self.remember(appid, value.clone());
        Ok(value)
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
}
