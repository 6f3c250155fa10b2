//! Keyed single sends: a takeover whose routing fails keeps the claim (paths 1 and 8), and a
//! keyed retry resolves a template's unknown within WeChat's window (path 4).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_shared::clock::now_unix;
use wxpush_shared::store::ItemRead;
use wxpush_shared::store::{Attr, ItemKey, Op, StateStore, attrs};
use wxpush_tests::batch_world::*;
use wxpush_tests::faults::{Call, Fault};

/// Marks the mini program's openid `mp_openid` as the same person as `unionid` (whose
/// official account openid the callbacks already recorded).
pub async fn map_mini_program(store: &Arc<dyn StateStore>, mp_openid: &str, unionid: &str) {
    let s = |v: &str| Attr::S(v.to_string());
    let ops = [
        Op::Set {
            key: ItemKey::account(MP, mp_openid),
            attrs: attrs([
                ("appid", s(MP)),
                ("openid", s(mp_openid)),
                ("unionid", s(unionid)),
            ]),
        },
        Op::Set {
            key: ItemKey::union_account(unionid, MP),
            attrs: attrs([("appid", s(MP)), ("openid", s(mp_openid))]),
        },
    ];
    store.record(&ops, now_unix()).await.unwrap();
}

/// Waits (bounded) until no case's Idempotency-Key claim is leased any more.
async fn wait_for_leases(w: &World, cases: &[Case]) {
    use wxpush_shared::send::service::claim_key;
    for _ in 0..200 {
        let mut held = false;
        for (i, (appid, _, _)) in cases.iter().enumerate() {
            let key = claim_key(appid, "keyed-client", &format!("k{i}"));
            let claim = w.store.get(&key).await.unwrap().unwrap_or_default();
            held |= claim.num("lease_until").unwrap_or(0) >= now_unix();
        }
        if !held {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the claims stayed leased");
}

/// One keyed send, answered as the client hears it.
pub async fn send_keyed(
    w: &World,
    appid: &str,
    body: &Value,
    key: &str,
    budget: Duration,
) -> Value {
    let bytes = body.to_string();
    let deadline = Instant::now() + budget;
    match w
        .svc
        .sender
        .send(appid, bytes.as_bytes(), Some(key), "keyed-client", deadline)
        .await
    {
        Ok(o) => json!({"http": o.status.as_u16(), "body": o.body}),
        Err(e) => json!({"http": e.status().as_u16(), "body": e.body()}),
    }
}

/// One keyed send of the takeover test: the app, the message, and the routing read that
/// fails after the takeover (a unionid's `union#` query, `ssm` or `acct`).
type Case = (&'static str, Value, &'static str);

/// Custom messages to two unionids, and two `uniform` sends to a mini program user.
fn takeover_cases() -> [Case; 4] {
    [
        (
            OA,
            json!({"type": "custom", "to": {"unionid": "Ur0"}, "msgtype": "text", "text": {"content": "一次"}}),
            "union#Ur0",
        ),
        (
            OA,
            json!({"type": "custom", "to": {"unionid": "Ur1"}, "msgtype": "text", "text": {"content": "一次"}}),
            "union#Ur1",
        ),
        (
            OA,
            json!({"type": "uniform", "to": {"openid": "mp-r2", "appid": MP}, "template_id": "TPL_u", "data": {"thing1": {"value": "一次"}}}),
            "ssm",
        ),
        (
            OA,
            json!({"type": "uniform", "to": {"openid": "mp-r2", "appid": MP}, "template_id": "TPL_u", "data": {"thing1": {"value": "再一次"}}}),
            "acct",
        ),
    ]
}

/// Paths 1 and 8: R1 delivers and cannot record the outcome; after its lease R2 takes the
/// claim over and routing fails on the flaky store (the unionid look-up, the mini program's
/// account read, the SSM read of the linked official account); R3 retries. Before: R2
/// released the claim, R3 took it as fresh and sent a second message; and R1 answered
/// `sent` where every replay answered `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_routing_after_a_takeover_never_frees_the_claim() {
    let w = Arc::new(world(test_config()).await);
    w.add_users("r", 3).await;
    let pairs: Vec<(String, String)> = (0..3)
        .map(|i| (format!("r{i}"), format!("Ur{i}")))
        .collect();
    map_unionids(&w.store, &pairs).await;
    map_mini_program(&w.store, "mp-r2", "Ur2").await;
    let cases = takeover_cases();
    let first = r1_delivers_and_cannot_record(&w, &cases).await;
    wait_for_leases(&w, &cases).await;
    r2_takes_over_and_its_routing_fails(&w, &cases).await;
    wait_for_leases(&w, &cases).await; // R2's too
    for (i, (appid, body, _)) in cases.iter().enumerate() {
        let r3 = send_keyed(&w, appid, body, &format!("k{i}"), Duration::from_secs(1)).await;
        assert_eq!(
            (&r3["http"], &r3["body"]["status"]),
            (&first[i]["http"], &first[i]["body"]["status"]),
            "case {i}: a replay answers what the first request answered: {} vs {r3}",
            first[i]
        );
    }
    let per_user: HashMap<String, usize> = w.delivered().await;
    assert_eq!(per_user.len(), 3);
    assert_eq!(per_user.get("r0"), Some(&1), "{per_user:?}");
    assert_eq!(per_user.get("r1"), Some(&1), "{per_user:?}");
    assert_eq!(
        per_user.get("r2"),
        Some(&2),
        "two uniform messages, each once"
    );
}

/// R1: every case sent at once while every write of the outcome fails until the lease ends;
/// each is delivered. Returns what R1 answered, case by case.
async fn r1_delivers_and_cannot_record(w: &Arc<World>, cases: &[Case]) -> Vec<Value> {
    w.faults.script(
        Call::Record,
        "msg#",
        Fault::Before("ThrottlingException"),
        0,
        10_000,
    );
    let mut first = Vec::new();
    let r1: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (appid, body, _))| {
            let (w, appid, body) = (w.clone(), appid.to_string(), body.clone());
            tokio::spawn(async move {
                send_keyed(&w, &appid, &body, &format!("k{i}"), Duration::from_secs(1)).await
            })
        })
        .collect();
    for r in r1 {
        first.push(r.await.unwrap());
    }
    w.faults.clear();
    assert_eq!(w.emulator.delivered(OA).await.len(), 4, "R1 delivered each");
    first
}

