//! `wxpush`: the operator's tool.
//!
//! - `wxpush serve [--sandbox] [--apps FILE]`: the whole service locally (docs/local.md#local-server).
//! - `wxpush sandbox --port N [--apps FILE]`: the WeChat emulator alone.
//! - Against a running wxpush (`--server URL`, default the local server; `--auth bearer|sigv4`,
//!   default bearer for loopback URLs and SigV4 otherwise; `--json` for scripts):
//!   `token APPID`, `send APPID (--json-file F | --type T --to X ...)`, `batch send|status|cancel`,
//!   `sync-followers APPID`, `templates APPID`, `apps` (the configured apps and their token
//!   state).
//! - `wxpush apps put APPID --from FILE`: an app's SSM parameters from its `[[app]]` entry.
//!
//! Exit codes: 0 done, 1 refused or failed, 2 bad usage.
//!
//! The flags are in `args`, each command in `commands/`.

use clap::Parser;
use wxpush_cli::args::Cli;
use wxpush_cli::commands;

#[tokio::main]
async fn main() {
    wxpush_shared::telemetry::init_pretty_logs();
    if let Err(e) = commands::run(Cli::parse()).await {
        eprintln!("wxpush: {e}");
        std::process::exit(e.exit_code());
    }
}
