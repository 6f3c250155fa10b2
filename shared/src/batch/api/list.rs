//! `GET /v1/apps/{appid}/batches`: the app's batches, newest first, a page at a time
//! ([`crate::listing`]), each with its state and counts as `GET .../batches/{id}` gives them
//! (without the failures).

use crate::batch::Batches;
use crate::error::ApiError;
use crate::listing::{self, ListQuery};
use serde_json::{Value, json};

impl Batches {
    /// One page of the app's batches and the cursor of the next (`null` on the last).
    pub async fn list(&self, appid: &str, query: &ListQuery) -> Result<Value, ApiError> {
        self.app(appid).await?;
        let page = listing::page(self.store.as_ref(), listing::BATCHES, appid, query).await?;
        let batches = listing::read_each(page.strings("id"), |id| async move {
            self.summary(appid, &id).await
        })
        .await?;
        Ok(json!({"batches": batches, "next_cursor": page.next_cursor}))
    }
}
