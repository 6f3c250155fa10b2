//! `wxpush sync-followers APPID`: starts (or joins, or resumes) an official account's
//! follower sync (user/get + batchget) through a running wxpush, and follows its progress.

use super::Operator;
use crate::args::SyncFollowersArgs;
use crate::client::ApiClient;
use crate::error::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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
    let bar = if args.show_progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} followers  {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    match api.post(&path, &json!({"restart": args.restart})).await? {
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
    let until = Instant::now() + args.give_up_after;
    let poll = args.poll_every.max(Duration::from_millis(10));
    let max_polls = (args.give_up_after.as_millis() / poll.as_millis()).max(1) + 1;
    for _ in 0..max_polls {
        let progress = match api.get(&path).await? {
            Ok(p) => p,
            Err(f) => return Err(format!("could not read the sync's progress: {f}")),
        };
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
        match progress["state"].as_str() {
            Some("done") => {
                bar.finish();
                return Ok(progress);
            }
            Some("failed") => {
                bar.abandon();
                return Err(format!(
                    "the follower sync failed: {}; run the command again to resume it",
                    progress["last_error"].as_str().unwrap_or("unknown error")
                ));
            }
            _ => {}
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    bar.abandon();
    Err(format!(
        "stopped following after {:?}; the sync goes on (GET {path} shows it)",
        args.give_up_after
    ))
}
