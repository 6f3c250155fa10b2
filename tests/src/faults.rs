//! Fault-injecting wrappers around the real stores and queues, for the contention moto (one
//! request at a time) and the embedded store never show: a call fails before it touches the
//! store (throttling, a transaction conflict, a timeout on the way in), or after it was
//! applied (the answer lost on the way back), or finds a condition failed that it did not,
//! or waits at a barrier until other calls arrive (to force an interleaving).
//!
//! Rules are scripted (the next N matching calls, in the order given, after skipping some)
//! or random (a rate over every matching call, from a seeded generator so a run repeats).

use async_trait::async_trait;
use rand::{RngExt, SeedableRng};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use wxpush_shared::AppConfig;
use wxpush_shared::queue::{Job, JobQueue, QueueError};
use wxpush_shared::secrets::{ConfigError, SecretStore};
use wxpush_shared::store::{Attrs, ItemKey, Op, QueryPage, Recorded, StateStore};
use wxpush_shared::token::{RefreshFailure, StoreError, TokenRecord, TokenStore};

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

/// A [`SecretStore`] (SSM) that injects the faults of a [`Faults`] plan on `app` reads:
/// `Before` fails the read as a throttled or timed-out `GetParametersByPath` would; other
/// faults read, then act as for a store.
pub struct FaultySecretStore {
    pub inner: Arc<dyn SecretStore>,
    pub faults: Arc<Faults>,
}

impl FaultySecretStore {
    pub fn new(inner: Arc<dyn SecretStore>, faults: Arc<Faults>) -> Arc<FaultySecretStore> {
        Arc::new(FaultySecretStore { inner, faults })
    }
}

#[async_trait]
impl SecretStore for FaultySecretStore {
    async fn app(&self, appid: &str) -> Result<Arc<AppConfig>, ConfigError> {
        match self.faults.pick(Call::SecretApp, &[appid]) {
            Some(Fault::Before(what)) | Some(Fault::After(what)) => Err(ConfigError::Backend(
                format!("injected fault: GetParametersByPath {what}"),
            )),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                self.inner.app(appid).await
            }
            _ => self.inner.app(appid).await,
        }
    }

    async fn list_apps(&self) -> Result<Vec<String>, ConfigError> {
        self.inner.list_apps().await
    }
}

/// A [`StateStore`] that injects the faults of a [`Faults`] plan.
pub struct FaultyStateStore {
    pub inner: Arc<dyn StateStore>,
    pub faults: Arc<Faults>,
}

impl FaultyStateStore {
    pub fn new(inner: Arc<dyn StateStore>, faults: Arc<Faults>) -> Arc<FaultyStateStore> {
        Arc::new(FaultyStateStore { inner, faults })
    }
}

#[async_trait]
impl StateStore for FaultyStateStore {
    async fn record(&self, ops: &[Op], now: i64) -> Result<Recorded, StoreError> {
        let pks: Vec<&str> = ops.iter().map(|o| o.key().pk.as_str()).collect();
        let has_insert = ops.iter().any(|o| matches!(o, Op::Insert { .. }));
        with_fault(
            &self.faults,
            Call::Record,
            "TransactWriteItems",
            &pks,
            || {
                Some(if has_insert {
                    Recorded::Duplicate
                } else {
                    Recorded::Conflict
                })
            },
            self.inner.record(ops, now),
        )
        .await
    }

    async fn get(&self, key: &ItemKey) -> Result<Option<Attrs>, StoreError> {
        with_fault(
            &self.faults,
            Call::Get,
            "GetItem",
            &[key.pk.as_str()],
            || None,
            self.inner.get(key),
        )
        .await
    }

    async fn query(&self, pk: &str) -> Result<Vec<(String, Attrs)>, StoreError> {
        with_fault(
            &self.faults,
            Call::Query,
            "Query",
            &[pk],
            || None,
            self.inner.query(pk),
        )
        .await
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        with_fault(
            &self.faults,
            Call::Query,
            "Query",
            &[pk],
            || None,
            self.inner.query_page(pk, after, limit),
        )
        .await
    }

