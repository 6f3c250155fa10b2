//! The operator's tool as a library, so tests start the local server and the WeChat
//! emulator in-process, exactly as `wxpush serve` and `wxpush sandbox` do.

pub mod admin;
pub mod auth;
pub mod callback_guard;
pub mod forward_secret;
pub mod local_key;
pub mod ops;
pub mod private_fs;
pub mod sandbox;
pub mod serve;