/// R2: routing fails — the unionid look-up, the mini program account's read, the SSM read
/// of the mini program (is it linked to the official account?) — each right after the
/// takeover.
async fn r2_takes_over_and_its_routing_fails(w: &World, cases: &[Case]) {
    let throttled = Fault::Before("ThrottlingException");
    for (i, (appid, body, routing)) in cases.iter().enumerate() {
        match *routing {
            "ssm" => w
                .secret_faults
                .script(Call::SecretApp, MP, throttled.clone(), 0, 1),
            "acct" => w.faults.script(Call::Get, "acct#", throttled.clone(), 0, 1),
            union => w.faults.script(Call::Query, union, throttled.clone(), 0, 1),
        }
        let r2 = send_keyed(w, appid, body, &format!("k{i}"), Duration::from_secs(1)).await;
        assert_eq!(r2["http"], 503, "case {i}: routing failed: {r2}");
    }
    w.faults.clear();
    w.secret_faults.clear();
}

/// Path 4, single sends: a template whose outcome is unknown is resent by a retry with the
/// same key while WeChat dedupes its client_msg_id. Before: the retry replayed `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_retry_resolves_a_templates_unknown_within_the_window() {
    let w = world(test_config()).await;
    w.add_users("s", 1).await;
    for fault in [
        json!({"http_status": 502, "after_delivery": true, "times": 1}),
        json!({"errcode": -1, "times": 3}),
    ] {
        let mut f = fault;
        f["path"] = json!("/cgi-bin/message/template/send");
        w.emulator.control("/faults", f).await;
    }
    let body = json!({"type": "template", "to": {"openid": "s0"}, "template_id": "TPL_s", "data": {"thing1": {"value": "未知"}}});
    let first = send_keyed(&w, OA, &body, "tk", Duration::from_secs(20)).await;
    assert_eq!(first["http"], 202, "{first}");
    assert!(first["body"]["retry_until"].as_i64().unwrap() > now_unix());
    let again = send_keyed(&w, OA, &body, "tk", Duration::from_secs(20)).await;
    assert_eq!(again["http"], 200, "{again}");
    assert_eq!(again["body"]["id"], first["body"]["id"]);
    let third = send_keyed(&w, OA, &body, "tk", Duration::from_secs(20)).await;
    assert_eq!(third, again, "then the same answer for ever");
    assert_eq!(w.delivered().await.get("s0"), Some(&1));
    let rec = w
        .svc
        .sender
        .message(OA, first["body"]["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(rec["status"], "sent");
}
