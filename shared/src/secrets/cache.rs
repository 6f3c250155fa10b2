//! A bounded, time-limited cache in front of any [`SecretStore`].

use super::{ConfigError, SecretStore};
use crate::app::AppConfig;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Unknown appids are remembered for a shorter time, so a stream of requests for apps that
/// do not exist (the callback route is public) does not become a stream of SSM calls.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// A lookup's outcome and when it was made.
type Entry = (Instant, Result<Arc<AppConfig>, ConfigError>);

pub struct CachedSecretStore<S> {
    inner: S,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl<S: SecretStore> CachedSecretStore<S> {
    /// `ttl`: how long a read stays fresh (secrets rotated in SSM are picked up after it);
    /// `capacity`: how many apps are held at most.
    pub fn new(inner: S, ttl: Duration, capacity: usize) -> Self {
        CachedSecretStore {
            inner,
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lookup(&self, appid: &str) -> Option<Result<Arc<AppConfig>, ConfigError>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, value) = entries.get(appid)?;
        let ttl = if value.is_ok() {
            self.ttl
        } else {
            NEGATIVE_TTL.min(self.ttl)
        };
        (at.elapsed() < ttl).then(|| value.clone())
    }

    fn remember(&self, appid: &str, value: Result<Arc<AppConfig>, ConfigError>) {
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
}

#[async_trait]
impl<S: SecretStore> SecretStore for CachedSecretStore<S> {
    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
        if let Some(hit) = self.lookup(appid) {
            return hit;
        }
        let value = self.inner.app(appid).await;
        // Backend failures are not cached: the next request tries again.
        if !matches!(value, Err(ConfigError::Backend(_))) {
            self.remember(appid, value.clone());
        }
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

    struct Counting(AtomicUsize);

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
            }))
        }
        async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
            Ok(vec![])
        }
    }

    #[tokio::test]
    async fn caches_and_bounds() {
        let cache =
            CachedSecretStore::new(Counting(AtomicUsize::new(0)), Duration::from_secs(60), 2);
        cache.app("a").await.unwrap();
        cache.app("a").await.unwrap();
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 1);
        cache.app("b").await.unwrap();
        cache.app("c").await.unwrap();
        assert!(cache.entries.lock().unwrap().len() <= 2);
        cache.app("a").await.unwrap(); // evicted as the oldest: read again
        assert_eq!(cache.inner().0.load(Ordering::SeqCst), 4);
    }
}
