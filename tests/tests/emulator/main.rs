//! The WeChat emulator's own rules (docs/wechat.md), checked over HTTP as a client sees them.

mod client;
mod faults;
mod messages;
mod templates;
mod tokens;
mod users;
