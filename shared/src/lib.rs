//! wxpush core library: everything the Lambdas, the local server and the CLI share.
//!
//! One module per concept, so a reader finds its owner quickly:
//! - [`app`]: an app's configuration and the [`Secret`] wrapper that never prints its value.
//! - [`secrets`]: where app configuration comes from (`SecretStore`: SSM or a local TOML file).
//! - [`wechat`]: WeChat payload types, the typed WeChat error and the HTTP client (`WeChatApi`).
//! - [`token`]: the access_token central control (`TokenStore`: DynamoDB or embedded, and the
//!   `TokenManager` with its cache, lease and compare-and-invalidate).
//! - [`store`]: wxpush's state (`StateStore`: DynamoDB or embedded) and its item keys.
//! - [`callback`], [`send`], [`identity`], [`followers`], [`batch`], [`templates`],
//!   [`quota`]: the services behind the routes; [`token_retry`]: the token-retry rule of
//!   the account-management calls.
//! - [`user_state`]: what wxpush knows of a user before it sends (the customer-service
//!   window, subscribe grants, the daily cap) and the user view.
//! - [`callback_ips`]: WeChat's callback addresses (`getcallbackip`), parsed for allow-lists.
//! - [`forward`]: recorded callback events forwarded to an EventBridge bus or a webhook.
//! - [`queue`]: background jobs (`JobQueue`: SQS or an in-process channel); [`jobs`] runs them.
//! - [`listing`]: newest-first lists of an app's messages, batches and events, paged by cursor.
//! - [`error`]: the API error enum and its one mapping to HTTP.
//! - [`aws`], [`telemetry`], [`clock`]: cold-start plumbing; [`metrics`]: EMF metrics.

pub mod app;
pub mod aws;
pub mod batch;
pub mod callback;
pub mod callback_ips;
pub mod clock;
pub mod error;
pub mod followers;
pub mod forward;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod listing;
pub mod metrics;
mod partition_scan;
pub mod queue;
pub mod quota;
pub mod runtime;
pub mod secrets;
pub mod send;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod tls;
pub mod token;
pub mod token_retry;
pub mod user_state;
pub mod wechat;

pub use app::{AppConfig, AppKind, CallbackMode, Secret, TokenApi, is_valid_appid};
pub use error::ApiError;
