//! The EventBridge sink (on AWS): one `PutEvents` entry per event, IAM-authenticated.

use super::{EventSink, ForwardedEvent};
use async_trait::async_trait;

/// The `source` of every event wxpush puts on a bus.
pub const SOURCE: &str = "wxpush";

/// An EventBridge bus (`PutEvents`, one entry; a failed entry is an error).
pub struct EventBridgeSink {
    client: crate::aws::SdkClient<aws_sdk_eventbridge::Client>,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(
        client: impl Into<crate::aws::SdkClient<aws_sdk_eventbridge::Client>>,
        bus: impl Into<String>,
    ) -> EventBridgeSink {
        EventBridgeSink {
            client: client.into(),
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn deliver(&self, event: &ForwardedEvent) -> Result<(), String> {
        use aws_sdk_eventbridge::error::DisplayErrorContext;
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&event.detail_type)
            .detail(event.detail_json())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| format!("PutEvents: {}", DisplayErrorContext(e)))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .find_map(|e| e.error_code().map(str::to_string))
                .unwrap_or_else(|| "no error code".into());
            return Err(format!("PutEvents refused the event: {why}"));
        }
        Ok(())
    }
}
