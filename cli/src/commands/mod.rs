//! `wxpush`'s commands, one module each. [`run`] hands the parsed command line to the one
//! it names.
//!
//! `serve` and `sandbox` run wxpush or the WeChat emulator here; the others talk to a
//! running wxpush through the [`Operator`]'s `--server`, `--auth` and `--json`. Each of
//! those prints the API's answer (as JSON with `--json`) or a human summary; a refusal is an
//! error with exit code 1, bad usage exit code 2.

pub mod apps;
pub mod batch;
pub mod events;
pub mod list_page;
pub mod messages;
pub mod progress;
pub mod sandbox;
pub mod send;
pub mod serve;
pub mod sync_followers;
pub mod templates;
pub mod token;
pub mod user;

use crate::args::{Cli, Command};
use crate::client::{Access, ApiClient};
use crate::error::CliError;
use crate::local_server::demo_apps;
use std::path::PathBuf;
use wxpush_shared::secrets::{AppsFile, FileSecretStore};

/// Runs the command the command line names.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli {
        server,
        auth,
        insecure_http,
        json,
        command,
    } = cli;
    let operator = Operator {
        server,
        access: Access {
            kind: auth,
            insecure_http,
        },
        json,
    };
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Token(args) => token::run(&operator, args).await,
        Command::Send(args) => send::run(&operator, args).await,
        Command::SyncFollowers(args) => sync_followers::run(&operator, args).await,
        Command::Templates(args) => templates::run(&operator, args).await,
        Command::Messages(args) => messages::run(&operator, args).await,
        Command::Events(args) => events::run(&operator, args).await,
        Command::User(args) => user::run(&operator, args).await,
        Command::Apps(args) => apps::run(&operator, args).await,
        Command::Batch { command } => batch::run(&operator, command).await,
    }
}

/// What the commands that talk to a running wxpush share: where it is (`--server`), how
/// to reach it (`--auth`, `--insecure-http`) and how to print its answers (`--json`).
pub struct Operator {
    pub server: String,
    pub access: Access,
    pub json: bool,
}

impl Operator {
    /// The `/v1` client for `--server`, `--auth` and `--insecure-http`.
    pub async fn api(&self) -> Result<ApiClient, CliError> {
        ApiClient::for_server(&self.server, self.access).await
    }

    /// The answer as JSON with `--json`, else the summary.
    pub fn print(
        &self,
        answer: &serde_json::Value,
        summary: impl FnOnce(&serde_json::Value) -> String,
    ) {
        if self.json {
            println!("{answer}");
        } else {
            println!("{}", summary(answer));
        }
    }
}

/// A file the command line names; unreadable is bad usage.
pub fn read_file(p: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(p)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))
}

/// The apps of `serve` and `sandbox`: `--apps FILE`, checked as wxpush checks it, or the
/// demo apps (`true`) when `sandbox` allows them.
pub fn load_apps(path: Option<&PathBuf>, sandbox: bool) -> Result<(AppsFile, bool), String> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let file = AppsFile::parse(&text).map_err(|e| e.to_string())?;
            FileSecretStore::from_file(file.clone()).map_err(|e| e.to_string())?;
            Ok((file, false))
        }
        None if sandbox => Ok((demo_apps(), true)),
        None => Err("give --apps FILE (or --sandbox for the demo apps)".into()),
    }
}
