//! Shared test fixtures: moto (real AWS APIs on 127.0.0.1 through the real SDK) and the
//! WeChat emulator, started in-process on port 0 and stopped when dropped.
//!
//! One concept per module; everything a test binary uses is re-exported here.

pub mod batch_world;
pub mod faults;
pub mod key_limits;
pub mod signature;
pub mod sim_queue;

mod apigw;
mod callback_world;
mod embedded;
mod emulator_server;
mod jobs;
mod local_server;
mod logs;
mod moto;
mod moto_sqs;
mod send_call;
mod tls_server;
mod token_world;

pub use apigw::{apigw_callback_request, apigw_v1_request, apigw_v1_request_as, query_string};
pub use callback_world::{callback_service, callback_service_with_queue, nonce, signed_query};
pub use embedded::{embedded_token_manager, memory_db};
pub use emulator_server::{EmulatorServer, emulated};
pub use jobs::{job_runner, run_jobs};
pub use local_server::{FORWARD_SECRET, local_server, local_server_forwarding};
pub use logs::{LogCapture, capture_suite_logs, remember_secrets, test_log_dir};
pub use moto::{SsmApp, create_table, put_app, random_appid, sdk_config, unique};
pub use moto_sqs::{SqsDrive, drive_sqs, moto_queue};
pub use send_call::send_message;
pub use tls_server::{TLS_TEST_CERT, TlsServer, https_clients};
pub use token_world::{TokenWorld, concurrent_gets};
