//! Following a long job (a batch with `--watch`, a follower sync) by reading its progress
//! again and again, with a progress bar on the terminal (hidden with `--json`).

use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// A progress bar drawn with `template`, or a hidden one when `show` is false.
pub fn progress_bar(show: bool, template: &str) -> Result<ProgressBar, String> {
    let bar = if show {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template(template).map_err(|e| e.to_string())?);
    Ok(bar)
}

/// Calls `poll` every `every` (10 ms at the least) until it answers `Some`, or an error;
/// `None` once `give_up_after` has passed (the job itself goes on).
pub async fn poll_until<T>(
    every: Duration,
    give_up_after: Duration,
    mut poll: impl AsyncFnMut() -> Result<Option<T>, String>,
) -> Result<Option<T>, String> {
    let until = Instant::now() + give_up_after;
    let every = every.max(Duration::from_millis(10));
    let max_polls = (give_up_after.as_millis() / every.as_millis()).max(1) + 1;
    for _ in 0..max_polls {
        if let Some(done) = poll().await? {
            return Ok(Some(done));
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(every).await;
    }
    Ok(None)
}
