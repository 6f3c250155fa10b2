//! The batch-worker's jobs run in the test: a job runner, and running what a queue holds.

use crate::faults;
use std::sync::Arc;
use std::time::Duration;
use wxpush_shared::token::TokenManager;

/// Runs every job `queue` holds (and those they queue) with `runner`, as the batch-worker
/// would; each must succeed. Returns how many ran. Bounded to 1 000 jobs.
pub async fn run_jobs(
    queue: &faults::RecordingQueue,
    runner: &wxpush_shared::jobs::JobRunner,
) -> usize {
    let mut ran = 0;
    for _ in 0..1000 {
        let jobs = queue.take();
        if jobs.is_empty() {
            break;
        }
        for job in jobs {
            runner
                .run(&job, std::time::Instant::now() + Duration::from_secs(60))
                .await
                .unwrap_or_else(|e| panic!("job {job:?} failed: {e}"));
            ran += 1;
        }
    }
    ran
}

/// A job runner over `tokens` and `store` (the follower sync with a queue nobody reads).
pub fn job_runner(
    tokens: Arc<TokenManager>,
    store: Arc<dyn wxpush_shared::store::StateStore>,
    queue: Arc<dyn wxpush_shared::queue::JobQueue>,
) -> wxpush_shared::jobs::JobRunner {
    use wxpush_shared::callback::followup::FollowerCompletion;
    use wxpush_shared::followers::{FollowerSync, SyncConfig};
    wxpush_shared::jobs::JobRunner::new(
        Arc::new(FollowerSync::new(
            tokens.clone(),
            store.clone(),
            queue.clone(),
            SyncConfig::default(),
        )),
        Arc::new(FollowerCompletion::new(tokens, store).with_queue(queue)),
    )
}
