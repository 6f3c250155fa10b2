//! The daily frequency cap: messages wxpush sent to a user on one day (China Standard Time,
//! UTC+8, when WeChat's own daily quotas reset), counted atomically in the state store like
//! the batch pace, so every instance shares one count. Every message counts, those sent with
//! `"cap": false` included; the cap refuses only the ones that would pass it.

use super::UserState;
use crate::app::DailyCaps;
use crate::store::{ItemKey, ItemRead, Op, StoreError};
use serde_json::{Value, json};

/// China Standard Time's offset from UTC.
const CST_OFFSET_SECS: i64 = 8 * 3600;
const DAY_SECS: i64 = 86_400;

/// The CST day of `now` as `YYYY-MM-DD`, and the unix second it ends.
pub fn china_day(now: i64) -> (String, i64) {
    let days = (now + CST_OFFSET_SECS).div_euclid(DAY_SECS);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let ends_at = (days + 1) * DAY_SECS - CST_OFFSET_SECS;
    (format!("{year:04}-{month:02}-{day:02}"), ends_at)
}

/// The limits that apply to one message: the app's per-user limit and its template's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapLimits {
    pub per_user: Option<i64>,
    pub per_template: Option<i64>,
}

impl CapLimits {
    /// The app's caps that apply to a message of `template`.
    pub fn of(caps: &DailyCaps, template: Option<&str>) -> CapLimits {
        CapLimits {
            per_user: caps.per_user.map(i64::from),
            per_template: template
                .and_then(|t| caps.per_template.get(t))
                .map(|n| i64::from(*n)),
        }
    }
}

/// A message counted by [`UserState::take_cap`], to give back if it never reaches the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapTake {
    day: String,
    /// The template whose own counter counted it too.
    template: Option<String>,
}

/// What [`UserState::take_cap`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapOutcome {
    Taken(CapTake),
    /// Over the cap: nothing is counted.
    Capped(Value),
}

impl UserState {
    /// Messages wxpush sent to the user today (CST).
    pub async fn sent_today(&self, appid: &str, openid: &str, now: i64) -> Result<i64, StoreError> {
        let (day, _) = china_day(now);
        self.count(&ItemKey::daily_count(appid, openid, &day, None))
            .await
    }

    async fn count(&self, key: &ItemKey) -> Result<i64, StoreError> {
        Ok(self
            .store
            .get(key)
            .await?
            .and_then(|a| a.num("used"))
            .unwrap_or(0)
            .max(0))
    }

    /// Counts one message to the user today, in the app's counter and (when the template
    /// has a limit of its own) the template's, unless that passes a limit; `exempt` counts
    /// it whatever the limits.
    pub async fn take_cap(
        &self,
        appid: &str,
        openid: &str,
        template: Option<&str>,
        limits: CapLimits,
        exempt: bool,
        now: i64,
    ) -> Result<CapOutcome, StoreError> {
        let (day, ends_at) = china_day(now);
        let expires_at = ends_at + DAY_SECS;
        let limit = |l: Option<i64>| if exempt { None } else { l };
        let all = ItemKey::daily_count(appid, openid, &day, None);
        let per_user = limit(limits.per_user);
        if self
            .store
            .take(&all, 1, per_user.unwrap_or(i64::MAX), expires_at)
            .await?
            == 0
        {
            let sent = self.count(&all).await?;
            return Ok(CapOutcome::Capped(capped(per_user, sent, None, ends_at)));
        }
        let mut take = CapTake {
            day,
            template: None,
        };
        if let (Some(t), Some(_)) = (template, limits.per_template) {
            let key = ItemKey::daily_count(appid, openid, &take.day, Some(t));
            let per_template = limit(limits.per_template);
            if self
                .store
                .take(&key, 1, per_template.unwrap_or(i64::MAX), expires_at)
                .await?
                == 0
            {
                self.give_back_cap(appid, openid, &take, now).await?;
                let sent = self.count(&key).await?;
                return Ok(CapOutcome::Capped(capped(
                    per_template,
                    sent,
                    Some(t),
                    ends_at,
                )));
            }
            take.template = Some(t.to_string());
        }
        Ok(CapOutcome::Taken(take))
    }

    /// Uncounts a message [`UserState::take_cap`] counted that never reached the user.
    pub async fn give_back_cap(
        &self,
        appid: &str,
        openid: &str,
        take: &CapTake,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut keys = vec![ItemKey::daily_count(appid, openid, &take.day, None)];
        if let Some(t) = &take.template {
            keys.push(ItemKey::daily_count(appid, openid, &take.day, Some(t)));
        }
        for key in keys {
            let op = Op::Add {
                key,
                deltas: vec![("used".into(), -1)],
                attrs: Default::default(),
                at_least: Some(("used".into(), 1)),
            };
            self.store.record(&[op], now).await?;
        }
        Ok(())
    }
}

/// `cap` as a refusal shows it.
fn capped(limit: Option<i64>, sent_today: i64, template: Option<&str>, ends_at: i64) -> Value {
    let mut v = json!({"limit": limit, "sent_today": sent_today, "resets_at": ends_at});
    if let Some(t) = template {
        v["template_id"] = json!(t);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::china_day;

    #[test]
    fn days_are_china_standard_time() {
        // 2026-11-26 00:00:00 UTC is 08:00 in Beijing.
        let t = 1_795_651_200;
        assert_eq!(china_day(t), ("2026-11-26".to_string(), t + 16 * 3600));
        // 16:00 UTC is midnight in Beijing: the next day.
        assert_eq!(china_day(t + 16 * 3600).0, "2026-11-27");
        assert_eq!(china_day(t + 16 * 3600 - 1).0, "2026-11-26");
        assert_eq!(china_day(0).0, "1970-01-01");
        assert_eq!(china_day(951_782_400).0, "2000-02-29");
    }
}
