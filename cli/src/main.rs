//! `wxpush`: the operator's tool.
//!
//! - `wxpush serve [--sandbox] [--apps FILE]`: the whole service locally (see README).
//! - `wxpush sandbox --port N [--apps FILE]`: the WeChat emulator alone.
//! - Against a running wxpush (`--server URL`, default the local server; `--auth bearer|sigv4`,
//!   default bearer for loopback URLs and SigV4 otherwise; `--json` for scripts):
//!   `token APPID`, `send APPID (--json-file F | --type T --to X ...)`, `batch send|status|cancel`,
//!   `sync-followers APPID`, `templates APPID`, `apps` (the configured apps and their token
//!   state).
//! - `wxpush apps put APPID --from FILE`: an app's SSM parameters from its `[[app]]` entry.
//!
//! Exit codes: 0 done, 1 refused or failed, 2 bad usage.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use wxpush_cli::admin::{
    ApiClient, Audience, BatchSend, SyncFollowers, Watch, batch_cancel, batch_send, batch_status,
    batch_summary, read_recipients, sync_followers,
};
use wxpush_cli::auth::{Auth, AuthKind, SigV4Signer, check_transport};
use wxpush_cli::callback_guard::CallbackGuardArgs;
use wxpush_cli::forward_secret;
use wxpush_cli::local_key::{self, KeySource};
use wxpush_cli::ops::{
    CliError, SendFlags, answer, apps_put, apps_summary, apps_with_tokens, configured_apps,
    send_body, send_summary, templates_summary, token_summary,
};
use wxpush_cli::sandbox::{EmulatedApp, Emulator};
use wxpush_cli::serve::{DataLocation, ServeConfig, WorkerConfig, demo_apps, start_with};
use wxpush_shared::secrets::{AppsFile, FileSecretStore};
use wxpush_shared::wechat::WeChatClientConfig;

#[derive(Parser)]
#[command(
    name = "wxpush",
    version,
    about = "wxpush: WeChat access_token central control, callbacks and messages"
)]
struct Cli {
    /// The wxpush API: the local server, or the deployed API's URL
    /// (https://{api}.execute-api.{region}.amazonaws.com).
    #[arg(
        long,
        global = true,
        env = "WXPUSH_SERVER",
        default_value = "http://127.0.0.1:3000"
    )]
    server: String,
    /// bearer (WXPUSH_API_KEY or .wxpush/api_key) or sigv4 (the standard AWS credential
    /// chain); default: bearer for a loopback --server, sigv4 otherwise.
    #[arg(long, global = true, value_enum)]
    auth: Option<AuthKind>,
    /// Send the bearer key to a plain http:// --server that is not this machine anyway
    /// (it crosses the network in clear: anyone on the path can read and reuse it).
    #[arg(long, global = true)]
    insecure_http: bool,
    /// Print the API's answer as JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
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
        /// Forward every recorded callback event to this webhook (POST, JSON), at least once,
        /// signed (Wxpush-Signature). https://, or http:// to a loopback host only.
        #[arg(long, value_name = "URL")]
        forward: Option<String>,
        /// The secret forwarded events are signed with (mode 0600). Default:
        /// WXPUSH_FORWARD_SECRET, else one generated into .wxpush/forward_secret.
        #[arg(long, value_name = "FILE", requires = "forward")]
        forward_secret_file: Option<PathBuf>,
        /// Tests only: short batch chunks, pauses and retries, short job steps.
        #[arg(long, hide = true)]
        test_timings: bool,
        /// Seconds between scheduled sweeps (outbox, follow-ups, batches).
        #[arg(long, hide = true, default_value_t = 60)]
        sweep_every: u64,
        #[command(flatten)]
        callback_guard: CallbackGuardArgs,
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
    /// An app's current access_token and expiry (GET /v1/apps/{appid}/token).
    Token { appid: String },
    /// Send one message (POST /v1/apps/{appid}/messages).
    Send {
        appid: String,
        /// The request body as JSON (as the API takes it).
        #[arg(long, conflicts_with_all = ["kind", "to"])]
        json_file: Option<PathBuf>,
        /// template, subscribe, oa_subscribe, uniform or custom.
        #[arg(long = "type", id = "kind")]
        kind: Option<String>,
        /// OPENID, openid:X, unionid:X, or MP_APPID:OPENID (a mini program user, for --type
        /// uniform sent to the official account that mini program is linked to).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        template_id: Option<String>,
        /// KEY=VALUE, once per data key.
        #[arg(long)]
        data: Vec<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        page: Option<String>,
        /// A customer-service text message's content (--type custom).
        #[arg(long)]
        text: Option<String>,
        /// Makes a retry of this command replay the first answer instead of sending again.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Sync an official account's followers (user/get + batchget) through a running wxpush
    /// and follow the progress; resumes a failed sync unless --restart.
    SyncFollowers {
        appid: String,
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
    /// An app's templates as WeChat lists them (GET /v1/apps/{appid}/templates).
    Templates {
        appid: String,
        /// Read them from WeChat again instead of wxpush's cache.
        #[arg(long)]
        refresh: bool,
    },
    /// The configured apps and their token state; `apps put` writes one to SSM.
    Apps {
        #[command(subcommand)]
        command: Option<AppsCommand>,
        /// Take the apps from this file instead of SSM.
        #[arg(long)]
        apps: Option<PathBuf>,
        #[arg(long, env = "WXPUSH_SSM_PREFIX", default_value = "/wxpush")]
        ssm_prefix: String,
    },
    /// Batches: one message to many recipients, through a running wxpush.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Write an app's SSM parameters from its [[app]] entry in a TOML file (secrets as
    /// SecureString); optional parameters the entry leaves out are deleted.
    Put {
        appid: String,
        #[arg(long = "from")]
        from: PathBuf,
        #[arg(long, env = "WXPUSH_SSM_PREFIX", default_value = "/wxpush")]
        ssm_prefix: String,
        /// The KMS key of the SecureString parameters (default: the account's aws/ssm key).
        #[arg(long)]
        kms_key_id: Option<String>,
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
    /// Seconds between progress reads with --watch.
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    /// Stop following after this many seconds (the batch itself goes on).
    #[arg(long, default_value_t = 86_400)]
    give_up_after: u64,
}

impl BatchCommon {
    fn watch(&self, on: bool, json: bool) -> Option<Watch> {
        on.then(|| Watch {
            poll_every: Duration::from_secs_f64(self.poll.clamp(0.05, 3600.0)),
            give_up_after: Duration::from_secs(self.give_up_after),
            show_progress: !json,
        })
    }
}

/// The answer as JSON with `--json`, else the summary.
fn print(
    json: bool,
    answer: &serde_json::Value,
    summary: impl FnOnce(&serde_json::Value) -> String,
) {
    if json {
        println!("{answer}");
    } else {
        println!("{}", summary(answer));
    }
}

fn read_file(p: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(p)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))
}

