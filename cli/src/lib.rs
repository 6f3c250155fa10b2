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
