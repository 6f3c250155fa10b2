//! What a callback changes, planned once as backend-neutral operations that the DynamoDB and
//! embedded stores each apply in one transaction with the event's dedupe record — so an
//! event is either recorded with all its effects, or not at all (and WeChat retries).

use super::message::{InboundMessage, SubscribeItem};
use crate::forward::{OutboxEntry, detail_type, event_id};
use crate::listing;
use crate::store::{Attr, Attrs, GrantChange, ItemKey, Op, attrs};
use crate::user_state::{Interaction, interaction_op};
use std::collections::BTreeMap;

/// How long an event (and so its dedupe key) is kept. WeChat retries within seconds.
pub const EVENT_TTL_SECS: i64 = 7 * 86_400;
/// How long the outbox sweep leaves a new follower's event alone (its outbox row's
/// `next_attempt_at`): one sweep period (5 min). When neither the look-up nor the forwarding
/// could be queued, a sweep queues the look-up ([`FOLLOW_UP_SWEEP_AFTER_SECS`]) at least one
/// run before it queues the forwarding, so the forwarded event carries the unionid.
///
/// [`FOLLOW_UP_SWEEP_AFTER_SECS`]: super::followup::FOLLOW_UP_SWEEP_AFTER_SECS
pub const FORWARD_HOLD_SECS: i64 = 300;

/// What the caller knows beyond the event itself: the follower's stored unionid, or that it
/// still has to be looked up (then the account is marked `unionid_pending` and a follow-up
/// row is written with it, [`super::followup::follow_up_op`]).
#[derive(Clone, Debug, Default)]
pub struct Enrichment {
    pub unionid: Option<String>,
    pub unionid_pending: bool,
    /// For a `subscribe_msg_sent_event`: per template, the acceptances wxpush's own sends
    /// took and WeChat has not reported yet (the grant's `pending`), which its reports of
    /// success take first.
    pub pending: BTreeMap<String, i64>,
}

/// `TEMPLATESENDJOBFINISH` statuses (docs/wechat.md#events): `success`, `failed:user block`,
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

/// The operations recording `msg` for `appid`: the event itself, then its effects, then —
/// when the app's events are forwarded — its outbox row. Everything the event's transaction
/// writes is here.
pub fn plan(
    appid: &str,
    msg: &InboundMessage,
    body: &str,
    now: i64,
    extra: &Enrichment,
    forwarding: bool,
) -> Vec<Op> {
    let mut ops = vec![
        event_op(appid, msg, body, now, forwarding),
        list_op(appid, msg, now),
    ];
    match msg.event() {
        Some(e @ ("subscribe" | "unsubscribe")) => {
            ops.extend(follower_ops(appid, msg, now, extra, e == "subscribe"));
        }
        Some("TEMPLATESENDJOBFINISH") => ops.extend(delivery_op(appid, msg, now)),
        Some(
            e @ ("subscribe_msg_popup_event"
            | "subscribe_msg_change_event"
            | "subscribe_msg_sent_event"),
        ) => ops.extend(grant_ops(appid, msg, e, &extra.pending)),
        _ => {}
    }
    if let Some(kind) = Interaction::of_push(&msg.msg_type, msg.event()) {
        let openid = msg.from_user_name.as_str();
        ops.push(interaction_op(appid, openid, kind, msg.create_time, now));
    }
    if forwarding {
        ops.push(outbox_entry(appid, msg, body, now, extra).into_op());
    }
    ops
}

/// The event's row in the app's newest-first list (`GET /v1/apps/{appid}/events`): named by
/// the id its forwarded copy carries, pointing at the event's record.
fn list_op(appid: &str, msg: &InboundMessage, now: i64) -> Op {
    let key = msg.dedupe_key();
    listing::index_op(
        listing::EVENTS,
        appid,
        listing::at_ms(now),
        &event_id(appid, &key),
        attrs([("key", key.as_str().into())]),
        now + EVENT_TTL_SECS,
    )
}