/// `--auth` and `--insecure-http`: how the commands may reach `--server`.
#[derive(Clone, Copy)]
struct Access {
    kind: Option<AuthKind>,
    insecure_http: bool,
}

/// The `/v1` client for `--server`, `--auth` and `--insecure-http`.
async fn api_client(server: &str, access: Access) -> Result<ApiClient, CliError> {
    let kind = access.kind.unwrap_or_else(|| AuthKind::default_for(server));
    check_transport(server, kind, access.insecure_http).map_err(CliError::Usage)?;
    let auth = match kind {
        AuthKind::Bearer => Auth::Bearer(client_key().map_err(CliError::Usage)?),
        AuthKind::Sigv4 => Auth::SigV4(
            SigV4Signer::from_environment(server)
                .await
                .map_err(CliError::Usage)?,
        ),
    };
    ApiClient::with_auth(server, auth).map_err(CliError::Usage)
}

async fn ssm_client() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&wxpush_shared::aws::load_sdk_config().await)
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

async fn run(cli: Cli) -> Result<(), CliError> {
    let auth = Access {
        kind: cli.auth,
        insecure_http: cli.insecure_http,
    };
    let (server, json) = (cli.server.clone(), cli.json);
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
            forward_secret_file,
            test_timings,
            sweep_every,
            callback_guard,
        } => {
            let (apps, demo) = load_apps(apps.as_ref(), sandbox).map_err(CliError::Usage)?;
            let callback_guard = callback_guard.config().map_err(CliError::Usage)?;
            // Checked before anything starts: https:// (or loopback http://), and the secret
            // every delivery is signed with.
            let (forward, forward_note) = forward
                .map(|url| {
                    forward_secret::webhook_target(
                        &url,
                        std::path::Path::new(".wxpush"),
                        forward_secret_file.as_deref(),
                        std::env::var("WXPUSH_FORWARD_SECRET").ok(),
                    )
                })
                .transpose()
                .map_err(CliError::Usage)?
                .unzip();
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
                    "wxpush: warning: listening on {host}, beyond this machine. /v1 needs the bearer key, but /wechat is public{}; bind 127.0.0.1 unless you mean it.{}",
                    if sandbox {
                        " and the /sandbox controls are open to anyone who can reach this port"
                    } else {
                        ""
                    },
                    if callback_guard.per_source.is_none()
                        && callback_guard.allow.is_empty()
                        && !callback_guard.allow_wechat
                    {
                        " /wechat has no limit: see --callback-rate and --callback-allow-wechat."
                    } else {
                        ""
                    }
                );
            }
            let mut batches =
                wxpush_shared::batch::BatchConfig::from_env().map_err(|e| e.to_string())?;
            let worker = if test_timings {
                wxpush_cli::serve::test_timings(&mut batches)
            } else {
                WorkerConfig::default()
            };
            let server = start_with(
                ServeConfig {
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
                    batches,
                    forward,
                    sweep_every: Duration::from_secs(sweep_every.max(1)),
                    callback_guard,
                },
                worker,
            )
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
            if let Some(note) = forward_note {
                println!("{note}");
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
            let (apps, _) = load_apps(apps.as_ref(), true).map_err(CliError::Usage)?;
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
                r = axum::serve(listener, emu.standalone_router()) => r.map_err(|e| CliError::Failed(e.to_string())),
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Token { appid } => {
            let api = api_client(&server, auth).await?;
            let token = answer(api.get(&format!("/v1/apps/{appid}/token"))).await?;
            print(json, &token, |t| token_summary(&appid, t));
            Ok(())
        }
        Command::Send {
            appid,
            json_file,
            kind,
            to,
            template_id,
            data,
            url,
            page,
            text,
            idempotency_key,
        } => {
            let file = json_file.as_ref().map(read_file).transpose()?;
            let flags = SendFlags {
                kind,
                to,
                template_id,
                data,
                url,
                page,
                text,
            };
            let body = send_body(file.as_deref(), &flags)?;
            let api = api_client(&server, auth).await?;
            let sent = answer(api.post_keyed(
                &format!("/v1/apps/{appid}/messages"),
                &body,
                idempotency_key.as_deref(),
            ))
            .await?;
            print(json, &sent, send_summary);
            Ok(())
        }
        Command::SyncFollowers {
            appid,
            restart,
            poll,
            give_up_after,
        } => {
            let api = api_client(&server, auth).await?;
            let args = SyncFollowers {
                appid,
                restart,
                poll_every: Duration::from_secs_f64(poll.clamp(0.05, 3600.0)),
                give_up_after: Duration::from_secs(give_up_after),
                show_progress: !json,
            };
            let done = sync_followers(&api, &args).await?;
            print(json, &done, |d| {
                format!(
                    "follower sync {}: {} followers, {} mapped to a unionid, {} without, {} errors",
                    d["state"].as_str().unwrap_or("?"),
                    d["followers"],
                    d["mapped"],
                    d["without_unionid"],
                    d["errors"]
                )
            });
            Ok(())
        }
        Command::Templates { appid, refresh } => {
            let api = api_client(&server, auth).await?;
            let query = if refresh { "?refresh=true" } else { "" };
            let list = answer(api.get(&format!("/v1/apps/{appid}/templates{query}"))).await?;
            print(json, &list, templates_summary);
            Ok(())
        }
        Command::Apps {
            command:
                Some(AppsCommand::Put {
                    appid,
                    from,
                    ssm_prefix,
                    kms_key_id,
                }),
            ..
        } => {
            let text = read_file(&from)?;
            let ssm = ssm_client().await;
            let done = apps_put(&ssm, &ssm_prefix, &text, &appid, kms_key_id.as_deref()).await?;
            print(json, &done, |d| {
                format!(
                    "{appid}: wrote {} parameters, deleted {}",
                    d["written"].as_array().map_or(0, Vec::len),
                    d["deleted"].as_array().map_or(0, Vec::len)
                )
            });
            Ok(())
        }
        Command::Apps {
            command: None,
            apps,
            ssm_prefix,
        } => {
            let listed = match apps {
                Some(path) => configured_apps(Some(&read_file(&path)?), None).await?,
                None => {
                    let ssm = ssm_client().await;
                    configured_apps(None, Some((&ssm, &ssm_prefix))).await?
                }
            };
            let api = api_client(&server, auth).await?;
            let state = apps_with_tokens(&api, &listed).await;
            print(json, &state, |s| {
                apps_summary(s, wxpush_shared::clock::now_unix())
            });
            Ok(())
        }
        Command::Batch { command } => run_batch(command, &server, auth, json).await,
    }
}

