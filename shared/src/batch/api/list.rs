//! `GET /v1/apps/{appid}/batches`: the app's batches, newest first, a page at a time
//! ([`crate::listing`]), each with its state and counts as `GET .../batches/{id}` gives them
//! (without the failures).

use crate::batch::Batches;
use crate::error::ApiError;
use crate::listing::{self, ListQuery};
use crate::store::ItemRead;
use futures::StreamExt;
use serde_json::{Value, json};

/// Batches of one page read from the store at once.
const READS_IN_FLIGHT: usize = 8;

impl Batches {
    /// One page of the app's batches and the cursor of the next (`null` on the last).
    pub async fn list(&self, appid: &str, query: &ListQuery) -> Result<Value, ApiError> {
        self.app(appid).await?;
        let page = listing::page(self.store.as_ref(), listing::BATCHES, appid, query).await?;
        let ids: Vec<String> = page
            .rows
            .iter()
            .filter_map(|row| row.string("id"))
            .collect();
        let summaries: Vec<Option<Value>> = futures::stream::iter(ids)
            .map(|id| async move { self.summary(appid, &id).await })
            .buffered(READS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let batches: Vec<Value> = summaries.into_iter().flatten().collect();
        Ok(json!({"batches": batches, "next_cursor": page.next_cursor}))
    }
}
