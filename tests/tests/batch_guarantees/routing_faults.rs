//! The send storm with routing in it, sent by a careful client.

use crate::keyed_sends::{map_mini_program, send_keyed};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_tests::batch_world::*;
use wxpush_tests::faults::{Call, Fault};

/// What the client finally heard for one recipient.
struct Heard {
    status: u16,
    tries: usize,
}

/// The company's service: sends with its own key, retries what a careful client retries
/// (5xx, 429, `409 in_progress`) with the same key.
async fn careful_client(w: &World, appid: &str, body: &Value, key: &str) -> Heard {
    for tries in 1..=120 {
        let answer = send_keyed(w, appid, body, key, Duration::from_secs(3)).await;
        let status = answer["http"].as_u64().unwrap() as u16;
        let pause = match status {
            409 if answer["body"]["error"]["code"] == "in_progress" => 300,
            429 | 500..=599 => 20 * tries.min(10) as u64,
            _ => return Heard { status, tries },
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Heard {
        status: 0,
        tries: 121,
    }
}

/// The send storm with routing in it: recipients by unionid and `uniform` sends to mini
/// program users, while the unionid look-ups, the account reads, the SSM reads and the
/// claim and record writes fail at random, and WeChat fails as in the storm of `storm.rs`.
/// Before: a takeover whose routing failed freed the claim, and the next retry sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_storm_through_routing_faults_sends_nobody_two_messages() {
    let n: usize = std::env::var("WXPUSH_STORM")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(3_000, |n: usize| n.div_ceil(3));
    let w = Arc::new(world(test_config()).await);
    people_known_by_unionid_and_mini_program(&w, n).await;
    fail_routing_and_writes_at_random(&w);
    wechat_fails_in_order(&w).await;
    let started = Instant::now();
    let heard = careful_clients_send_to_everyone(&w, n, 128).await;
    let elapsed = started.elapsed();
    let injected = w.faults.injected() + w.secret_faults.injected();
    w.faults.clear();
    w.secret_faults.clear();
    w.emulator.clear_faults().await;
    tokio::time::sleep(Duration::from_millis(800)).await; // late deliveries land
    let per_user = w.delivered().await;
    let (mut sent, mut unknown, mut other, mut twice, mut false_sent, mut tries) =
        (0, 0, 0, 0, 0, 0);
    for (i, h) in &heard {
        let got = per_user.get(&format!("q{i}")).copied().unwrap_or(0);
        tries += h.tries;
        twice += usize::from(got > 1);
        match h.status {
            200 => {
                sent += 1;
                false_sent += usize::from(got != 1);
            }
            202 => unknown += 1,
            _ => other += 1,
        }
    }
    println!(
        "routing storm: {n} recipients (unionid template, unionid custom, uniform) in {:.1} s; sent {sent}, unknown {unknown}, other {other}; \
         client tries {tries}; store and SSM faults {injected}; delivered {}; twice {twice}; sent without delivery {false_sent}",
        elapsed.as_secs_f64(),
        per_user.values().sum::<usize>(),
    );
    assert_eq!(heard.len(), n);
    assert_eq!(twice, 0, "nobody got two messages");
    assert_eq!(false_sent, 0, "no `sent` without a delivery");
    assert_eq!(other, 0, "every send reached sent or unknown");
    assert!(injected > 50, "faults were injected ({injected})");
}

/// `n` followers `q{i}` of the official account with unionids `Uq{i}`; every third one
/// also a mini program user `mq{i}`.
async fn people_known_by_unionid_and_mini_program(w: &World, n: usize) {
    w.add_users("q", n).await;
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("q{i}"), format!("Uq{i}")))
        .collect();
    map_unionids(&w.store, &pairs).await;
    for i in (2..n).step_by(3) {
        map_mini_program(&w.store, &format!("mq{i}"), &format!("Uq{i}")).await;
    }
}

/// The unionid look-ups, the account reads, the SSM reads and the claim and record writes
/// fail at random.
fn fail_routing_and_writes_at_random(w: &World) {
    let store_faults = vec![
        Fault::Before("ThrottlingException"),
        Fault::Before("TransactionConflict"),
        Fault::After("timeout after commit"),
    ];
    let throttled = vec![Fault::Before("ThrottlingException")];
    w.faults
        .random(Call::Query, "union#", 0.03, throttled.clone());
    w.faults.random(Call::Get, "acct#", 0.03, throttled.clone());
    w.faults.random(Call::Get, "idem#", 0.01, throttled.clone());
    w.faults
        .random(Call::Record, "idem#", 0.02, store_faults.clone());
    w.faults.random(Call::Record, "msg#", 0.03, store_faults);
    w.secret_faults
        .random(Call::SecretApp, OA, 0.02, throttled.clone());
    w.secret_faults.random(Call::SecretApp, MP, 0.02, throttled);
}

/// WeChat's template and custom sends fail in turn: -1, 503, 502 after delivering, and a
/// late answer after delivering.
async fn wechat_fails_in_order(w: &World) {
    for (i, fault) in [
        json!({"errcode": -1, "times": 40}),
        json!({"http_status": 503, "times": 20}),
        json!({"http_status": 502, "after_delivery": true, "times": 20}),
        json!({"delay_ms": 600, "after_delivery": true, "times": 10}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = fault;
        f["path"] = json!(if i % 2 == 0 {
            "/cgi-bin/message/template/send"
        } else {
            "/cgi-bin/message/custom/send"
        });
        w.emulator.control("/faults", f).await;
    }
}

/// `workers` careful clients share the `n` recipients: a template or a custom message by
/// unionid, or a `uniform` send to the mini program user, each with its own key. Returns
/// what the client heard, per recipient.
async fn careful_clients_send_to_everyone(
    w: &Arc<World>,
    n: usize,
    workers: usize,
) -> Vec<(usize, Heard)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let heard: Arc<std::sync::Mutex<Vec<(usize, Heard)>>> = Default::default();
    let mut tasks = vec![];
    for _ in 0..workers {
        let (w, next, heard) = (w.clone(), next.clone(), heard.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let union = json!({"unionid": format!("Uq{i}")});
                let (appid, body) = match i % 3 {
                    0 => (OA, json!({"type": "template", "to": union, "template_id": "TPL_r",
                        "data": {"thing1": {"value": format!("路由 {i}")}}})),
                    1 => (OA, json!({"type": "custom", "to": union, "msgtype": "text",
                        "text": {"content": format!("路由 {i}")}})),
                    _ => (OA, json!({"type": "uniform", "to": {"openid": format!("mq{i}"), "appid": MP},
                        "template_id": "TPL_r", "data": {"thing1": {"value": format!("路由 {i}")}}})),
                };
                let h = careful_client(&w, appid, &body, &format!("route-{i}")).await;
                heard.lock().unwrap().push((i, h));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    std::mem::take(&mut *heard.lock().unwrap())
}
