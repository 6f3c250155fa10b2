//! `wxpush batch send|status|cancel`: batches, one message to many recipients, through a
//! running wxpush. `--watch` follows a batch to the end with a progress bar.

pub mod cancel;
pub mod recipients;
pub mod send;
pub mod status;

pub use cancel::batch_cancel;
pub use recipients::read_recipients;
pub use send::{Audience, BatchSend, batch_send};
pub use status::batch_status;

use super::Operator;
use crate::args::{BatchCommand, BatchCommon};
use crate::error::CliError;
use serde_json::Value;
use std::time::Duration;

pub async fn run(operator: &Operator, command: BatchCommand) -> Result<(), CliError> {
    match command {
        BatchCommand::Send(args) => send::run(operator, args).await,
        BatchCommand::Status(args) => status::run(operator, args).await,
        BatchCommand::Cancel(args) => cancel::run(operator, args).await,
    }
}

/// How `--watch` follows a batch.
pub struct Watch {
    pub poll_every: Duration,
    pub give_up_after: Duration,
    pub show_progress: bool,
}

impl BatchCommon {
    /// How `--watch` follows the batch, when it is given.
    pub fn watch(&self, on: bool, json: bool) -> Option<Watch> {
        on.then(|| Watch {
            poll_every: Duration::from_secs_f64(self.poll.clamp(0.05, 3600.0)),
            give_up_after: Duration::from_secs(self.give_up_after),
            show_progress: !json,
        })
    }
}

/// One line for a person: a batch's counts.
pub fn batch_summary(s: &Value) -> String {
    let n = |k: &str| s[k].as_i64().unwrap_or(0);
    format!(
        "batch {} ({}): total {}, sent {}, failed {}, unknown {}, cancelled {}, queued {}{}",
        s["id"].as_str().unwrap_or("?"),
        s["state"].as_str().unwrap_or("?"),
        n("total"),
        n("sent"),
        n("failed"),
        n("unknown"),
        n("cancelled"),
        n("queued"),
        if s["done"] == true { ", done" } else { "" }
    )
}
