//! `wxpush sync-followers APPID`: starts (or joins, or resumes) an official account's
//! follower sync (user/get + batchget) through a running wxpush, and follows its progress.

use super::Operator;
use super::progress::{poll_until, progress_bar};
use crate::args::SyncFollowersArgs;
use crate::client::ApiClient;
use crate::error::CliError;
use indicatif::ProgressBar;
use serde_json::{Value, json};
use std::time::Duration;

pub async fn run(operator: &Operator, args: SyncFollowersArgs) -> Result<(), CliError> {
    let api = operator.api().await?;
    let args = SyncFollowers {
        appid: args.appid,
        restart: args.restart,
        poll_every: Duration::from_secs_f64(args.poll.clamp(0.05, 3600.0)),
        give_up_after: Duration::from_secs(args.give_up_after),
        show_progress: !operator.json,
    };
    let done = sync_followers(&api, &args).await?;
    operator.print(&done, |d| {
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

/// `wxpush sync-followers`.
pub struct SyncFollowers {
    pub appid: String,
    /// Start over instead of resuming a failed run.
    pub restart: bool,
    pub poll_every: Duration,
    /// Give up following (the sync goes on) after this long.
    pub give_up_after: Duration,
    pub show_progress: bool,
}

/// Starts (or joins) the app's follower sync and follows it to the end with a progress bar.
/// `Ok` with the last progress when it is done; `Err` when it failed or could not start.
pub async fn sync_followers(api: &ApiClient, args: &SyncFollowers) -> Result<Value, String> {
    let path = format!("/v1/apps/{}/followers/sync", args.appid);
    let bar = progress_bar(
        args.show_progress,
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} followers  {msg}",
    )?;
    start(api, &path, args.restart, &bar).await?;
    let done = poll_until(args.poll_every, args.give_up_after, async || {
        let progress = match api.get(&path).await? {
            Ok(p) => p,
            Err(f) => return Err(format!("could not read the sync's progress: {f}")),
        };
        show(&bar, &progress);
        match progress["state"].as_str() {
            Some("done") => {
                bar.finish();
                Ok(Some(progress))
            }
            Some("failed") => {
                bar.abandon();
                Err(format!(
                    "the follower sync failed: {}; run the command again to resume it",
                    progress["last_error"].as_str().unwrap_or("unknown error")
                ))
            }
            _ => Ok(None),
        }
    })
    .await?;
    done.ok_or_else(|| {
        bar.abandon();
        format!(
            "stopped following after {:?}; the sync goes on (GET {path} shows it)",
            args.give_up_after
        )
    })
}

/// Starts the sync, or resumes a failed one, or joins the one already running.
async fn start(
    api: &ApiClient,
    path: &str,
    restart: bool,
    bar: &ProgressBar,
) -> Result<(), String> {
    match api.post(path, &json!({"restart": restart})).await? {
        Ok(started) => {
            let how = if started["resumed"] == true {
                "resumed"
            } else {
                "started"
            };
            bar.println(format!(
                "follower sync {how}: run {}",
                started["run_id"].as_str().unwrap_or("?")
            ));
        }
        Err(f) if f.code == "sync_in_progress" => {
            bar.println("a follower sync is already running; following it");
        }
        Err(f) => return Err(format!("could not start the follower sync: {f}")),
    }
    Ok(())
}

/// The sync's progress on the bar.
fn show(bar: &ProgressBar, progress: &Value) {
    let n = |k: &str| progress[k].as_u64().unwrap_or(0);
    bar.set_length(n("total").max(n("followers")));
    bar.set_position(n("followers"));
    bar.set_message(format!(
        "{}: mapped {}, without unionid {}, unsubscribed {}, errors {}",
        progress["phase"].as_str().unwrap_or("?"),
        n("mapped"),
        n("without_unionid"),
        n("unsubscribed"),
        n("errors")
    ));
}
