//! The batch routes' refusals and answers.

use serde_json::{Value, json};
use wxpush_tests::batch_world::*;
use wxpush_tests::sim_queue::Drive;

/// The routes' refusals and answers: every bad input a clear error, nothing half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_requests_are_checked_before_anything_is_recorded() {
    let w = world(test_config()).await;
    bad_recipients_are_listed_by_index(&w).await;
    bad_messages_and_bodies_are_refused(&w).await;
    bad_apps_ids_and_methods_are_refused(&w).await;
    a_refused_queue_then_the_same_key_creates_the_batch_once(&w).await;
    failures_page_with_a_cursor(&w).await;
}

/// `POST /v1/apps/{OA}/batches` with `body` and `headers`.
async fn post(w: &World, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let path = format!("/v1/apps/{OA}/batches");
    w.call("POST", &path, Some(body), headers).await
}

/// Bad recipients are listed by index; nothing is created.
async fn bad_recipients_are_listed_by_index(w: &World) {
    let (status, body) = post(
        w,
        json!({"message": template("x"), "recipients": [{"openid": "ok"}, {"openid": ""}, {"openid": "a b"}, {"phone": "1"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_recipients");
    let listed: Vec<i64> = body["error"]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![1, 2, 3]);
    assert!(w.queue.is_empty());
}

/// The message is checked like a single send, fields named under `message.`; the body's
/// own fields and sizes are bounded.
async fn bad_messages_and_bodies_are_refused(w: &World) {
    let (status, body) = post(
        w,
        json!({"message": {"type": "template", "data": {}}, "recipients": [{"openid": "o"}]}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("message.template_id"))
    );
    let (status, body) = post(
        w,
        json!({"message": {"type": "subscribe", "template_id": "T", "data": {"thing1": {"value": "x"}}}, "recipients": [{"openid": "o"}]}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("type")),
        "{body}"
    );
    let (status, body) = post(
        w,
        json!({"message": template("x"), "recipients": [{"openid": "o"}], "to": {"openid": "o"}}),
        &[],
    )
    .await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("to")));
    let (status, _) = post(w, json!({"message": template("x"), "recipients": []}), &[]).await;
    assert_eq!(status, 422);
    let mut shared_id = template("x");
    shared_id["client_msg_id"] = json!("one-for-all");
    let (status, body) = post(
        w,
        json!({"message": shared_id, "recipients": [{"openid": "o"}]}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("message.client_msg_id"))
    );
    oversized_bodies_are_refused(w).await;
}

/// A message over WeChat's size, and more recipients than a batch takes.
async fn oversized_bodies_are_refused(w: &World) {
    let mut huge = template("x");
    huge["data"]["first"] = json!({"value": "长".repeat(30_000)});
    let (status, body) = post(
        w,
        json!({"message": huge, "recipients": [{"openid": "o"}]}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("message")),
        "{body}"
    );
    let many: Vec<Value> = (0..100_001)
        .map(|i| json!({"openid": format!("o{i}")}))
        .collect();
    let (status, body) = post(
        w,
        json!({"message": template("x"), "recipients": many}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("recipients"))
    );
}

/// No body, an unknown app; ids of the wrong shape, unknown batches, wrong methods.
async fn bad_apps_ids_and_methods_are_refused(w: &World) {
    let path = format!("/v1/apps/{OA}/batches");
    let (status, _) = w.call("POST", &path, None, &[]).await;
    assert_eq!(status, 400);
    let (status, body) = w
        .call(
            "POST",
            "/v1/apps/wx00000000000000ff/batches",
            Some(json!({"message": template("x"), "recipients": [{"openid": "o"}]})),
            &[],
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_app"))
    );
    let (status, _) = w.call("GET", &format!("{path}/nope"), None, &[]).await;
    assert_eq!(status, 404);
    let unknown = format!("{path}/bat_{}", "0".repeat(32));
    assert_eq!(w.call("GET", &unknown, None, &[]).await.0, 404);
    assert_eq!(w.call("DELETE", &unknown, None, &[]).await.0, 404);
    let (status, _) = w.call("PUT", &unknown, None, &[]).await;
    assert_eq!(status, 405);
    assert_eq!(w.call("GET", &path, None, &[]).await.0, 405);
}

/// The queue refuses: 503, and the same Idempotency-Key later creates the batch once.
async fn a_refused_queue_then_the_same_key_creates_the_batch_once(w: &World) {
    w.add_users("i", 3).await;
    let body = json!({"message": template("幂等"), "recipients": [{"openid": "i0"}, {"openid": "i1"}, {"openid": "i1"}]});
    w.queue.refuse_next(1);
    let key = [("idempotency-key", "campaign-42")];
    let (status, refused) = post(w, body.clone(), &key).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (503, &json!("queue_unavailable"))
    );
    let (status, first) = post(w, body.clone(), &key).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        (first["total"].as_i64(), first["duplicates"].as_i64()),
        (Some(2), Some(1))
    );
    let (status, again) = post(w, body.clone(), &key).await;
    assert_eq!((status, &again["id"]), (202, &first["id"]));
    let other = json!({"message": template("别的"), "recipients": [{"openid": "i2"}]});
    let (status, conflict) = post(w, other, &key).await;
    assert_eq!(
        (status, &conflict["error"]["code"]),
        (409, &json!("idempotency_key_reused"))
    );
    let report = w.drive(Drive::default()).await.unwrap();
    assert!(report.drained);
    let per_user = w.delivered().await;
    assert_eq!(
        (per_user.get("i0"), per_user.get("i1")),
        (Some(&1), Some(&1))
    );
    assert_eq!(per_user.len(), 2);
}

/// Failures page with a cursor: 150 unionids nobody knows.
async fn failures_page_with_a_cursor(w: &World) {
    let path = format!("/v1/apps/{OA}/batches");
    let unknown_people: Vec<Value> = (0..150)
        .map(|i| json!({"unionid": format!("nobody{i}")}))
        .collect();
    let id = w
        .create(
            OA,
            json!({"message": template("x"), "recipients": unknown_people}),
        )
        .await;
    assert!(w.drive(Drive::default()).await.unwrap().drained);
    let first = w.status(OA, &id).await;
    assert_eq!(
        (first["failed"].as_i64(), first["done"].as_bool()),
        (Some(150), Some(true))
    );
    assert_eq!(first["failures"].as_array().unwrap().len(), 100);
    assert_eq!(
        first["failures"][0]["error"]["error"]["code"],
        "unknown_recipient"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, second) = w
        .call("GET", &format!("{path}/{id}?cursor={cursor}"), None, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(second["failures"].as_array().unwrap().len(), 50);
    assert_eq!(second["next_cursor"], Value::Null);
    let (status, body) = w
        .call(
            "GET",
            &format!("{path}/{id}?cursor=%27%20OR%201"),
            None,
            &[],
        )
        .await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("cursor")));
}