async fn run_batch(
    command: BatchCommand,
    server: &str,
    auth: Access,
    json: bool,
) -> Result<(), CliError> {
    let read = read_file;
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
                .map_err(|e| CliError::Usage(format!("the message file is not JSON: {e}")))?;
            let audience = match (recipients, followers) {
                (Some(file), false) => {
                    Audience::Recipients(read_recipients(&read(&file)?).map_err(CliError::Usage)?)
                }
                _ => Audience::Followers,
            };
            let api = api_client(server, auth).await?;
            let args = BatchSend {
                appid,
                message,
                audience,
                idempotency_key,
                watch: common.watch(watch, json),
            };
            let answer = batch_send(&api, &args).await?;
            print(json, &answer, batch_summary);
            Ok(())
        }
        BatchCommand::Status {
            appid,
            id,
            watch,
            common,
        } => {
            let api = api_client(server, auth).await?;
            let answer =
                batch_status(&api, &appid, &id, common.watch(watch, json).as_ref()).await?;
            print(json, &answer, batch_summary);
            Ok(())
        }
        BatchCommand::Cancel { appid, id, .. } => {
            let api = api_client(server, auth).await?;
            let answer = batch_cancel(&api, &appid, &id).await?;
            print(json, &answer, batch_summary);
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
        std::process::exit(e.exit_code());
    }
}
