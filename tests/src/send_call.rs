//! The send service called as a test calls it.

use std::time::Duration;

/// `Sender::send` as a test calls it: (HTTP status, JSON body) whatever the outcome.
pub async fn send_message(
    svc: &wxpush_send::SendService,
    appid: &str,
    body: &serde_json::Value,
    key: Option<&str>,
    budget: Duration,
) -> (u16, serde_json::Value) {
    match svc
        .sender
        .send(
            appid,
            body.to_string().as_bytes(),
            key,
            "test-caller",
            std::time::Instant::now() + budget,
        )
        .await
    {
        Ok(o) => (o.status.as_u16(), o.body),
        Err(e) => (e.status().as_u16(), e.body()),
    }
}
