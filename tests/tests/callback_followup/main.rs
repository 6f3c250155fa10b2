//! A new follower's `subscribe` is never lost to the jobs queue: the follow-up row
//! (`fup#{appid}` / openid) is recorded with the event, the unionid look-up is queued after
//! it (a refusal only logged, WeChat still told `success`), and the scheduled sweep queues
//! every look-up that was never queued. Each test runs on moto's DynamoDB and on the
//! embedded store, through a `FaultyStateStore` for the store's faults.

mod forwarding;
mod queue_down;
mod sweep;
mod world;
