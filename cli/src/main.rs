//! `wxpush`: the operator's tool.
//!
//! - `wxpush serve [--sandbox] [--apps FILE]`: the whole service locally (see README).
//! - `wxpush sandbox --port N [--apps FILE]`: the WeChat emulator alone.
//! - `wxpush token --appid ID`: ask a running wxpush for an app's token (admin check).
//! - `wxpush sync-followers --appid ID`: run an official account's follower sync and follow
//!   it with a progress bar.
//! - `wxpush batch send APPID --message FILE (--recipients FILE | --followers) [--watch]`,
//!   `wxpush batch status APPID ID [--watch]`, `wxpush batch cancel APPID ID`.
//!
//! Exit codes: 0 done, 1 refused or failed, 2 bad usage.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use wxpush_cli::admin::{
    ApiClient, Audience, BatchSend, SyncFollowers, Watch, batch_cancel, batch_send, batch_status,
    batch_summary, read_recipients, sync_followers,
};
use wxpush_cli::local_key::{self, KeySource};
use wxpush_cli::sandbox::{EmulatedApp, Emulator};
use wxpush_cli::serve::{DataLocation, ServeConfig, demo_apps, start};
use wxpush_shared::secrets::{AppsFile, FileSecretStore};
use wxpush_shared::wechat::WeChatClientConfig;

#[derive(Parser)]
#[command(
    name = "wxpush",
    version,
    about = "wxpush: WeChat access_token central control, callbacks and messages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every route locally on one port, with an embedded store.
    Serve {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// TOML file with one [[app]] table per app.
        #[arg(long)]
        apps: Option<PathBuf>,
        /// Serve the WeChat emulator under /sandbox and point the WeChat client at it.
        #[arg(long)]
        sandbox: bool,
        /// The embedded database file (default .wxpush/wxpush.redb; in memory with --sandbox).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seconds between scheduled token refreshes.
        #[arg(long, default_value_t = 60)]
        refresh_every: u64,
        /// Refresh tokens expiring within this many seconds.
        #[arg(long, default_value_t = 900)]
        refresh_window: u64,
        /// Forward every recorded callback event to this webhook (POST, JSON), at least once.
        #[arg(long, value_name = "URL")]
        forward: Option<String>,
    },
    /// Run the WeChat emulator alone (WeChat paths at the root, controls under /sandbox).
    Sandbox {
        #[arg(long, default_value_t = 4000)]
        port: u16,
        #[arg(long)]
        apps: Option<PathBuf>,
        /// Lifetime of issued tokens, seconds.
        #[arg(long, default_value_t = 7200)]
        token_ttl: i64,
        /// Push WeChat's events (delivery reports, follows) to {URL}/{appid}, signed and
        /// encrypted as the apps file says, e.g. http://127.0.0.1:3000/wechat.
        #[arg(long, value_name = "URL")]
        callback_base: Option<String>,
    },
    /// Print an app's current token as a running wxpush serves it (GET /v1/apps/{appid}/token).
    Token {
        #[arg(long)]
        appid: String,
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        server: String,
    },
    /// Sync an official account's followers (user/get + batchget) through a running wxpush
    /// and follow the progress; resumes a failed sync unless --restart.
    SyncFollowers {
        #[arg(long)]
        appid: String,
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        server: String,
        /// Start over instead of resuming a failed sync.
        #[arg(long)]
        restart: bool,
        /// Seconds between progress reads.
        #[arg(long, default_value_t = 1.0)]
        poll: f64,
        /// Stop following after this many seconds (the sync itself goes on).
        #[arg(long, default_value_t = 86_400)]
        give_up_after: u64,
    },
    /// Batches: one message to many recipients, through a running wxpush.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
}

