//! The sweep phase of a follower sync: the stored accounts the pages did not list this run,
//! asked about again (did they leave?).

use super::lookup::Counts;
use super::run::Stop;
use super::{FollowerSync, SyncState};
use crate::clock::now_unix;
use crate::store::{ItemRead, QueryPage};
use std::sync::atomic::{AtomicI64, Ordering};

impl FollowerSync {
    /// One step of the sweep: stored accounts the pages did not list this run, asked about
    /// again; `Ok(true)` when every stored account was checked.
    pub(super) async fn sweep_chunk(&self, appid: &str, st: &mut SyncState) -> Result<bool, Stop> {
        let errors = AtomicI64::new(0);
        let after = (!st.sweep_after.is_empty()).then_some(st.sweep_after.as_str());
        let QueryPage { rows, next_after } = self
            .store
            .query_page(&format!("acct#{appid}"), after, self.config.sweep_page)
            .await?;
        let unseen: Vec<String> = rows
            .iter()
            .filter(|(_, a)| a.flag("subscribed") && a.text("sync_run") != Some(st.run_id.as_str()))
            .filter_map(|(_, a)| a.string("openid"))
            .collect();
        let mut counts = Counts::default();
        if !unseen.is_empty() {
            counts = match self
                .lookup_and_store(appid, st, &unseen, now_unix(), &errors)
                .await
            {
                Ok(c) => c,
                Err(stop) => {
                    st.errors += errors.swap(0, Ordering::Relaxed);
                    return Err(stop);
                }
            };
        }
        // Those found still following were missed by the pages (they shifted): count them in.
        counts.followers = counts.mapped + counts.without_unionid;
        let done = match next_after {
            Some(n) => {
                st.sweep_after = n;
                false
            }
            None => true,
        };
        self.checkpoint(appid, st, &counts, &errors).await?;
        Ok(done)
    }
}
