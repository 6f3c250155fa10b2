//! `wxpush`'s command line: the flags of every command, as clap reads them. What each
//! command does with them is in `commands/`.
//!
//! The doc comments on these types are the `--help` text; the types themselves carry none,
//! since clap would print it.

use crate::auth::AuthKind;
use crate::callback_guard::CallbackGuardArgs;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "wxpush",
    version,
    about = "wxpush: WeChat access_token central control, callbacks and messages"
)]
pub struct Cli {
    /// The wxpush API: the local server, or the deployed API's URL
    /// (https://{api}.execute-api.{region}.amazonaws.com).
    #[arg(
        long,
        global = true,
        env = "WXPUSH_SERVER",
        default_value = "http://127.0.0.1:3000"
    )]
    pub server: String,
    /// bearer (WXPUSH_API_KEY or .wxpush/api_key) or sigv4 (the standard AWS credential
    /// chain); default: bearer for a loopback --server, sigv4 otherwise.
    #[arg(long, global = true, value_enum)]
    pub auth: Option<AuthKind>,
    /// Send the bearer key to a plain http:// --server that is not this machine anyway
    /// (it crosses the network in clear: anyone on the path can read and reuse it).
    #[arg(long, global = true)]
    pub insecure_http: bool,
    /// Print the API's answer as JSON instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run every route locally on one port, with an embedded store.
    Serve(ServeArgs),
    /// Run the WeChat emulator alone (WeChat paths at the root, controls under /sandbox).
    Sandbox(SandboxArgs),
    /// An app's current access_token and expiry (GET /v1/apps/{appid}/token).
    Token(TokenArgs),
    /// Send one message (POST /v1/apps/{appid}/messages).
    Send(SendArgs),
    /// Sync an official account's followers (user/get + batchget) through a running wxpush
    /// and follow the progress; resumes a failed sync unless --restart.
    SyncFollowers(SyncFollowersArgs),
    /// An app's templates as WeChat lists them (GET /v1/apps/{appid}/templates).
    Templates(TemplatesArgs),
    /// An app's messages, newest first, with their status (GET /v1/apps/{appid}/messages).
    Messages(ListArgs),
    /// What WeChat pushed to an app, newest first, with its forwarding state
    /// (GET /v1/apps/{appid}/events).
    Events(ListArgs),
    /// What wxpush knows of one user: follow state, the customer-service window, grants,
    /// messages sent today (GET /v1/apps/{appid}/users/{openid}).
    User(UserArgs),
    /// The configured apps and their token state; `apps put` writes one to SSM.
    Apps(AppsArgs),
    /// Batches: one message to many recipients, through a running wxpush.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
}

// `wxpush serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// TOML file with one [[app]] table per app.
    #[arg(long)]
    pub apps: Option<PathBuf>,
    /// Serve the WeChat emulator under /sandbox and point the WeChat client at it.
    #[arg(long)]
    pub sandbox: bool,
    /// The embedded database file (default .wxpush/wxpush.redb; in memory with --sandbox).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seconds between scheduled token refreshes.
    #[arg(long, default_value_t = 60)]
    pub refresh_every: u64,
    /// Refresh tokens expiring within this many seconds.
    #[arg(long, default_value_t = 900)]
    pub refresh_window: u64,
    /// Forward every recorded callback event to this webhook (POST, JSON), at least once,
    /// signed (Wxpush-Signature). https://, or http:// to a loopback host only.
    #[arg(long, value_name = "URL")]
    pub forward: Option<String>,
    /// The secret forwarded events are signed with (mode 0600). Default:
    /// WXPUSH_FORWARD_SECRET, else one generated into .wxpush/forward_secret.
    #[arg(long, value_name = "FILE", requires = "forward")]
    pub forward_secret_file: Option<PathBuf>,
    /// Tests only: short batch chunks, pauses and retries, short job steps.
    #[arg(long, hide = true)]
    pub test_timings: bool,
    /// Seconds between scheduled sweeps (outbox, follow-ups, batches).
    #[arg(long, hide = true, default_value_t = 60)]
    pub sweep_every: u64,
    #[command(flatten)]
    pub callback_guard: CallbackGuardArgs,
}

// `wxpush sandbox`.
#[derive(clap::Args)]
pub struct SandboxArgs {
    #[arg(long, default_value_t = 4000)]
    pub port: u16,
    #[arg(long)]
    pub apps: Option<PathBuf>,
    /// Lifetime of issued tokens, seconds.
    #[arg(long, default_value_t = 7200)]
    pub token_ttl: i64,
    /// Push WeChat's events (delivery reports, follows) to {URL}/{appid}, signed and
    /// encrypted as the apps file says, e.g. http://127.0.0.1:3000/wechat.
    #[arg(long, value_name = "URL")]
    pub callback_base: Option<String>,
}

// `wxpush token`.
#[derive(clap::Args)]
pub struct TokenArgs {
    pub appid: String,
}

// `wxpush user`.
#[derive(clap::Args)]
pub struct UserArgs {
    pub appid: String,
    pub openid: String,
}