#[derive(Subcommand)]
enum BatchCommand {
    /// Send one message to many recipients (POST /v1/apps/{appid}/batches).
    Send {
        appid: String,
        /// The message as JSON, without "to" (as for POST /v1/apps/{appid}/messages).
        #[arg(long)]
        message: PathBuf,
        /// A JSON array of {"openid"}/{"unionid"}, or one OPENID / openid:X / unionid:X a line.
        #[arg(
            long,
            conflicts_with = "followers",
            required_unless_present = "followers"
        )]
        recipients: Option<PathBuf>,
        /// Every subscribed follower of the official account instead of a list.
        #[arg(long)]
        followers: bool,
        /// Makes a retry of this command find the batch it created instead of a new one.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Follow the batch to the end with a progress bar.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        common: BatchCommon,
    },
    /// A batch's counts and failures; --watch follows it to the end.
    Status {
        appid: String,
        id: String,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        common: BatchCommon,
    },
    /// Stop what a batch has not sent yet.
    Cancel {
        appid: String,
        id: String,
        #[command(flatten)]
        common: BatchCommon,
    },
}

#[derive(clap::Args)]
struct BatchCommon {
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    server: String,
    /// Print the answer as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// Seconds between progress reads with --watch.
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    /// Stop following after this many seconds (the batch itself goes on).
    #[arg(long, default_value_t = 86_400)]
    give_up_after: u64,
}

impl BatchCommon {
    fn watch(&self, on: bool) -> Option<Watch> {
        on.then(|| Watch {
            poll_every: Duration::from_secs_f64(self.poll.clamp(0.05, 3600.0)),
            give_up_after: Duration::from_secs(self.give_up_after),
            show_progress: !self.json,
        })
    }
    fn print(&self, answer: &serde_json::Value) {
        if self.json || answer.get("sent").is_none() {
            println!("{answer}");
        } else {
            println!("{}", batch_summary(answer));
        }
    }
}

/// The `/v1` key: `WXPUSH_API_KEY`, else the one `wxpush serve` generated (refused when
/// other users can read its file).
fn client_key() -> Result<String, String> {
    if let Ok(k) = std::env::var("WXPUSH_API_KEY")
        && !k.trim().is_empty()
    {
        return Ok(k.trim().to_string());
    }
    local_key::read_private(&local_key::key_path(std::path::Path::new(".wxpush")))?
        .ok_or_else(|| "set WXPUSH_API_KEY (or start `wxpush serve` here once)".to_string())
}

