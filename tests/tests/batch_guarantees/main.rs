//! The guarantees of batches and keyed sends under the faults a kinder harness hid: jobs
//! killed at any moment (Lambda's deadline, a crash) and on their last delivery, routing
//! reads that fail after a takeover, WeChat's 10-minute `client_msg_id` window, the same
//! person listed twice, and counts that must agree with the failures listed.
//!
//! Each test names the path of the guarantees issue it covers and how it failed before.

mod claims;
mod keyed_sends;
mod killed_jobs;
mod routing_faults;
mod template_unknowns;