// `wxpush send`.
#[derive(clap::Args)]
pub struct SendArgs {
    pub appid: String,
    /// The request body as JSON (as the API takes it).
    #[arg(long, conflicts_with_all = ["kind", "to"])]
    pub json_file: Option<PathBuf>,
    /// template, subscribe, oa_subscribe, uniform or custom.
    #[arg(long = "type", id = "kind")]
    pub kind: Option<String>,
    /// OPENID, openid:X, unionid:X, or MP_APPID:OPENID (a mini program user, for --type
    /// uniform sent to the official account that mini program is linked to).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub template_id: Option<String>,
    /// KEY=VALUE, once per data key.
    #[arg(long)]
    pub data: Vec<String>,
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub page: Option<String>,
    /// A customer-service text message's content (--type custom).
    #[arg(long)]
    pub text: Option<String>,
    /// Makes a retry of this command replay the first answer instead of sending again.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

// `wxpush sync-followers`.
#[derive(clap::Args)]
pub struct SyncFollowersArgs {
    pub appid: String,
    /// Start over instead of resuming a failed sync.
    #[arg(long)]
    pub restart: bool,
    /// Seconds between progress reads.
    #[arg(long, default_value_t = 1.0)]
    pub poll: f64,
    /// Stop following after this many seconds (the sync itself goes on).
    #[arg(long, default_value_t = 86_400)]
    pub give_up_after: u64,
}

// `wxpush templates`.
#[derive(clap::Args)]
pub struct TemplatesArgs {
    pub appid: String,
    /// Read them from WeChat again instead of wxpush's cache.
    #[arg(long)]
    pub refresh: bool,
}

// `wxpush messages`, `wxpush events` and `wxpush batch list` (one page of an app's list,
// newest first).
#[derive(clap::Args)]
pub struct ListArgs {
    pub appid: String,
    /// How many to show (1-100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,
    /// Older ones: the cursor the page before ended with.
    #[arg(long)]
    pub cursor: Option<String>,
}

// `wxpush apps` and `wxpush apps put`.
#[derive(clap::Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    pub command: Option<AppsCommand>,
    /// Take the apps from this file instead of SSM.
    #[arg(long)]
    pub apps: Option<PathBuf>,
    #[arg(long, env = "WXPUSH_SSM_PREFIX", default_value = "/wxpush")]
    pub ssm_prefix: String,
}

#[derive(Subcommand)]
pub enum AppsCommand {
    /// Write an app's SSM parameters from its [[app]] entry in a TOML file (secrets as
    /// SecureString); optional parameters the entry leaves out are deleted.
    Put(AppsPutArgs),
}

// `wxpush apps put`.
#[derive(clap::Args)]
pub struct AppsPutArgs {
    pub appid: String,
    #[arg(long = "from")]
    pub from: PathBuf,
    #[arg(long, env = "WXPUSH_SSM_PREFIX", default_value = "/wxpush")]
    pub ssm_prefix: String,
    /// The KMS key of the SecureString parameters (default: the account's aws/ssm key).
    #[arg(long)]
    pub kms_key_id: Option<String>,
}

#[derive(Subcommand)]
pub enum BatchCommand {
    /// Send one message to many recipients (POST /v1/apps/{appid}/batches).
    Send(BatchSendArgs),
    /// A batch's counts and failures; --watch follows it to the end.
    Status(BatchStatusArgs),
    /// Stop what a batch has not sent yet.
    Cancel(BatchCancelArgs),
    /// The app's batches, newest first, with their counts (GET /v1/apps/{appid}/batches).
    List(ListArgs),
}

// `wxpush batch send`.
#[derive(clap::Args)]
pub struct BatchSendArgs {
    pub appid: String,
    /// The message as JSON, without "to" (as for POST /v1/apps/{appid}/messages).
    #[arg(long)]
    pub message: PathBuf,
    /// A JSON array of {"openid"}/{"unionid"}, or one OPENID / openid:X / unionid:X a line.
    #[arg(
        long,
        conflicts_with = "followers",
        required_unless_present = "followers"
    )]
    pub recipients: Option<PathBuf>,
    /// Every subscribed follower of the official account instead of a list.
    #[arg(long)]
    pub followers: bool,
    /// Makes a retry of this command find the batch it created instead of a new one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Follow the batch to the end with a progress bar.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub common: BatchCommon,
}

// `wxpush batch status`.
#[derive(clap::Args)]
pub struct BatchStatusArgs {
    pub appid: String,
    pub id: String,
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub common: BatchCommon,
}

// `wxpush batch cancel`.
#[derive(clap::Args)]
pub struct BatchCancelArgs {
    pub appid: String,
    pub id: String,
    #[command(flatten)]
    pub common: BatchCommon,
}

// The `--watch` flags every batch command takes.
#[derive(clap::Args)]
pub struct BatchCommon {
    /// Seconds between progress reads with --watch.
    #[arg(long, default_value_t = 1.0)]
    pub poll: f64,
    /// Stop following after this many seconds (the batch itself goes on).
    #[arg(long, default_value_t = 86_400)]
    pub give_up_after: u64,
}
