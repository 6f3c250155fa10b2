//! `wxpush serve`'s defences for the public `/wechat` route, the local counterparts of the
//! deployed stack's WAF (docs/security.md#locally): a token bucket per source address (429 past
//! it), an optional allow-list (403 for everyone else: given CIDRs and/or WeChat's own
//! addresses from `getcallbackip`, fetched at start and every day), and optionally one
//! bucket for all sources together, the stand-in of API Gateway's route throttle.
//!
//! Order: the allow-list first (a listed address passes without the per-source limit, as
//! WeChat's addresses do on AWS), then the per-source bucket, then the shared one, so a
//! source over its own limit never uses up the others' share.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use wxpush_shared::callback_ips::{canonical, contains, parse_entry};

/// At most this many sources have a bucket of their own; past it, new sources share one.
pub const MAX_SOURCES: usize = 10_000;
/// How often WeChat's list is fetched again once there is one (WeChat: every day).
pub const WECHAT_LIST_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How soon a failed fetch of WeChat's list is tried again.
pub const WECHAT_LIST_RETRY: Duration = Duration::from_secs(60);

/// `wxpush serve`'s flags for the guard.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CallbackGuardArgs {
    /// Requests per second one source address may make to /wechat (a token bucket per
    /// address, IPv6 per /64; 429 past it). 0 = no per-source limit.
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub callback_rate: f64,
    /// How many requests one address may make at once before --callback-rate applies
    /// (default: 2 x --callback-rate).
    #[arg(long, value_name = "N")]
    pub callback_burst: Option<f64>,
    /// Requests per second to /wechat from all sources together, burst 2x (API Gateway's
    /// route throttle, as deployed). 0 = none.
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub callback_throttle: f64,
    /// Only these addresses or CIDRs may reach /wechat (comma-separated); others get 403.
    #[arg(long, value_delimiter = ',', value_name = "CIDR,...")]
    pub callback_allow: Vec<String>,
    /// Allow WeChat's own addresses (getcallbackip, fetched at start and every day); others
    /// get 403. Until the first list arrives only --callback-allow passes.
    #[arg(long)]
    pub callback_allow_wechat: bool,
}

/// A rate and a bucket size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

/// The guard's settings (all off by default).
#[derive(Clone, Debug, Default)]
pub struct CallbackGuardConfig {
    pub per_source: Option<Rate>,
    pub all_sources: Option<Rate>,
    pub allow: Vec<IpNet>,
    pub allow_wechat: bool,
}

impl CallbackGuardArgs {
    pub fn config(&self) -> Result<CallbackGuardConfig, String> {
        let rate = |per_sec: f64, burst: Option<f64>, flag: &str| {
            if !per_sec.is_finite() || per_sec < 0.0 {
                return Err(format!("{flag} must be a number of requests per second"));
            }
            let burst = burst.unwrap_or(per_sec * 2.0).max(1.0);
            Ok((per_sec > 0.0).then_some(Rate { per_sec, burst }))
        };
        let allow = self
            .callback_allow
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                parse_entry(e)
                    .ok_or_else(|| format!("--callback-allow: {e:?} is not an address or a CIDR"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CallbackGuardConfig {
            per_source: rate(self.callback_rate, self.callback_burst, "--callback-rate")?,
            all_sources: rate(self.callback_throttle, None, "--callback-throttle")?,
            allow,
            allow_wechat: self.callback_allow_wechat,
        })
    }
}

/// Why a request was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not on the allow-list: 403.
    NotAllowed,
    /// Over its own rate, or over the shared one: 429.
    TooMany,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refilled(&self, rate: Rate, now: Instant) -> f64 {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + secs * rate.per_sec).min(rate.burst)
    }

    /// Takes one token if there is one.
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        self.tokens = self.refilled(rate, now);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One bucket per source, at most [`MAX_SOURCES`], and one shared by the sources past that.
struct Buckets {
    rate: Rate,
    map: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    last_sweep: Instant,
}

impl Buckets {
    fn take(&mut self, source: IpAddr, now: Instant) -> bool {
        let rate = self.rate;
        if !self.map.contains_key(&source) && self.map.len() >= MAX_SOURCES {
            // Forget the sources whose bucket has refilled (they are idle), at most once a
            // second so a flood from many addresses does not scan the map each time.
            if now.saturating_duration_since(self.last_sweep) >= Duration::from_secs(1) {
                self.last_sweep = now;
                self.map.retain(|_, b| b.refilled(rate, now) < rate.burst);
            }
            if self.map.len() >= MAX_SOURCES {
                return self.overflow.take(rate, now);
            }
        }
        self.map
            .entry(source)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }
}

/// The guard in front of `/wechat`.
pub struct CallbackGuard {
    per_source: Option<Mutex<Buckets>>,
    all_sources: Option<(Rate, Mutex<Bucket>)>,
    allow: Vec<IpNet>,
    allow_wechat: bool,
    wechat: RwLock<Vec<IpNet>>,
}

