//! [`Pacer`]: an app's batch send rate, shared by every worker of every instance.
//!
//! Permits live in the state store, one counter item per app and second
//! ([`ItemKey::pace`]); a worker takes a block of them at a time with [`StateStore::take`]
//! (an atomic add that never passes the rate) and hands them out locally. A block taken in
//! one second may still be used in the next, so a worker never wastes what it took; the
//! rate over any minute stays within one block per worker of the configured one.

use crate::clock::now_unix_millis;
use crate::store::StoreError;
use crate::store::{ItemKey, StateStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a second's counter item is kept (its TTL).
const WINDOW_TTL_SECS: i64 = 120;

#[derive(Default)]
struct Permits {
    second: i64,
    left: i64,
}

pub struct Pacer {
    store: Arc<dyn StateStore>,
    apps: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Permits>>>>,
}

/// Permits taken from the store at once for `rate` per second: a twentieth of the rate
/// (so a second is shared by up to twenty takers), at least 1, at most 50.
pub fn block_for(rate: u32) -> i64 {
    (i64::from(rate) / 20).clamp(1, 50)
}

impl Pacer {
    pub fn new(store: Arc<dyn StateStore>) -> Pacer {
        Pacer {
            store,
            apps: Mutex::new(HashMap::new()),
        }
    }

    fn permits(&self, appid: &str) -> Arc<tokio::sync::Mutex<Permits>> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.entry(appid.to_string()).or_default().clone()
    }

    /// Waits for one permit to send a message of `appid` at `rate` per second. `Ok(false)`
    /// when none comes before `deadline`.
    pub async fn acquire(
        &self,
        appid: &str,
        rate: u32,
        deadline: Instant,
    ) -> Result<bool, StoreError> {
        let permits = self.permits(appid);
        // Callers of this instance queue here: one store call per block, not per message.
        let mut p = permits.lock().await;
        let rate = rate.max(1);
        // Bounded: each turn either returns or sleeps to the next second.
        for _ in 0..100_000 {
            let now_ms = now_unix_millis();
            let second = now_ms / 1000;
            if p.left > 0 && p.second >= second - 1 {
                p.left -= 1;
                return Ok(true);
            }
            let got = self
                .store
                .take(
                    &ItemKey::pace(appid, second),
                    block_for(rate),
                    i64::from(rate),
                    second + WINDOW_TTL_SECS,
                )
                .await?;
            if got > 0 {
                p.second = second;
                p.left = got - 1;
                return Ok(true);
            }
            // This second is used up: wait for the next one (plus a little jitter so the
            // instances do not all ask at the same instant).
            let wait = Duration::from_millis(
                (1000 - now_ms.rem_euclid(1000)) as u64 + rand::random_range(0..20),
            );
            if Instant::now() + wait >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(wait).await;
        }
        Ok(false)
    }
}
