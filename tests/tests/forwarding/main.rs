//! Event forwarding: every recorded callback event reaches the sink at least once, only after
//! it is recorded, whatever fails in between — the store (before and after it wrote), the
//! queue, the sink (for a while, or until the dead-letter queue) — and a redelivery is
//! harmless. Then the real parts: an EventBridge bus on moto that does not exist at first,
//! and `wxpush serve --forward URL` with a webhook that is down at first.

mod eventbridge;
mod local_server;
mod outbox;
mod retries;
mod sandbox_pushes;
mod webhook;
mod world;
