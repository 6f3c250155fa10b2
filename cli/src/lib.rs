//! The operator's tool as a library, so tests start the local server and the WeChat
//! emulator in-process, exactly as `wxpush serve` and `wxpush sandbox` do.

pub mod args;
pub mod auth;
pub mod callback_guard;
pub mod client;
pub mod commands;
pub mod error;
pub mod forward_secret;
pub mod local_key;
pub mod local_server;
pub mod private_fs;
pub mod sandbox;

/// The local server under its former name.
pub use local_server as serve;

/// The operator commands' client and the batch and follower-sync commands under their
/// former paths.
pub mod admin {
    pub use crate::client::{ApiClient, ApiFailure};
    pub use crate::commands::batch::{
        Audience, BatchSend, Watch, batch_cancel, batch_send, batch_status, batch_summary,
        read_recipients,
    };
    pub use crate::commands::sync_followers::{SyncFollowers, sync_followers};
}
