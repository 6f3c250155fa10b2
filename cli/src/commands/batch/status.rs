//! `wxpush batch status APPID ID [--watch]`: a batch's counts and failures
//! (GET /v1/apps/{appid}/batches/{id}); `--watch` follows it to the end.

use super::{Watch, batch_summary};
use crate::args::BatchStatusArgs;
use crate::client::ApiClient;
use crate::commands::Operator;
use crate::commands::progress::{poll_until, progress_bar};
use crate::error::CliError;
use indicatif::ProgressBar;
use serde_json::Value;

pub async fn run(operator: &Operator, args: BatchStatusArgs) -> Result<(), CliError> {
    let api = operator.api().await?;
    let watch = args.common.watch(args.watch, operator.json);
    let answer = batch_status(&api, &args.appid, &args.id, watch.as_ref()).await?;
    operator.print(&answer, batch_summary);
    Ok(())
}

/// The batch's status; with `watch`, polled with a progress bar until it is done.
pub async fn batch_status(
    api: &ApiClient,
    appid: &str,
    id: &str,
    watch: Option<&Watch>,
) -> Result<Value, String> {
    let path = format!("/v1/apps/{appid}/batches/{id}");
    let read = || async {
        match api.get(&path).await? {
            Ok(s) => Ok::<Value, String>(s),
            Err(f) => Err(format!("could not read batch {id}: {f}")),
        }
    };
    let Some(w) = watch else {
        return read().await;
    };
    let bar = progress_bar(
        w.show_progress,
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len}  {msg}",
    )?;
    let done = poll_until(w.poll_every, w.give_up_after, async || {
        let s = read().await?;
        show(&bar, &s);
        if s["done"] == true {
            bar.finish();
            return Ok(Some(s));
        }
        Ok(None)
    })
    .await?;
    done.ok_or_else(|| {
        bar.abandon();
        format!(
            "stopped following after {:?}; the batch goes on (`wxpush batch status {appid} {id}` shows it)",
            w.give_up_after
        )
    })
}

/// The batch's counts on the bar.
fn show(bar: &ProgressBar, s: &Value) {
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    bar.set_length(n("total"));
    bar.set_position(n("sent") + n("failed") + n("unknown") + n("cancelled"));
    let mut msg = format!(
        "{}: sent {}, failed {}, unknown {}, cancelled {}",
        s["state"].as_str().unwrap_or("?"),
        n("sent"),
        n("failed"),
        n("unknown"),
        n("cancelled")
    );
    if let Some(reason) = s["pause_reason"].as_str() {
        msg.push_str(&format!(" (paused: {reason})"));
    }
    bar.set_message(msg);
}
