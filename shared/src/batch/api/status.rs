//! `GET /v1/apps/{appid}/batches/{id}`: a batch's counts, state and one page of failures.

use super::is_cursor;
use crate::batch::items::{BatchState, Meta, count_progress, failure_json};
use crate::batch::{Batches, FAILURES_PER_PAGE, invalid};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::QueryPage;
use serde_json::{Value, json};

impl Batches {
    /// `GET /v1/apps/{appid}/batches/{id}`: counts, state and one page of failures.
    pub async fn status(
        &self,
        appid: &str,
        id: &str,
        cursor: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.app(appid).await?;
        if let Some(c) = cursor
            && !is_cursor(c)
        {
            return Err(invalid("cursor", "not a cursor this API gave out"));
        }
        // Cursors are sort keys with `-` for `#`, so they need no escaping in a URL.
        let cursor = cursor.map(|c| c.replace('-', "#"));
        let meta = self.shown_meta(appid, id).await?;
        let progress = self.store.query(&format!("bprog#{appid}#{id}")).await?;
        let counts = count_progress(&progress);
        let page = self
            .store
            .query_page(
                &format!("bfail#{appid}#{id}"),
                cursor.as_deref(),
                FAILURES_PER_PAGE + 1,
            )
            .await?
            .at_most(FAILURES_PER_PAGE);
        Ok(status_body(appid, id, &meta, counts, page))
    }
}

impl Batches {
    /// A batch as the list shows it: [`Batches::status`] without its failures; `None` when
    /// it is gone (its TTL passed) or still being written.
    pub(super) async fn summary(&self, appid: &str, id: &str) -> Result<Option<Value>, ApiError> {
        let Some(meta) = self
            .meta(appid, id)
            .await?
            .filter(|m| m.state != BatchState::Writing)
        else {
            return Ok(None);
        };
        let progress = self.store.query(&format!("bprog#{appid}#{id}")).await?;
        let mut body = status_body(
            appid,
            id,
            &meta,
            count_progress(&progress),
            QueryPage::default(),
        );
        if let Some(o) = body.as_object_mut() {
            o.remove("failures");
            o.remove("next_cursor");
        }
        Ok(Some(body))
    }
}

/// The status of batch `id`: its `meta`, the `counts` of its progress (queued, sent,
/// failed, unknown, cancelled, same person, no grant, capped) and a `page` of its failures.
fn status_body(appid: &str, id: &str, meta: &Meta, counts: [i64; 8], page: QueryPage) -> Value {
    let [
        queued,
        sent,
        failed,
        unknown,
        cancelled,
        same_person,
        no_grant,
        capped,
    ] = counts;
    let failures: Vec<Value> = page.rows.iter().map(|(_, a)| failure_json(a)).collect();
    let all_written = meta.fanout_done || meta.state != BatchState::Running;
    let finished = (all_written && queued == 0) || meta.state == BatchState::Failed;
    let state = match meta.state {
        BatchState::Running | BatchState::Done if finished => BatchState::Done,
        BatchState::Running if meta.paused_until > now_unix() => BatchState::Paused,
        other => other,
    };
    let mut body = json!({
        "id": id,
        "appid": appid,
        "state": state.as_str(),
        "audience": meta.audience.as_str(),
        "total": meta.total,
        "queued": queued,
        "sent": sent,
        "failed": failed,
        "unknown": unknown,
        "cancelled": cancelled,
        "no_grant": no_grant,
        "capped": capped,
        "done": finished,
        "duplicates": meta.duplicates + same_person,
        "requested_by": meta.requested_by,
        "created_at": meta.created_at,
        "failures": failures,
        "next_cursor": page.next_after.map(|c| c.replace('#', "-")),
    });
    if state == BatchState::Paused {
        body["paused_until"] = json!(meta.paused_until);
        body["pause_reason"] = json!(meta.pause_reason);
    }
    body
}
