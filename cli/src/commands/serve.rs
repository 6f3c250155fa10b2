//! `wxpush serve [--sandbox] [--apps FILE]`: the whole service locally (docs/local.md#local-server). The
//! flags are checked before anything starts; the server itself is `local_server`.

use super::load_apps;
use crate::args::ServeArgs;
use crate::callback_guard::CallbackGuardConfig;
use crate::error::CliError;
use crate::forward_secret;
use crate::local_key::{self, KeySource};
use crate::local_server::{
    DataLocation, RunningServer, ServeConfig, WorkerConfig, start_with, test_timings,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wxpush_shared::batch::BatchConfig;
use wxpush_shared::forward::WebhookTarget;
use wxpush_shared::secrets::AppsFile;
use wxpush_shared::wechat::WeChatClientConfig;

pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let (apps, demo) = load_apps(args.apps.as_ref(), args.sandbox).map_err(CliError::Usage)?;
    let callback_guard = args.callback_guard.config().map_err(CliError::Usage)?;
    let (forward, forward_note) = webhook(args.forward, args.forward_secret_file.as_deref())?;
    let data = match args.data {
        Some(p) => DataLocation::File(p),
        None if args.sandbox => DataLocation::Memory,
        None => DataLocation::File(PathBuf::from(".wxpush/wxpush.redb")),
    };
    let (key, source) =
        local_key::load_or_create(Path::new(".wxpush"), std::env::var("WXPUSH_API_KEY").ok())?;
    if !is_loopback(&args.host) {
        warn_beyond_this_machine(&args.host, args.sandbox, &callback_guard);
    }
    let mut batches = BatchConfig::from_env().map_err(|e| e.to_string())?;
    let worker = if args.test_timings {
        test_timings(&mut batches)
    } else {
        WorkerConfig::default()
    };
    let server = start_with(
        ServeConfig {
            host: args.host,
            port: args.port,
            apps: apps.clone(),
            sandbox: args.sandbox,
            data,
            api_key: key.clone(),
            wechat: WeChatClientConfig::from_env(),
            refresh_every: Duration::from_secs(args.refresh_every.max(1)),
            refresh_window: Duration::from_secs(args.refresh_window),
            sync: Default::default(),
            batches,
            forward,
            sweep_every: Duration::from_secs(args.sweep_every.max(1)),
            callback_guard,
        },
        worker,
    )
    .await?;
    print_started(&server, &key, source, args.sandbox, forward_note);
    if demo {
        print_demo_apps(&apps);
    }
    print_first_request(&server, source, &apps);
    tokio::select! {
        _ = server.wait() => {}
        _ = tokio::signal::ctrl_c() => println!("stopping"),
    }
    Ok(())
}

/// `--forward URL`, checked before anything starts: https:// (or loopback http://), and
/// the secret every delivery is signed with; with a line that says where that secret is.
fn webhook(
    url: Option<String>,
    secret_file: Option<&Path>,
) -> Result<(Option<WebhookTarget>, Option<String>), CliError> {
    let target = url
        .map(|url| {
            forward_secret::webhook_target(
                &url,
                Path::new(".wxpush"),
                secret_file,
                std::env::var("WXPUSH_FORWARD_SECRET").ok(),
            )
        })
        .transpose()
        .map_err(CliError::Usage)?;
    Ok(target.unzip())
}

/// `127.0.0.1`, `::1`, `localhost` and the rest of 127.0.0.0/8.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `--host` beyond this machine: what that opens to others.
fn warn_beyond_this_machine(host: &str, sandbox: bool, callback_guard: &CallbackGuardConfig) {
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

/// Where the server listens, the key when it was just generated, the sandbox's controls
/// and where the forwarding secret is.
fn print_started(
    server: &RunningServer,
    key: &str,
    source: KeySource,
    sandbox: bool,
    forward_note: Option<String>,
) {
    println!("wxpush listening on {}", server.url());
    if source == KeySource::Generated {
        println!(
            "API key (WXPUSH_API_KEY unset; generated and kept in .wxpush/api_key, mode 0600): {key}"
        );
    }
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
    println!("{}", console_line(&server.url(), key, source));
}

/// Where the console is. With a key generated now, the link carries it after `#`: the
/// browser never sends that part, so it reaches no request and no log; the page keeps it in
/// the tab's sessionStorage and drops it from the address bar.
fn console_line(url: &str, key: &str, source: KeySource) -> String {
    match source {
        KeySource::Generated => format!("console: {url}/console/#key={key}"),
        KeySource::Environment => {
            format!("console: {url}/console/  (it asks for the key: $WXPUSH_API_KEY)")
        }
        KeySource::File => {
            format!("console: {url}/console/  (it asks for the key: cat .wxpush/api_key)")
        }
    }
}

/// The made-up apps' ids and callback keys, for configuring a client of the sandbox.
fn print_demo_apps(apps: &AppsFile) {
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

/// A first request to try, naming where its key is rather than printing it.
fn print_first_request(server: &RunningServer, source: KeySource, apps: &AppsFile) {
    let key_hint = match source {
        KeySource::Environment => "$WXPUSH_API_KEY",
        _ => "$(cat .wxpush/api_key)",
    };
    println!(
        "try: curl -H \"Authorization: Bearer {key_hint}\" {}/v1/apps/{}/token",
        server.url(),
        apps.apps
            .first()
            .map(|a| a.appid.as_str())
            .unwrap_or("APPID")
    );
}