/// The key of a source: its address, or an IPv6 address's /64 (one host usually has one).
fn source_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl CallbackGuard {
    pub fn new(cfg: &CallbackGuardConfig) -> CallbackGuard {
        let now = Instant::now();
        CallbackGuard {
            per_source: cfg.per_source.map(|rate| {
                Mutex::new(Buckets {
                    rate,
                    map: HashMap::new(),
                    overflow: Bucket::full(rate, now),
                    last_sweep: now,
                })
            }),
            all_sources: cfg
                .all_sources
                .map(|rate| (rate, Mutex::new(Bucket::full(rate, now)))),
            allow: cfg.allow.clone(),
            allow_wechat: cfg.allow_wechat,
            wechat: RwLock::new(Vec::new()),
        }
    }

    /// Whether an allow-list is in force (given CIDRs, or WeChat's list asked for).
    pub fn has_allow_list(&self) -> bool {
        !self.allow.is_empty() || self.allow_wechat
    }

    /// Replaces WeChat's addresses (a fresh `getcallbackip` list).
    pub fn set_wechat(&self, nets: Vec<IpNet>) {
        *self.wechat.write().unwrap_or_else(|p| p.into_inner()) = nets;
    }

    /// Lets a request from `peer` through, or says why not.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.has_allow_list() {
            let wechat = self.wechat.read().unwrap_or_else(|p| p.into_inner());
            if !contains(&self.allow, peer) && !contains(&wechat, peer) {
                return Err(Refusal::NotAllowed);
            }
        } else if let Some(buckets) = &self.per_source {
            let mut buckets = buckets.lock().unwrap_or_else(|p| p.into_inner());
            if !buckets.take(source_key(peer), now) {
                return Err(Refusal::TooMany);
            }
        }
        if let Some((rate, bucket)) = &self.all_sources {
            let mut bucket = bucket.lock().unwrap_or_else(|p| p.into_inner());
            if !bucket.take(*rate, now) {
                return Err(Refusal::TooMany);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard(args: CallbackGuardArgs) -> CallbackGuard {
        CallbackGuard::new(&args.config().unwrap())
    }

    #[test]
    fn each_source_has_its_own_bucket() {
        let g = guard(CallbackGuardArgs {
            callback_rate: 10.0,
            callback_burst: Some(5.0),
            ..Default::default()
        });
        let t0 = Instant::now();
        let (a, b) = (ip("127.0.0.2"), ip("127.0.0.1"));
        let passed = (0..100).filter(|_| g.check(a, t0).is_ok()).count();
        assert_eq!(passed, 5, "the burst, then nothing");
        assert_eq!(g.check(b, t0), Ok(()), "another source is not affected");
        assert_eq!(g.check(a, t0), Err(Refusal::TooMany));
        // 10 per second: one more token after 100 ms.
        assert_eq!(g.check(a, t0 + Duration::from_millis(101)), Ok(()));
        // One IPv6 host's /64 is one source.
        let passed = (0..10)
            .filter(|i| g.check(ip(&format!("2001:db8::{i}")), t0).is_ok())
            .count();
        assert_eq!(passed, 5);
    }

    #[test]
    fn past_the_map_size_new_sources_share_a_bucket() {
        let g = guard(CallbackGuardArgs {
            callback_rate: 1.0,
            callback_burst: Some(1.0),
            ..Default::default()
        });
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            assert!(g.check(IpAddr::V4((0x0a00_0000 + i).into()), t0).is_ok());
        }
        let newcomers = (0..50u32)
            .filter(|i| g.check(IpAddr::V4((0x0b00_0000 + i).into()), t0).is_ok())
            .count();
        assert_eq!(newcomers, 1, "the shared bucket's one token");
        // Once the known sources are idle (refilled), they make room again.
        let later = t0 + Duration::from_secs(5);
        assert!(g.check(ip("192.0.2.1"), later).is_ok());
        assert!(g.check(ip("192.0.2.2"), later).is_ok());
    }

    #[test]
    fn the_allow_list_refuses_others_and_the_shared_bucket_caps_all() {
        let g = guard(CallbackGuardArgs {
            callback_rate: 1.0,
            callback_throttle: 2.0,
            callback_allow: vec!["10.0.0.0/8".into()],
            callback_allow_wechat: true,
            ..Default::default()
        });
        let t0 = Instant::now();
        assert_eq!(g.check(ip("192.0.2.1"), t0), Err(Refusal::NotAllowed));
        assert_eq!(g.check(ip("101.226.103.5"), t0), Err(Refusal::NotAllowed));
        g.set_wechat(vec!["101.226.103.0/25".parse().unwrap()]);
        assert_eq!(g.check(ip("101.226.103.5"), t0), Ok(()));
        assert_eq!(g.check(ip("::ffff:10.1.2.3"), t0), Ok(()));
        // Listed sources pass without the per-source limit, within the shared 2/s burst 4.
        assert_eq!(g.check(ip("10.1.2.3"), t0), Ok(()));
        assert_eq!(g.check(ip("10.1.2.3"), t0), Ok(()));
        assert_eq!(g.check(ip("10.1.2.3"), t0), Err(Refusal::TooMany));
    }

    #[test]
    fn flags_are_checked() {
        let bad = CallbackGuardArgs {
            callback_allow: vec!["10.0.0.0/40".into()],
            ..Default::default()
        };
        assert!(bad.config().unwrap_err().contains("10.0.0.0/40"));
        let neg = CallbackGuardArgs {
            callback_rate: -1.0,
            ..Default::default()
        };
        assert!(neg.config().is_err());
        let off = CallbackGuardArgs::default().config().unwrap();
        assert!(off.per_source.is_none() && off.all_sources.is_none() && off.allow.is_empty());
    }
}
