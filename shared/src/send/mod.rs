//! Sending messages: validation, recipients, idempotency, retries, records.
//!
//! One send passes through these files in order:
//! - `validate/`: the request body, checked by message kind before anything else;
//! - `request.rs`: `POST /v1/apps/{appid}/messages` (and a batch recipient's send), step by
//!   step;
//! - `idempotency_key.rs` and `claim.rs`: the caller's `Idempotency-Key`, claimed in the store;
//! - `route.rs`: the app that sends the message and the recipient's openid there;
//! - `before.rs`: what wxpush knows of the user, checked and taken before WeChat (the
//!   customer-service window and its fallback, the grant, the daily cap);
//! - `deliver.rs`: the WeChat call with the retry rules of docs/api.md;
//! - `outcome.rs` and `refusal.rs`: the answer, and WeChat's refusals as the API names them;
//! - `record.rs`: the message record and the finished claim, written together, and read back
//!   by a takeover; `read.rs`: messages as the API shows them, one or the app's list.
//!
//! `service.rs` holds the [`Sender`](service::Sender) these steps are methods of, and
//! re-exports their public items.

mod before;
mod claim;
mod deliver;
mod idempotency_key;
mod outcome;
mod read;
mod record;
mod refusal;
mod request;
mod route;
pub mod service;
pub mod validate;