fn load_apps(path: Option<&PathBuf>, sandbox: bool) -> Result<(AppsFile, bool), String> {
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

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            port,
            host,
            apps,
            sandbox,
            data,
            refresh_every,
            refresh_window,
            forward,
        } => {
            let (apps, demo) = load_apps(apps.as_ref(), sandbox)?;
            let data = match data {
                Some(p) => DataLocation::File(p),
                None if sandbox => DataLocation::Memory,
                None => DataLocation::File(PathBuf::from(".wxpush/wxpush.redb")),
            };
            let (key, source) = local_key::load_or_create(
                std::path::Path::new(".wxpush"),
                std::env::var("WXPUSH_API_KEY").ok(),
            )?;
            if !is_loopback(&host) {
                eprintln!(
                    "wxpush: warning: listening on {host}, beyond this machine. /v1 needs the bearer key, but /wechat is public{}; bind 127.0.0.1 unless you mean it.",
                    if sandbox {
                        " and the /sandbox controls are open to anyone who can reach this port"
                    } else {
                        ""
                    }
                );
            }
            let server = start(ServeConfig {
                host,
                port,
                apps: apps.clone(),
                sandbox,
                data,
                api_key: key.clone(),
                wechat: WeChatClientConfig::from_env(),
                refresh_every: Duration::from_secs(refresh_every.max(1)),
                refresh_window: Duration::from_secs(refresh_window),
                sync: Default::default(),
                batches: wxpush_shared::batch::BatchConfig::from_env()?,
                forward,
                sweep_every: Duration::from_secs(60),
            })
            .await?;
            println!("wxpush listening on {}", server.url());
            if source == KeySource::Generated {
                println!(
                    "API key (WXPUSH_API_KEY unset; generated and kept in .wxpush/api_key, mode 0600): {key}"
                );
            }
            let key_hint = match source {
                KeySource::Environment => "$WXPUSH_API_KEY",
                _ => "$(cat .wxpush/api_key)",
            };
            if sandbox {
                println!(
                    "WeChat sandbox: {}/sandbox  (controls: {}/sandbox/users, /sandbox/stats, ...)",
                    server.url(),
                    server.url()
                );
            }
            if demo {
                for a in &apps.apps {
                    println!(
                        "demo {}: appid={} callback_token={} encoding_aes_key={}",
                        a.kind,
                        a.appid,
                        a.callback_token.as_deref().unwrap_or("-"),
                        a.encoding_aes_key.as_deref().unwrap_or("-")
                    );
                }
            }
            println!(
                "try: curl -H \"Authorization: Bearer {key_hint}\" {}/v1/apps/{}/token",
                server.url(),
                apps.apps
                    .first()
                    .map(|a| a.appid.as_str())
                    .unwrap_or("APPID")
            );
            tokio::select! {
                _ = server.wait() => {}
                _ = tokio::signal::ctrl_c() => println!("stopping"),
            }
            Ok(())
        }
        Command::Sandbox {
            port,
            apps,
            token_ttl,
            callback_base,
        } => {
            let (apps, _) = load_apps(apps.as_ref(), true)?;
            let emulated: Vec<EmulatedApp> = FileSecretStore::from_file(apps)
                .map_err(|e| e.to_string())?
                .apps()
                .map(|a| EmulatedApp {
                    appid: a.appid.clone(),
                    secret: a.app_secret.expose().to_string(),
                    kind: a.kind,
                    callback: wxpush_cli::serve::callback_keys(a),
                })
                .collect();
            for a in &emulated {
                // Never the AppSecret: it is in the apps file for whoever may read it.
                println!("sandbox app {} ({})", a.appid, a.kind.as_str());
            }
            let emu = Emulator::new(emulated, token_ttl);
            emu.set_callback_base(callback_base);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "WeChat sandbox on http://{}",
                listener.local_addr().map_err(|e| e.to_string())?
            );
            tokio::select! {
                r = axum::serve(listener, emu.standalone_router()) => r.map_err(|e| e.to_string()),
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Token { appid, server } => {
            let api = ApiClient::new(&server, &client_key()?)?;
            match api.get(&format!("/v1/apps/{appid}/token")).await? {
                Ok(token) => println!("{token}"),
                Err(f) => return Err(f.to_string()),
            }
            Ok(())
        }
        Command::SyncFollowers {
            appid,
            server,
            restart,
            poll,
            give_up_after,
        } => {
            let api = ApiClient::new(&server, &client_key()?)?;
            let args = SyncFollowers {
                appid,
                restart,
                poll_every: Duration::from_secs_f64(poll.clamp(0.05, 3600.0)),
                give_up_after: Duration::from_secs(give_up_after),
                show_progress: true,
            };
            let done = sync_followers(&api, &args).await?;
            println!("{done}");
            Ok(())
        }
        Command::Batch { command } => run_batch(command).await,
    }
}

async fn run_batch(command: BatchCommand) -> Result<(), String> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    match command {
        BatchCommand::Send {
            appid,
            message,
            recipients,
            followers,
            idempotency_key,
            watch,
            common,
        } => {
            let message: serde_json::Value = serde_json::from_str(&read(&message)?)
                .map_err(|e| format!("the message file is not JSON: {e}"))?;
            let audience = match (recipients, followers) {
                (Some(file), false) => Audience::Recipients(read_recipients(&read(&file)?)?),
                _ => Audience::Followers,
            };
            let api = ApiClient::new(&common.server, &client_key()?)?;
            let args = BatchSend {
                appid,
                message,
                audience,
                idempotency_key,
                watch: common.watch(watch),
            };
            let answer = batch_send(&api, &args).await?;
            common.print(&answer);
            Ok(())
        }
        BatchCommand::Status {
            appid,
            id,
            watch,
            common,
        } => {
            let api = ApiClient::new(&common.server, &client_key()?)?;
            let answer = batch_status(&api, &appid, &id, common.watch(watch).as_ref()).await?;
            common.print(&answer);
            Ok(())
        }
        BatchCommand::Cancel { appid, id, common } => {
            let api = ApiClient::new(&common.server, &client_key()?)?;
            let answer = batch_cancel(&api, &appid, &id).await?;
            common.print(&answer);
            Ok(())
        }
    }
}

/// `127.0.0.1`, `::1`, `localhost` and the rest of 127.0.0.0/8.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[tokio::main]
async fn main() {
    wxpush_shared::telemetry::init_pretty_logs();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("wxpush: {e}");
        std::process::exit(1);
    }
}
