//! Sending messages: validation, recipients, idempotency, retries, records.

pub mod validate;
