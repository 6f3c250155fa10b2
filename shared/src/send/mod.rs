//! Sending messages: validation, recipients, idempotency, retries, records.

pub mod service;
pub mod validate;
