//! The daily cap: taken atomically in DynamoDB, so of concurrent sends to one user exactly
//! the cap go out; `"cap": false` exempts one message; a template's own cap; a message
//! WeChat refused does not count.

use crate::world::{Know, template};
use serde_json::json;

const TEMPLATE: &str = "/cgi-bin/message/template/send";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_sends_to_one_user_send_exactly_the_cap() {
    let k = std::sync::Arc::new(
        Know::new(&[
            ("max_per_user_per_day", "3"),
            ("max_per_user_per_day_by_template", "TPL_rare=1"),
        ])
        .await,
    );
    k.user(&k.oa, "busy", json!({})).await;
    let sends: Vec<_> = (0..20)
        .map(|_| {
            let k = k.clone();
            tokio::spawn(async move { k.send(&k.oa, &template("busy", "TPL_news"), None).await })
        })
        .collect();
    let mut answers = Vec::new();
    for s in sends {
        answers.push(s.await.unwrap());
    }
    let sent = answers.iter().filter(|(s, _)| *s == 200).count();
    let capped: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(sent, 3, "{answers:?}");
    assert_eq!(capped.len(), 17, "{answers:?}");
    for (_, body) in &capped {
        assert_eq!(body["error"]["code"], "recipient_capped", "{body}");
        assert_eq!(body["error"]["cap"]["limit"], 3, "{body}");
        assert_eq!(body["error"]["cap"]["sent_today"], 3, "{body}");
    }
    assert_eq!(k.calls(TEMPLATE), 3, "the capped ones never reached WeChat");
    assert_eq!(k.delivered_to(&k.oa, "busy").await.len(), 3);
    // An operator's exemption goes out, and counts.
    let mut urgent = template("busy", "TPL_news");
    urgent["cap"] = json!(false);
    assert_eq!(k.send(&k.oa, &urgent, None).await.0, 200);
    let (_, view) = k.view(&k.oa, "busy").await;
    assert_eq!(view["sent_today"], 4, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templates_own_cap_and_refused_messages() {
    let k = Know::new(&[
        ("max_per_user_per_day", "3"),
        ("max_per_user_per_day_by_template", "TPL_rare=1"),
    ])
    .await;
    k.user(&k.oa, "reader", json!({})).await;
    assert_eq!(
        k.send(&k.oa, &template("reader", "TPL_rare"), None).await.0,
        200
    );
    let (status, held) = k.send(&k.oa, &template("reader", "TPL_rare"), None).await;
    assert_eq!(status, 429, "{held}");
    assert_eq!(held["error"]["cap"]["template_id"], "TPL_rare", "{held}");
    assert_eq!(held["error"]["cap"]["limit"], 1);
    // The app's cap still has room for other templates: the template's refusal took none.
    assert_eq!(
        k.send(&k.oa, &template("reader", "TPL_news"), None).await.0,
        200
    );
    let (_, view) = k.view(&k.oa, "reader").await;
    assert_eq!(view["sent_today"], 2, "{view}");
    // A user who does not follow: WeChat refuses (43004), nothing counts.
    k.user(&k.oa, "gone", json!({"subscribed": false})).await;
    for _ in 0..4 {
        let (status, body) = k.send(&k.oa, &template("gone", "TPL_news"), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("not_following")),
            "{body}"
        );
    }
    let (status, view) = k.view(&k.oa, "gone").await;
    assert_eq!(status, 404, "nothing counted: {view}");
}
