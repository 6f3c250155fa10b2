//! Fault-injecting wrappers around the real stores and queues, for the contention moto (one
//! request at a time) and the embedded store never show: a call fails before it touches the
//! store (throttling, a transaction conflict, a timeout on the way in), or after it was
//! applied (the answer lost on the way back), or finds a condition failed that it did not,
//! or waits at a barrier until other calls arrive (to force an interleaving).
//!
//! Rules are scripted (the next N matching calls, in the order given, after skipping some)
//! or random (a rate over every matching call, from a seeded generator so a run repeats).

mod recording_queue;
mod secret_store;
mod state_store;
mod token_store;

pub use recording_queue::RecordingQueue;
pub use secret_store::FaultySecretStore;
pub use state_store::FaultyStateStore;
pub use token_store::FaultyTokenStore;

use rand::{RngExt, SeedableRng};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use wxpush_shared::token::StoreError;

/// Which call of a store a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `StateStore::record` (a transaction).
    Record,
    /// `StateStore::get`.
    Get,
    /// `StateStore::query` / `query_page`.
    Query,
    /// `StateStore::take` (the batch pacer's counter).
    Take,
    /// `TokenStore::load`.
    TokenLoad,
    /// `TokenStore::try_acquire_lease`.
    TokenLease,
    /// `TokenStore::store_token`.
    TokenStore,
    /// `TokenStore::release_lease`.
    TokenRelease,
    /// `TokenStore::invalidate`.
    TokenInvalidate,
    /// `SecretStore::app` (SSM's read of an app's parameters); the "pk" is the appid.
    SecretApp,
}

/// What an injected fault does.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Fails before the store is touched: nothing is written. The text names the error as
    /// DynamoDB would (`ThrottlingException`, `TransactionConflict`, a timeout).
    Before(&'static str),
    /// The call is applied, then fails: the write happened but the caller never hears so.
    After(&'static str),
    /// A `record` answers as if a condition had failed (`Duplicate` for a set with an
    /// `Insert`, else `Conflict`), writing nothing.
    ConditionFailed,
    /// Waits, then runs the call.
    Delay(Duration),
    /// Waits until `n` matching calls have arrived, then lets them all run.
    Barrier(usize),
    /// Like `Barrier(n)`, then each call runs, and the k-th to arrive (from 0) returns k × the
    /// step later: all read the same state, then act on it one after the other.
    Staggered(usize, Duration),
}

struct Rule {
    call: Call,
    /// Matches a call touching a key whose `pk` starts with this (`""`: any).
    pk_prefix: String,
    fault: Fault,
    skip: u32,
    times: u32,
}

struct RandomRule {
    call: Call,
    pk_prefix: String,
    /// Out of 1 000 000 matching calls.
    per_million: u32,
    faults: Vec<Fault>,
}

struct Barrier {
    waiting: usize,
    needed: usize,
    open: Arc<Notify>,
}

/// The fault plan shared by the wrappers.
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    /// Rules for one exact `pk`, looked up by key (thousands of them stay cheap).
    exact: Mutex<std::collections::HashMap<(Call, String), VecDeque<Fault>>>,
    random: Mutex<Vec<RandomRule>>,
    rng: Mutex<rand::rngs::StdRng>,
    barriers: Mutex<Vec<Barrier>>,
    injected: AtomicU64,
}

impl Faults {
    pub fn new(seed: u64) -> Arc<Faults> {
        Arc::new(Faults {
            rules: Mutex::new(vec![]),
            exact: Mutex::new(Default::default()),
            random: Mutex::new(vec![]),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            barriers: Mutex::new(vec![]),
            injected: AtomicU64::new(0),
        })
    }

    /// The next `times` calls matching `call` and `pk_prefix`, after `skip` of them, get `fault`.
    /// Rules for the same calls are used in the order they were added.
    pub fn script(&self, call: Call, pk_prefix: &str, fault: Fault, skip: u32, times: u32) {
        self.rules.lock().unwrap().push(Rule {
            call,
            pk_prefix: pk_prefix.to_string(),
            fault,
            skip,
            times,
        });
    }

    /// The next calls matching `call` that touch exactly `pk` get `faults`, one each, in order.
    pub fn script_exact(&self, call: Call, pk: &str, faults: Vec<Fault>) {
        self.exact
            .lock()
            .unwrap()
            .entry((call, pk.to_string()))
            .or_default()
            .extend(faults);
    }

