//! The pages phase of a follower sync: `user/get`, a page of up to
//! [`FOLLOWERS_PER_PAGE`] openids at a time, each follower looked up and stored.

use super::lookup::Counts;
use super::run::Stop;
use super::{FOLLOWERS_PER_PAGE, FollowerSync, Phase, SyncState};
use crate::clock::now_unix;
use std::sync::atomic::{AtomicI64, Ordering};

impl FollowerSync {
    /// One `user/get` page: its followers looked up and stored, in checkpointed steps.
    /// `Ok(true)` once the last page is done (the sweep comes next, so not finished yet).
    pub(super) async fn pages_chunk(&self, appid: &str, st: &mut SyncState) -> Result<bool, Stop> {
        let errors = AtomicI64::new(0);
        let cursor = st.cursor.clone();
        let page = self
            .call(appid, "user/get", &errors, |token| {
                let (wechat, cursor) = (self.tokens.wechat().clone(), cursor.clone());
                async move {
                    let next = (!cursor.is_empty()).then_some(cursor.as_str());
                    wechat.get_followers(&token, next).await
                }
            })
            .await;
        let page = match page {
            Ok(p) => p,
            Err(stop) => {
                st.errors += errors.swap(0, Ordering::Relaxed);
                return Err(stop);
            }
        };
        let openids = page.openids();
        st.total = page.total as i64;
        let start = resume_position(openids, st.page_done, &st.page_last);
        let observed_at = now_unix();
        for group in openids[start..].chunks(self.config.checkpoint_every.max(1)) {
            let counts = match self
                .lookup_and_store(appid, st, group, observed_at, &errors)
                .await
            {
                Ok(c) => c,
                Err(stop) => {
                    st.errors += errors.swap(0, Ordering::Relaxed);
                    return Err(stop);
                }
            };
            st.page_done += group.len() as i64;
            st.page_last = group.last().cloned().unwrap_or_default();
            self.checkpoint(appid, st, &counts, &errors).await?;
        }
        let next = page.next_openid.clone().unwrap_or_default();
        let last = openids.is_empty()
            || next.is_empty()
            || (openids.len() < FOLLOWERS_PER_PAGE && st.followers >= st.total);
        st.pages += 1;
        st.page_done = 0;
        st.page_last.clear();
        if last {
            st.phase = Phase::Sweep;
            st.sweep_after.clear();
        } else {
            st.cursor = next;
        }
        self.checkpoint(appid, st, &Counts::default(), &errors)
            .await?;
        Ok(false)
    }
}

/// Where to go on in a page fetched again: after `last` when it is still there (the page may
/// have shifted as followers left), else at `done`.
fn resume_position(openids: &[String], done: i64, last: &str) -> usize {
    let done = (done.max(0) as usize).min(openids.len());
    if last.is_empty() || done == 0 {
        return done;
    }
    if openids.get(done - 1).is_some_and(|o| o == last) {
        return done;
    }
    match openids.iter().position(|o| o == last) {
        Some(i) => i + 1,
        None => done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("o{i}")).collect()
    }

    #[test]
    fn resume_finds_its_place_in_a_shifted_page() {
        let page = ids(10);
        assert_eq!(resume_position(&page, 0, ""), 0);
        assert_eq!(resume_position(&page, 4, "o3"), 4);
        // Two followers before the place left: the page moved left by two.
        let shifted: Vec<String> = page[2..].to_vec();
        assert_eq!(resume_position(&shifted, 4, "o3"), 2);
        // The last one done left too: fall back to the count.
        let without: Vec<String> = page.iter().filter(|o| *o != "o3").cloned().collect();
        assert_eq!(resume_position(&without, 4, "o3"), 4);
        assert_eq!(resume_position(&page, 40, "zz"), 10);
    }
}
