//! WeChat server callbacks: signatures, safe-mode crypto, message parsing, and the service
//! that verifies, decrypts, dedupes and records what WeChat pushes.

pub mod crypto;
pub mod followup;
pub mod message;
pub mod plan;
mod replay;
pub mod service;
pub mod signature;
