//! The grant ledger: per user and subscribe template, the one-time acceptances left
//! (`available`), whether the user has the template on (`status` `accepted` / `rejected`),
//! and when that last changed. The callback keeps it from WeChat's `subscribe_msg_*` events
//! (docs/callbacks.md, Grants); a send takes an acceptance before WeChat is called, moving it
//! to `pending` until WeChat's `subscribe_msg_sent_event` for it arrives, so two sends never
//! count on one acceptance and the report never counts a send twice.

use super::UserState;
use crate::store::{Attr, GrantChange, ItemKey, ItemRead, Op, Recorded, StoreError, attrs};
use serde_json::{Value, json};

/// One template's grant as the ledger holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    pub template_id: String,
    /// `accepted` or `rejected`, once an event said.
    pub status: Option<String>,
    /// One-time acceptances left.
    pub available: i64,
    /// Acceptances taken by sends whose sent report has not arrived yet.
    pub pending: i64,
    pub updated_at: Option<i64>,
}

impl Grant {
    fn read(template_id: &str, a: &crate::store::Attrs) -> Grant {
        Grant {
            template_id: template_id.to_string(),
            status: a.string("status"),
            available: a.num("available").unwrap_or(0).max(0),
            pending: a.num("pending").unwrap_or(0).max(0),
            updated_at: a.num("updated_at"),
        }
    }

    /// Whether the user has a long-term template on: accepted and not turned off since.
    pub fn is_on(&self) -> bool {
        self.status.as_deref() == Some("accepted")
    }

    /// The grant as the API shows it: a one-time template's acceptances left, a long-term
    /// one's on/off.
    pub fn to_json(&self, long_term: bool) -> Value {
        let mut v = json!({
            "template_id": self.template_id,
            "kind": if long_term { "long_term" } else { "once" },
            "status": self.status,
            "updated_at": self.updated_at,
        });
        if long_term {
            v["on"] = json!(self.is_on());
        } else {
            v["remaining"] = json!(self.available);
        }
        v
    }
}

/// What [`UserState::take_grant`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantTake {
    /// One acceptance moved to `pending` for this send.
    Taken,
    /// A long-term template the user has on: nothing to take.
    On,
    /// No acceptance known (the grant as it stands, if any).
    None(Option<Grant>),
}

impl UserState {
    /// Every template's grant of the user.
    pub async fn grants(&self, appid: &str, openid: &str) -> Result<Vec<Grant>, StoreError> {
        let rows = self.store.query(&ItemKey::grants_pk(appid, openid)).await?;
        Ok(rows
            .iter()
            .filter_map(|(sk, a)| Some(Grant::read(sk.strip_prefix("tpl#")?, a)))
            .collect())
    }

    /// One template's grant of the user.
    pub async fn grant(
        &self,
        appid: &str,
        openid: &str,
        template_id: &str,
    ) -> Result<Option<Grant>, StoreError> {
        let key = ItemKey::grant(appid, openid, template_id);
        Ok(self
            .store
            .get(&key)
            .await?
            .map(|a| Grant::read(template_id, &a)))
    }

    /// Takes one acceptance of a one-time template for a send (atomically: of any number of
    /// concurrent sends, no more than the acceptances get one), or finds a long-term
    /// template on.
    pub async fn take_grant(
        &self,
        appid: &str,
        openid: &str,
        template_id: &str,
        long_term: bool,
        now: i64,
    ) -> Result<GrantTake, StoreError> {
        if long_term {
            let grant = self.grant(appid, openid, template_id).await?;
            return Ok(match grant {
                Some(g) if g.is_on() => GrantTake::On,
                other => GrantTake::None(other),
            });
        }
        let op = Op::Add {
            key: ItemKey::grant(appid, openid, template_id),
            deltas: vec![("available".into(), -1), ("pending".into(), 1)],
            attrs: attrs([("updated_at", Attr::N(now))]),
            at_least: Some(("available".into(), 1)),
        };
        match self.store.record(&[op], now).await? {
            Recorded::New => Ok(GrantTake::Taken),
            _ => Ok(GrantTake::None(
                self.grant(appid, openid, template_id).await?,
            )),
        }
    }

    /// Gives back an acceptance [`UserState::take_grant`] took (`took`) for a send that never
    /// reached the user; `none_left`: WeChat answered that the user has no acceptance (43101),
    /// so the ledger is cleared instead.
    pub async fn give_back_grant(
        &self,
        appid: &str,
        openid: &str,
        template_id: &str,
        took: bool,
        none_left: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let key = ItemKey::grant(appid, openid, template_id);
        let op = if none_left {
            Op::Grant {
                key,
                change: GrantChange {
                    clear: true,
                    confirmed: i64::from(took),
                    ..GrantChange::default()
                },
            }
        } else if took {
            Op::Add {
                key,
                deltas: vec![("available".into(), 1), ("pending".into(), -1)],
                attrs: attrs([("updated_at", Attr::N(now))]),
                at_least: Some(("pending".into(), 1)),
            }
        } else {
            return Ok(());
        };
        // A conflict: the report of this send arrived meanwhile; nothing is pending.
        self.store.record(&[op], now).await.map(|_| ())
    }
}