    /// Every call matching `call` and `pk_prefix` gets one of `faults` (chosen at random) with
    /// probability `rate`.
    pub fn random(&self, call: Call, pk_prefix: &str, rate: f64, faults: Vec<Fault>) {
        self.random.lock().unwrap().push(RandomRule {
            call,
            pk_prefix: pk_prefix.to_string(),
            per_million: (rate.clamp(0.0, 1.0) * 1_000_000.0) as u32,
            faults,
        });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
        self.exact.lock().unwrap().clear();
        self.random.lock().unwrap().clear();
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn pick(&self, call: Call, pks: &[&str]) -> Option<Fault> {
        let matches = |prefix: &str| pks.iter().any(|pk| pk.starts_with(prefix));
        {
            let mut exact = self.exact.lock().unwrap();
            for pk in pks {
                if let Some(queue) = exact.get_mut(&(call, pk.to_string()))
                    && let Some(fault) = queue.pop_front()
                {
                    self.injected.fetch_add(1, Ordering::SeqCst);
                    return Some(fault);
                }
            }
        }
        {
            let mut rules = self.rules.lock().unwrap();
            if let Some(i) = rules
                .iter()
                .position(|r| r.call == call && matches(&r.pk_prefix))
            {
                let rule = &mut rules[i];
                if rule.skip > 0 {
                    rule.skip -= 1;
                    return None;
                }
                rule.times -= 1;
                let fault = rule.fault.clone();
                if rule.times == 0 {
                    rules.remove(i);
                }
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Some(fault);
            }
        }
        let random = self.random.lock().unwrap();
        for rule in random
            .iter()
            .filter(|r| r.call == call && matches(&r.pk_prefix))
        {
            let mut rng = self.rng.lock().unwrap();
            if rng.random_range(0..1_000_000) < rule.per_million {
                let fault = rule.faults[rng.random_range(0..rule.faults.len())].clone();
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Some(fault);
            }
        }
        None
    }

    /// Returns the caller's place of arrival (from 0).
    async fn barrier(&self, n: usize) -> usize {
        let (open, place) = {
            let mut barriers = self.barriers.lock().unwrap();
            let idx = match barriers.iter().position(|b| b.needed == n && b.waiting < n) {
                Some(i) => i,
                None => {
                    barriers.push(Barrier {
                        waiting: 0,
                        needed: n,
                        open: Arc::new(Notify::new()),
                    });
                    barriers.len() - 1
                }
            };
            let b = &mut barriers[idx];
            let place = b.waiting;
            b.waiting += 1;
            let open = b.open.clone();
            if b.waiting == b.needed {
                open.notify_waiters();
                barriers.remove(idx);
                return place;
            }
            (open, place)
        };
        // Bounded: a barrier that never fills lets its callers through after 5 s.
        let _ = tokio::time::timeout(Duration::from_secs(5), open.notified()).await;
        place
    }
}

fn injected_error(op: &'static str, what: &str) -> StoreError {
    StoreError::Backend {
        op,
        message: format!("injected fault: {what}"),
    }
}

/// Runs `apply` under the fault the plan picks for this call.
async fn with_fault<T, F>(
    faults: &Faults,
    call: Call,
    op: &'static str,
    pks: &[&str],
    on_condition: impl FnOnce() -> Option<T>,
    apply: F,
) -> Result<T, StoreError>
where
    F: std::future::Future<Output = Result<T, StoreError>>,
{
    match faults.pick(call, pks) {
        None => apply.await,
        Some(Fault::Before(what)) => Err(injected_error(op, what)),
        Some(Fault::After(what)) => {
            apply.await?;
            Err(injected_error(op, what))
        }
        Some(Fault::ConditionFailed) => match on_condition() {
            Some(v) => Ok(v),
            None => apply.await,
        },
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            apply.await
        }
        Some(Fault::Barrier(n)) => {
            faults.barrier(n).await;
            apply.await
        }
        Some(Fault::Staggered(n, step)) => {
            let place = faults.barrier(n).await;
            let result = apply.await;
            tokio::time::sleep(step * place as u32).await;
            result
        }
    }
}