/// The event's own record, keyed by its dedupe key: an insert, so a retry finds it.
/// `forwarded`: an outbox row is written with it (the list shows its forwarding state).
fn event_op(appid: &str, msg: &InboundMessage, body: &str, now: i64, forwarded: bool) -> Op {
    let mut event = attrs([
        ("appid", appid.into()),
        ("msg_type", msg.msg_type.as_str().into()),
        ("from_user", msg.from_user_name.as_str().into()),
        ("create_time", msg.create_time.into()),
        ("received_at", now.into()),
        ("body", body.into()),
        ("ttl", (now + EVENT_TTL_SECS).into()),
    ]);
    if let Some(e) = msg.event() {
        event.insert("event".into(), e.into());
    }
    if forwarded {
        event.insert("forwarded".into(), Attr::Bool(true));
    }
    let key = msg.dedupe_key();
    let full = msg.full_dedupe_key();
    if full != key {
        // The item's key holds a short form: the whole key stays readable here.
        event.insert("dedupe_key".into(), full.into());
    }
    Op::Insert {
        key: ItemKey::event(appid, &key),
        attrs: event,
    }
}

/// A follower's record in the app and its place in a directory: an account (`subscribed`
/// or not) unless a newer event changed it, then its follow-up row (its unionid still to be
/// looked up) or its unionid's entry.
fn follower_ops(
    appid: &str,
    msg: &InboundMessage,
    now: i64,
    extra: &Enrichment,
    subscribed: bool,
) -> Vec<Op> {
    let openid = msg.from_user_name.as_str();
    let follower = || -> Attrs {
        attrs([
            ("appid", appid.into()),
            ("openid", openid.into()),
            ("subscribed", subscribed.into()),
            ("updated_at", now.into()),
        ])
    };
    let mut account = follower();
    let mut effects = vec![];
    if extra.unionid_pending {
        account.insert("unionid_pending".into(), true.into());
        // The look-up's own record: what the sweep finds if its job never runs.
        effects.push(super::followup::follow_up_op(appid, openid, now));
    }
    if let Some(u) = &extra.unionid {
        account.insert("unionid".into(), u.as_str().into());
        effects.push(Op::SetIfNewer {
            key: ItemKey::union_account(u, appid),
            event_time: msg.create_time,
            attrs: follower(),
        });
    }
    let account = Op::SetIfNewer {
        key: ItemKey::account(appid, openid),
        event_time: msg.create_time,
        attrs: account,
    };
    std::iter::once(account).chain(effects).collect()
}

/// A template message's final state, from its `TEMPLATESENDJOBFINISH` (none without a
/// `MsgID`, or with a status that is not a final one). The first final state stays: a late
/// or repeated receipt, or one after the message was found intercepted, changes nothing.
fn delivery_op(appid: &str, msg: &InboundMessage, now: i64) -> Option<Op> {
    let msgid = msg.fields.msg_id.as_ref()?;
    let raw = msg.fields.status.clone().unwrap_or_default();
    let state = delivery_state(&raw);
    if state == "unknown" {
        return None;
    }
    let attrs = attrs([
        ("appid", appid.into()),
        ("wechat_msgid", msgid.as_str().into()),
        ("state", state.into()),
        ("status_raw", raw.into()),
        ("event_time", msg.create_time.into()),
        ("updated_at", now.into()),
    ]);
    Some(Op::PutIfAbsent {
        key: ItemKey::delivery(appid, msgid),
        attrs,
    })
}

/// The subscribe-message grants one of the three subscribe-message events changes: one
/// change per template, its list entries folded together in order.
fn grant_ops(
    appid: &str,
    msg: &InboundMessage,
    event: &str,
    pending: &BTreeMap<String, i64>,
) -> Vec<Op> {
    let mut per_template: BTreeMap<String, GrantChange> = BTreeMap::new();
    for item in msg
        .fields
        .subscribe_items
        .iter()
        .filter(|i| !i.template_id.is_empty())
    {
        let change = per_template.entry(item.template_id.clone()).or_default();
        let pending = pending.get(&item.template_id).copied().unwrap_or(0);
        apply_grant_item(change, event, item, pending);
    }
    let openid = msg.from_user_name.as_str();
    per_template
        .into_iter()
        .map(|(template_id, change)| Op::Grant {
            key: ItemKey::grant(appid, openid, &template_id),
            change,
        })
        .collect()
}

