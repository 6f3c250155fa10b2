//! WeChat server callbacks: signatures, safe-mode crypto, message parsing, and the service
//! that verifies, decrypts, dedupes and records what WeChat pushes; [`events`] lists what
//! it recorded.

pub mod crypto;
pub mod events;
pub mod followup;
pub mod message;
pub mod plan;
mod replay;
pub mod service;
pub mod signature;
