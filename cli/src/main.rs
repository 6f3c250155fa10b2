//! `wxpush`: the operator's tool.
//!
//! - `wxpush serve [--sandbox] [--apps FILE]`: the whole service locally (see README).
//! - `wxpush sandbox --port N [--apps FILE]`: the WeChat emulator alone.
//! - `wxpush token --appid ID`: ask a running wxpush for an app's token (admin check).
//! - `wxpush sync-followers --appid ID`: run an official account's follower sync and follow
//!   it with a progress bar.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use wxpush_cli::admin::{ApiClient, SyncFollowers, sync_followers};
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
        } => {
            let (apps, _) = load_apps(apps.as_ref(), true)?;
            let emulated: Vec<EmulatedApp> = FileSecretStore::from_file(apps)
                .map_err(|e| e.to_string())?
                .apps()
                .map(|a| EmulatedApp {
                    appid: a.appid.clone(),
                    secret: a.app_secret.expose().to_string(),
                    kind: a.kind,
                })
                .collect();
            for a in &emulated {
                // Never the AppSecret: it is in the apps file for whoever may read it.
                println!("sandbox app {} ({})", a.appid, a.kind.as_str());
            }
            let emu = Emulator::new(emulated, token_ttl);
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