/// What one list entry of `event` does to its template's grant: an acceptance adds one
/// (popup) or only sets the status (change); a rejection clears it; a sent message uses one
/// up (or clears it on 43101, the user refused) and is remembered. A use of an acceptance
/// wxpush's send already took (`pending` of them still unreported) confirms it instead.
fn apply_grant_item(change: &mut GrantChange, event: &str, item: &SubscribeItem, pending: i64) {
    match (event, item.status.as_deref()) {
        ("subscribe_msg_popup_event", Some("accept")) => {
            change.status = Some("accepted");
            change.add += 1;
        }
        ("subscribe_msg_change_event", Some("accept")) => change.status = Some("accepted"),
        (_, Some("reject")) => {
            change.status = Some("rejected");
            change.clear = true;
            change.add = 0;
        }
        ("subscribe_msg_sent_event", _) => {
            let code = item.error_code.unwrap_or(0);
            if code == 43101 {
                change.clear = true;
            } else if code == 0 && change.confirmed < pending {
                // wxpush took this acceptance when it sent the message.
                change.confirmed += 1;
            } else if code == 0 {
                // A one-time acceptance was used up by a message sent elsewhere.
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

/// The event's outbox row: what the forwarder delivers once the event is recorded. A new
/// follower's waits [`FORWARD_HOLD_SECS`] for the sweep, so its unionid look-up goes first.
fn outbox_entry(
    appid: &str,
    msg: &InboundMessage,
    body: &str,
    now: i64,
    extra: &Enrichment,
) -> OutboxEntry {
    OutboxEntry {
        appid: appid.to_string(),
        dedupe_key: msg.full_dedupe_key(),
        openid: msg.from_user_name.clone(),
        unionid: extra.unionid.clone(),
        create_time: msg.create_time,
        detail_type: detail_type(&msg.msg_type, msg.event()),
        body: body.to_string(),
        created_at: now,
        hold_until: extra.unionid_pending.then_some(now + FORWARD_HOLD_SECS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_states() {
        assert_eq!(delivery_state("success"), "delivered");
        assert_eq!(delivery_state("failed:user block"), "user_blocked");
        assert_eq!(delivery_state("failed: user block"), "user_blocked");
        assert_eq!(delivery_state("failed: system failed"), "failed");
        assert_eq!(delivery_state("failed:system failed"), "failed");
        assert_eq!(delivery_state("Failed: System Failed"), "failed");
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
            plan("wx1", &msg, xml, 1_700_000_005, extra, false)
                .iter()
                .map(|op| match op {
                    Op::Insert { key, .. }
                    | Op::SetIfNewer { key, .. }
                    | Op::Set { key, .. }
                    | Op::PutIfNewer { key, .. } => key.clone(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let pending = Enrichment {
            unionid: None,
            unionid_pending: true,
            ..Enrichment::default()
        };
        assert_eq!(
            keys(&pending),
            [
                ItemKey::event("wx1", &msg.dedupe_key()),
                list_op("wx1", &msg, 1_700_000_005).key().clone(),
                ItemKey::account("wx1", "fan"),
                follow_up.clone(),
                ItemKey::service_window("wx1", "fan", "follow"),
            ]
        );
        let known = Enrichment {
            unionid: Some("u1".into()),
            unionid_pending: false,
            ..Enrichment::default()
        };
        assert!(!keys(&known).contains(&follow_up));
    }

    #[test]
    fn a_forwarded_event_is_planned_with_its_outbox_row() {
        use crate::store::{Attr, ItemRead};
        let xml = "<xml><ToUserName>gh</ToUserName><FromUserName>fan</FromUserName>\
                   <CreateTime>1700000000</CreateTime><MsgType>event</MsgType>\
                   <Event>subscribe</Event></xml>";
        let msg = super::super::message::parse_message(xml).unwrap();
        let now = 1_700_000_005;
        let outbox = |extra: &Enrichment| match plan("wx1", &msg, xml, now, extra, true).pop() {
            Some(Op::Insert { key, attrs }) => (key, attrs),
            other => panic!("{other:?}"),
        };
        let (key, row) = outbox(&Enrichment {
            unionid: None,
            unionid_pending: true,
            ..Enrichment::default()
        });
        assert_eq!(key, ItemKey::outbox("wx1", &msg.dedupe_key()));
        assert_eq!(row.text("detail_type"), Some("wechat.event.subscribe"));
        assert_eq!(row.num("next_attempt_at"), Some(now + FORWARD_HOLD_SECS));
        let (_, row) = outbox(&Enrichment {
            unionid: Some("u1".into()),
            unionid_pending: false,
            ..Enrichment::default()
        });
        assert_eq!(row.get("unionid"), Some(&Attr::S("u1".into())));
        assert_eq!(row.num("next_attempt_at"), None);
        assert!(
            !plan("wx1", &msg, xml, now, &Enrichment::default(), false)
                .iter()
                .any(|op| matches!(op, Op::Insert { key, .. } if key.pk.starts_with("fwd#")))
        );
    }
}