    async fn take(
        &self,
        key: &ItemKey,
        want: i64,
        limit: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        with_fault(
            &self.faults,
            Call::Take,
            "UpdateItem",
            &[key.pk.as_str()],
            || Some(0),
            self.inner.take(key, want, limit, expires_at),
        )
        .await
    }
}

/// A [`TokenStore`] that injects the faults of a [`Faults`] plan (pk prefix: the appid).
pub struct FaultyTokenStore {
    pub inner: Arc<dyn TokenStore>,
    pub faults: Arc<Faults>,
}

impl FaultyTokenStore {
    pub fn new(inner: Arc<dyn TokenStore>, faults: Arc<Faults>) -> Arc<FaultyTokenStore> {
        Arc::new(FaultyTokenStore { inner, faults })
    }
}

#[async_trait]
impl TokenStore for FaultyTokenStore {
    async fn load(&self, appid: &str) -> Result<Option<TokenRecord>, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenLoad,
            "GetItem",
            &[appid],
            || None,
            self.inner.load(appid),
        )
        .await
    }

    async fn try_acquire_lease(
        &self,
        appid: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenLease,
            "UpdateItem (lease)",
            &[appid],
            || Some(None),
            self.inner.try_acquire_lease(appid, owner, now_ms, until_ms),
        )
        .await
    }

    async fn store_token(
        &self,
        appid: &str,
        owner: &str,
        token: &wxpush_shared::Secret,
        expires_at: i64,
        version: u64,
    ) -> Result<bool, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenStore,
            "UpdateItem (store token)",
            &[appid],
            || Some(false),
            self.inner
                .store_token(appid, owner, token, expires_at, version),
        )
        .await
    }

    async fn release_lease(
        &self,
        appid: &str,
        owner: &str,
        failure: Option<&RefreshFailure>,
        hold_until_ms: i64,
    ) -> Result<(), StoreError> {
        with_fault(
            &self.faults,
            Call::TokenRelease,
            "UpdateItem (release lease)",
            &[appid],
            || Some(()),
            self.inner
                .release_lease(appid, owner, failure, hold_until_ms),
        )
        .await
    }

    async fn invalidate(&self, appid: &str, version: u64) -> Result<bool, StoreError> {
        with_fault(
            &self.faults,
            Call::TokenInvalidate,
            "UpdateItem (invalidate)",
            &[appid],
            || Some(false),
            self.inner.invalidate(appid, version),
        )
        .await
    }
}

/// A queue that keeps its jobs in memory for the test to run, and fails the next
/// `fail_next` enqueues (as SQS would when throttled or unreachable).
#[derive(Default)]
pub struct RecordingQueue {
    jobs: Mutex<VecDeque<Job>>,
    fail_next: Mutex<u32>,
    /// Openids whose next follower job is refused once.
    fail_once: Mutex<std::collections::HashSet<String>>,
    pub refused: AtomicU64,
}

impl RecordingQueue {
    pub fn new() -> Arc<RecordingQueue> {
        Arc::new(RecordingQueue::default())
    }
    pub fn fail_next(&self, n: u32) {
        *self.fail_next.lock().unwrap() = n;
    }
    /// The next job about follower `openid` is refused, once.
    pub fn fail_once_for(&self, openid: &str) {
        self.fail_once.lock().unwrap().insert(openid.to_string());
    }
    /// Every job queued so far, oldest first; the queue is left empty.
    pub fn take(&self) -> Vec<Job> {
        self.jobs.lock().unwrap().drain(..).collect()
    }
    pub fn len(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl JobQueue for RecordingQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let targeted = match job {
            Job::CompleteFollower { openid, .. } => self.fail_once.lock().unwrap().remove(openid),
            _ => false,
        };
        {
            let mut fail = self.fail_next.lock().unwrap();
            if targeted || *fail > 0 {
                if !targeted {
                    *fail -= 1;
                }
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(QueueError::Unavailable(
                    "injected fault: ThrottlingException".into(),
                ));
            }
        }
        self.jobs.lock().unwrap().push_back(job.clone());
        Ok(())
    }
}
