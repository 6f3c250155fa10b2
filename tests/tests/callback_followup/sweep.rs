//! The follow-up sweep: its grace, its bounded runs, expired rows, late look-ups.

use crate::world::*;
use wxpush_shared::callback::followup::{
    FOLLOW_UP_SWEEP_AFTER_SECS, FOLLOW_UP_TTL_SECS, follow_up_op,
};
use wxpush_shared::clock::now_unix;
use wxpush_shared::store::Recorded;

/// (c) The sweep leaves rows younger than its grace to their own jobs, queues each old row
/// once per run, reads a bounded number of rows a run (going on from its cursor), passes
/// over expired rows, and a look-up deletes its row — also a late one for a follower
/// already complete.
#[tokio::test]
async fn the_sweep_leaves_young_rows_and_queues_each_old_row_once_per_run() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let t = now_unix();
        let old: Vec<String> = (1..=5).map(|i| format!("o-old{i}")).collect();
        w.jobs.fail_next(u32::MAX);
        for openid in &old {
            assert_eq!(
                w.push_at(&subscribe(openid, t - 100), t - 100)
                    .await
                    .unwrap(),
                Recorded::New
            );
        }
        w.push_at(&subscribe("o-young", t - 10), t - 10)
            .await
            .unwrap();
        w.jobs.fail_next(0);
        assert!(w.jobs.is_empty());
        assert_eq!(w.follow_ups().await.len(), 6);
        let sweeper = w.completion();

        // Before the grace has passed nothing is queued.
        let grace_ends = t - 100 + FOLLOW_UP_SWEEP_AFTER_SECS;
        assert_eq!(sweeper.sweep(grace_ends - 1, far()).await.unwrap(), 0);
        assert!(w.jobs.is_empty());
        // Each old row once per run, the young one not; again in the next run (their
        // look-ups have not run yet).
        for _ in 0..2 {
            assert_eq!(sweeper.sweep(t, far()).await.unwrap(), 5, "{backend:?}");
            assert_eq!(w.queued_look_ups(), old, "{backend:?}");
        }

        // Two rows a run: three runs reach every row once, going on from the cursor.
        let bounded = w.completion().with_sweep_rows(2);
        let mut reached = vec![];
        for run in 0..3 {
            let queued = bounded.sweep(t, far()).await.unwrap();
            let openids = w.queued_look_ups();
            assert_eq!(queued, openids.len());
            assert!(openids.len() <= 2, "{backend:?} run {run}: {openids:?}");
            reached.extend(openids);
        }
        assert_eq!(reached, old, "{backend:?}: each old row once, in order");

        // An expired row (DynamoDB removes it in its own time) is passed over.
        let old_expired = t - 100 + FOLLOW_UP_TTL_SECS;
        let full = w.completion();
        assert_eq!(full.sweep(old_expired, far()).await.unwrap(), 1);
        assert_eq!(w.queued_look_ups(), ["o-young"]);
        // The young row comes due in its turn.
        assert_eq!(
            full.sweep(t - 10 + FOLLOW_UP_SWEEP_AFTER_SECS, far())
                .await
                .unwrap(),
            6
        );

        // The look-ups run: every row is gone, and the sweep has nothing left.
        for openid in old.iter().chain([&"o-young".to_string()]) {
            w.wechat_knows(openid, &format!("U-{openid}")).await;
        }
        let runner = w.runner(0);
        assert_eq!(w.run_look_ups(&runner).await.len(), 6);
        for openid in &old {
            w.assert_completed(openid, &format!("U-{openid}")).await;
        }
        assert!(w.follow_ups().await.is_empty(), "{backend:?}");
        assert_eq!(full.sweep(t + 3_600, far()).await.unwrap(), 0);

        // A row left for a follower already complete: its look-up only deletes it.
        let calls = w.user_info_calls();
        w.store
            .record(&[follow_up_op(&w.appid, "o-old1", t)], t)
            .await
            .unwrap();
        assert_eq!(full.sweep(t + 3_600, far()).await.unwrap(), 1);
        assert_eq!(w.run_look_ups(&runner).await, ["o-old1"]);
        assert!(w.follow_ups().await.is_empty(), "{backend:?}");
        assert_eq!(w.user_info_calls(), calls, "nothing to look up");
    }
}
