//! Batches end to end: created through the `/v1` handler (API Gateway v2 events), fanned out
//! and sent by the job runner the batch-worker Lambda uses, against the WeChat emulator,
//! with the state store behind the fault-injecting wrapper and an SQS stand-in that delays,
//! redelivers failed jobs, delivers successful ones twice and refuses (`sim_queue`).
//! Every check counts messages in the emulator, recipient by recipient.
//!
//! The same code on moto (DynamoDB + SQS, real SQS event JSON) is in `batches_moto.rs`.

mod crashes;
mod lifecycle;
mod requests;
mod same_person;
mod serve;
mod storm;
