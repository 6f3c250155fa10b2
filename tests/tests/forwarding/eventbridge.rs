//! The real EventBridge sink, on moto.

use serde_json::{Value, json};
use wxpush_shared::forward::{EventBridgeSink, EventSink, ForwardedEvent};

/// EventBridge on moto: a bus that does not exist yet fails the delivery (the job retries);
/// once it exists, a rule on `wechat.event.subscribe` hands the event to an SQS queue with
/// source `wxpush`, the detail type and the detail as forwarded.
#[tokio::test]
async fn an_eventbridge_bus_gets_the_event_once_it_exists() {
    let sdk = wxpush_tests::sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bus = wxpush_tests::unique("wxpush-bus");
    let sink = EventBridgeSink::new(events.clone(), bus.clone());
    let event = ForwardedEvent {
        detail_type: "wechat.event.subscribe".into(),
        event_id: "e1".into(),
        appid: "wx0123456789abcdef".into(),
        openid: "o-bus".into(),
        unionid: Some("u-bus".into()),
        create_time: 1_700_000_000,
        message: serde_json::from_value(json!({"Event": "subscribe", "EventKey": ""})).unwrap(),
    };
    let err = sink.deliver(&event).await.unwrap_err();
    assert!(err.contains("PutEvents"), "{err}");

    let queue_url = bus_with_a_subscribe_rule_to_a_queue(&events, &sqs, &bus).await;
    sink.deliver(&event).await.unwrap();
    let got = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let messages = got.messages();
    assert_eq!(messages.len(), 1);
    let envelope: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(envelope["source"], "wxpush");
    assert_eq!(envelope["detail-type"], "wechat.event.subscribe");
    assert_eq!(
        envelope["detail"],
        json!({"event_id": "e1", "appid": "wx0123456789abcdef", "openid": "o-bus",
               "unionid": "u-bus", "create_time": 1_700_000_000,
               "message": {"Event": "subscribe", "EventKey": ""}})
    );
}

/// Creates the bus, with a rule handing `wechat.event.subscribe` from `wxpush` to a new SQS
/// queue; returns the queue's URL.
async fn bus_with_a_subscribe_rule_to_a_queue(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
) -> String {
    events.create_event_bus().name(bus).send().await.unwrap();
    let queue_url = wxpush_tests::moto_queue(sqs, "bus-target").await;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = wxpush_tests::unique("subscribe");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(
            json!({"source": ["wxpush"], "detail-type": ["wechat.event.subscribe"]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    queue_url
}
