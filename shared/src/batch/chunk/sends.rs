//! A chunk run's sends: its queued recipients sent `concurrency` at a time until all are
//! done or the run must stop, the outcomes flushed as they come, and the batch looked at
//! for a cancel or a pause.

use super::run::ChunkRun;
use super::stop::Stop;
use crate::batch::Batches;
use crate::batch::items::QUEUED;
use crate::batch::recipient::{ChunkCtx, Done, send_one};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::{JoinError, JoinSet};

/// One send task's end: the recipient's index and its outcome, or why the run must stop.
type Sent = (usize, Result<Done, Stop>);

/// What a run's sends came to.
pub(super) struct Sends {
    /// Why the run stopped early (`None`: every queued recipient was tried).
    pub stop: Option<Stop>,
    /// Recipients this run settled.
    pub sent: usize,
    /// The last passing failure (its recipient stays queued for the chunk's next run).
    pub last_failure: Option<String>,
    failing_in_a_row: usize,
    /// A recipient that hit a passing failure stays queued for the chunk's next run; this
    /// many in a row means WeChat or the store is down, and the chunk stops.
    give_up_after: usize,
}

impl Sends {
    fn new(concurrency: usize) -> Sends {
        Sends {
            stop: None,
            sent: 0,
            last_failure: None,
            failing_in_a_row: 0,
            give_up_after: 2 * concurrency.max(1),
        }
    }

    /// Takes in one finished send task. Answers the pause to record when this is the first
    /// send of the run that hit WeChat's quota.
    fn take(
        &mut self,
        joined: Result<Sent, JoinError>,
        run: &mut ChunkRun,
        recipients: &[String],
    ) -> Option<(i64, String)> {
        match joined {
            Ok((i, Ok(done))) => {
                run.record(i, &recipients[i], done);
                self.sent += 1;
                self.failing_in_a_row = 0;
            }
            Ok((_, Err(Stop::Retry(why)))) => {
                self.failing_in_a_row += 1;
                if self.failing_in_a_row >= self.give_up_after && self.stop.is_none() {
                    self.stop = Some(Stop::Retry(why.clone()));
                }
                self.last_failure = Some(why);
            }
            Ok((_, Err(why))) => {
                let pause = match &why {
                    Stop::Pause { until, reason }
                        if !matches!(self.stop, Some(Stop::Pause { .. })) =>
                    {
                        Some((*until, reason.clone()))
                    }
                    _ => None,
                };
                self.stop = Some(Stop::after(self.stop.take(), why));
                return pause;
            }
            Err(e) => self.stop = Some(Stop::Retry(format!("a send task failed: {e}"))),
        }
        None
    }
}

impl Batches {
    /// Sends the run's queued recipients until all are done or the run must stop. Never
    /// returns with sends in flight: leaving early would drop them (a dropped `JoinSet`
    /// aborts its tasks), some of them after WeChat accepted.
    pub(super) async fn send_queued(
        &self,
        ctx: &Arc<ChunkCtx>,
        run: &mut ChunkRun,
        recipients: &[String],
        deadline: Instant,
    ) -> Sends {
        let (appid, id) = (ctx.app.appid.as_str(), ctx.batch_id.as_str());
        let mut pending: VecDeque<usize> = (0..recipients.len())
            .filter(|&i| run.local[i] == QUEUED)
            .collect();
        let mut tasks = JoinSet::new();
        let mut sends = Sends::new(self.config.concurrency);
        let (mut last_flush, mut last_check) = (Instant::now(), Instant::now());
        // Bounded by the chunk: every turn ends one send, and none starts twice.
        loop {
            while sends.stop.is_none() && tasks.len() < self.config.concurrency.max(1) {
                let Some(i) = pending.pop_front() else { break };
                // Another run of this chunk may have settled it meanwhile (merged at a flush).
                if run.local[i] != QUEUED {
                    continue;
                }
                if Instant::now() + self.config.reserve > deadline {
                    pending.push_front(i);
                    sends.stop = Some(Stop::Deadline);
                    break;
                }
                let (ctx, key) = (ctx.clone(), recipients[i].clone());
                tasks.spawn(async move { (i, send_one(&ctx, &key).await) });
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            if let Some((until, reason)) = sends.take(joined, run, recipients) {
                self.pause(appid, id, until, &reason).await;
            }
            // Nothing in here returns early: leaving the loop would drop the sends in flight.
            if run.unflushed >= self.config.flush_every
                || last_flush.elapsed() >= self.config.flush_interval
            {
                if let Err(e) = self.flush(run).await {
                    sends.stop = sends.stop.or(Some(Stop::Retry(e.to_string())));
                }
                last_flush = Instant::now();
            }
            if sends.stop.is_none() && last_check.elapsed() >= self.config.check_interval {
                last_check = Instant::now();
                sends.stop = self.pause_or_cancel(appid, id).await;
            }
        }
        sends
    }
}
