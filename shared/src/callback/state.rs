//! What a callback changes, planned once as backend-neutral operations that the DynamoDB and
//! embedded stores each apply in one transaction with the event's dedupe record — so an
//! event is either recorded with all its effects, or not at all (and WeChat retries).

use super::message::InboundMessage;
use crate::store::{Attr, GrantChange, ItemKey, Op, attrs};
use std::collections::BTreeMap;

/// How long an event (and so its dedupe key) is kept. WeChat retries within seconds.
pub const EVENT_TTL_SECS: i64 = 7 * 86_400;

/// What the caller knows beyond the event itself: the follower's stored unionid, or that it
/// still has to be looked up (then the account is marked `unionid_pending` and a follow-up
/// row is written with it, [`super::followup::follow_up_op`]).
#[derive(Clone, Debug, Default)]
pub struct Enrichment {
    pub unionid: Option<String>,
    pub unionid_pending: bool,
}

/// `TEMPLATESENDJOBFINISH` statuses (facts.md §2.4): `success`, `failed:user block`,
/// `failed: system failed`, and anything else starting with `failed`.
pub fn delivery_state(raw: &str) -> &'static str {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if compact == "success" {
        "delivered"
    } else if compact == "failed:userblock" {
        "user_blocked"
    } else if compact.starts_with("failed") {
        "failed"
    } else {
        "unknown"
    }
}

/// The operations recording `msg` for `appid`: the event itself, then its effects.
pub fn plan(
    appid: &str,
    msg: &InboundMessage,
    body: &str,
    now: i64,
    extra: &Enrichment,
) -> Vec<Op> {
    let s = |v: &str| Attr::S(v.to_string());
    let mut event = attrs([
        ("appid", s(appid)),
        ("msg_type", s(&msg.msg_type)),
        ("from_user", s(&msg.from_user_name)),
        ("create_time", Attr::N(msg.create_time)),
        ("received_at", Attr::N(now)),
        ("body", s(body)),
        ("ttl", Attr::N(now + EVENT_TTL_SECS)),
    ]);
    if let Some(e) = msg.event() {
        event.insert("event".into(), s(e));
    }
    let key = msg.dedupe_key();
    let full = msg.full_dedupe_key();
    if full != key {
        // The item's key holds a short form: the whole key stays readable here.
        event.insert("dedupe_key".into(), s(&full));
    }
    let mut ops = vec![Op::Insert {
        key: ItemKey::event(appid, &key),
        attrs: event,
    }];
    let openid = msg.from_user_name.as_str();
    match msg.event() {
        Some(e @ ("subscribe" | "unsubscribe")) => {
            let subscribed = e == "subscribe";
            let mut account = attrs([
                ("appid", s(appid)),
                ("openid", s(openid)),
                ("subscribed", Attr::Bool(subscribed)),
                ("updated_at", Attr::N(now)),
            ]);
            if extra.unionid_pending {
                account.insert("unionid_pending".into(), Attr::Bool(true));
                // The look-up's own record: what the sweep finds if its job never runs.
                ops.push(super::followup::follow_up_op(appid, openid, now));
            }
            if let Some(u) = &extra.unionid {
                account.insert("unionid".into(), s(u));
                let union = attrs([
                    ("appid", s(appid)),
                    ("openid", s(openid)),
                    ("subscribed", Attr::Bool(subscribed)),
                    ("updated_at", Attr::N(now)),
                ]);
                ops.push(Op::SetIfNewer {
                    key: ItemKey::union_account(u, appid),
                    event_time: msg.create_time,
                    attrs: union,
                });
            }
            ops.insert(
                1,
                Op::SetIfNewer {
                    key: ItemKey::account(appid, openid),
                    event_time: msg.create_time,
                    attrs: account,
                },
            );
        }
        Some("TEMPLATESENDJOBFINISH") => {
            if let Some(msgid) = &msg.fields.msg_id {
                let raw = msg.fields.status.clone().unwrap_or_default();
                let attrs = attrs([
                    ("appid", s(appid)),
                    ("wechat_msgid", s(msgid)),
                    ("state", s(delivery_state(&raw))),
                    ("status_raw", s(&raw)),
                    ("event_time", Attr::N(msg.create_time)),
                    ("updated_at", Attr::N(now)),
                ]);
                ops.push(Op::Set {
                    key: ItemKey::delivery(appid, msgid),
                    attrs,
                });
            }
        }
        Some(
            e @ ("subscribe_msg_popup_event"
            | "subscribe_msg_change_event"
            | "subscribe_msg_sent_event"),
        ) => {
            let mut per_template: BTreeMap<String, GrantChange> = BTreeMap::new();
            for item in msg
                .fields
                .subscribe_items
                .iter()
                .filter(|i| !i.template_id.is_empty())
            {
                let change = per_template.entry(item.template_id.clone()).or_default();
                match (e, item.status.as_deref()) {
                    ("subscribe_msg_popup_event", Some("accept")) => {
                        change.status = Some("accepted");
                        change.add += 1;
                    }
                    ("subscribe_msg_change_event", Some("accept")) => {
                        change.status = Some("accepted")
                    }
                    (_, Some("reject")) => {
                        change.status = Some("rejected");
                        change.clear = true;
                        change.add = 0;
                    }
                    ("subscribe_msg_sent_event", _) => {
                        let code = item.error_code.unwrap_or(0);
                        if code == 43101 {
                            change.clear = true;
                        } else if code == 0 {
                            // A one-time acceptance was used up by this message.
                            change.used += 1;
                        }
                        change.sent = Some((
                            item.msg_id.clone().unwrap_or_default(),
                            code,
                            item.error_status.clone().unwrap_or_default(),
                        ));
                    }
                    _ => {}
                }
            }
            for (template_id, change) in per_template {
                ops.push(Op::Grant {
                    key: ItemKey::grant(appid, openid, &template_id),
                    change,
                });
            }
        }
        _ => {}
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_states() {
        assert_eq!(delivery_state("success"), "delivered");
        assert_eq!(delivery_state("failed:user block"), "user_blocked");
        assert_eq!(delivery_state("failed: system failed"), "failed");
        assert_eq!(delivery_state("failed:freq limit"), "failed");
        assert_eq!(delivery_state("pending"), "unknown");
    }

    #[test]
    fn a_pending_follower_is_recorded_with_its_follow_up_row() {
        let xml = "<xml><ToUserName>gh</ToUserName><FromUserName>fan</FromUserName>\
                   <CreateTime>1700000000</CreateTime><MsgType>event</MsgType>\
                   <Event>subscribe</Event></xml>";
        let msg = super::super::message::parse_message(xml).unwrap();
        let follow_up = ItemKey::follow_up("wx1", "fan");
        let keys = |extra: &Enrichment| -> Vec<ItemKey> {
            plan("wx1", &msg, xml, 1_700_000_005, extra)
                .iter()
                .map(|op| match op {
                    Op::Insert { key, .. } | Op::SetIfNewer { key, .. } | Op::Set { key, .. } => {
                        key.clone()
                    }
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let pending = Enrichment {
            unionid: None,
            unionid_pending: true,
        };
        assert_eq!(
            keys(&pending),
            [
                ItemKey::event("wx1", &msg.dedupe_key()),
                ItemKey::account("wx1", "fan"),
                follow_up.clone()
            ]
        );
        let known = Enrichment {
            unionid: Some("u1".into()),
            unionid_pending: false,
        };
        assert!(!keys(&known).contains(&follow_up));
    }
}
