//! Newest-first lists of an app's items (messages, batches, events), paged by cursor.
//!
//! Each listed item has one small index row, written in the same transaction as the item:
//! partition `{family}#{appid}#{shard}` (one of [`SHARDS`], chosen by a hash of the item's
//! id, so that an app sending thousands of messages a second does not write one hot
//! partition), sort key `{newest first}.{id}` where the first part is `0xffffffffffff` minus
//! the item's time in milliseconds, as 12 hex digits. A page reads the next `limit` rows of
//! every shard after the cursor and merges them; the cursor is the last row's sort key. A
//! page costs [`SHARDS`] queries of at most `limit` small rows, whatever the number of items.
//! docs/api.md#lists describes the routes.

use crate::error::ApiError;
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, StateStore, StoreError, attrs};
use futures::StreamExt;
use futures::future::try_join_all;
use std::future::Future;

/// Index partitions per app and family.
pub const SHARDS: u32 = 16;
/// The most items one page may ask for (`?limit=`).
pub const MAX_LIMIT: usize = 100;
/// Items per page when `?limit=` is not given.
pub const DEFAULT_LIMIT: usize = 20;
/// The latest time a sort key can hold: milliseconds in 48 bits (the year 10889).
const NEWEST_MS: i64 = 0xffff_ffff_ffff;
/// The longest id part of a sort key (and so of a cursor).
const MAX_ID_LEN: usize = 64;

/// Which list an index row belongs to: its partition prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family(pub &'static str);

pub const MESSAGES: Family = Family("msgs");
pub const BATCHES: Family = Family("bats");
pub const EVENTS: Family = Family("evts");

/// A page's query: where to start and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// The sort key of the last row of the page before (exclusive).
    pub cursor: Option<String>,
    pub limit: usize,
}

impl ListQuery {
    /// `?cursor=` and `?limit=` as the caller sent them: a cursor this API gave out (or
    /// none), a limit of 1 to [`MAX_LIMIT`] (or none: [`DEFAULT_LIMIT`]). Anything else is
    /// `422 validation_failed` naming the parameter.
    pub fn parse(cursor: Option<&str>, limit: Option<&str>) -> Result<ListQuery, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    invalid("limit", format!("must be a number from 1 to {MAX_LIMIT}"))
                })?,
        };
        let cursor = match cursor {
            None => None,
            Some(c) if is_cursor(c) => Some(c.to_string()),
            Some(_) => {
                return Err(invalid(
                    "cursor",
                    "not a cursor this API gave out (use next_cursor of the page before)",
                ));
            }
        };
        Ok(ListQuery { cursor, limit })
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

/// A sort key as [`sort_key`] makes them: 12 hex digits, `.`, 1 to 64 of `[A-Za-z0-9_]`.
fn is_cursor(c: &str) -> bool {
    let Some((time, id)) = c.split_once('.') else {
        return false;
    };
    time.len() == 12
        && time
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && (1..=MAX_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The sort key of an item made at `at_ms` (unix milliseconds) with `id` (`[A-Za-z0-9_]`,
/// at most 64 characters): later items sort first.
pub fn sort_key(at_ms: i64, id: &str) -> String {
    format!("{:012x}.{id}", NEWEST_MS - at_ms.clamp(0, NEWEST_MS))
}

/// The milliseconds of `now` (unix seconds): the clock's own when `now` is the current
/// second, else the second's start (a caller's given time, as tests give it).
pub fn at_ms(now: i64) -> i64 {
    let ms = crate::clock::now_unix_millis();
    if ms.div_euclid(1000) == now {
        ms
    } else {
        now.saturating_mul(1000)
    }
}

/// The shard of `id`: FNV-1a of its bytes, modulo [`SHARDS`].
fn shard(id: &str) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % SHARDS
}

fn partition(family: Family, appid: &str, shard: u32) -> String {
    format!("{}#{appid}#{shard:02}", family.0)
}

/// The index row of an item of `family`: `id` names it in the list (and its shard); `attrs`
/// are what the list reads back from the row (the item's own key parts), and `ttl` is the
/// item's (the row goes when the item goes).
pub fn index_op(family: Family, appid: &str, at_ms: i64, id: &str, mut row: Attrs, ttl: i64) -> Op {
    row.insert("ttl".into(), Attr::N(ttl));
    Op::Set {
        key: ItemKey::new(partition(family, appid, shard(id)), sort_key(at_ms, id)),
        attrs: row,
    }
}

/// The index row of an item whose own id is what the list returns.
pub fn index_op_for_id(family: Family, appid: &str, at_ms: i64, id: &str, ttl: i64) -> Op {
    index_op(family, appid, at_ms, id, attrs([("id", id.into())]), ttl)
}

/// One page of index rows, newest first.
#[derive(Clone, Debug, Default)]
pub struct IndexPage {
    pub rows: Vec<Attrs>,
    /// The cursor of the next page, when there may be one.
    pub next_cursor: Option<String>,
}

impl IndexPage {
    /// The string attribute `name` of each row, in order (what names each row's item).
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.rows.iter().filter_map(|r| r.string(name)).collect()
    }
}

/// Items of a page read at once, at most.
const READS_IN_FLIGHT: usize = 16;

/// The item of each key, read by `read` ([`READS_IN_FLIGHT`] at once), in the keys' order;
/// an item `read` finds gone (`None`: its TTL passed before its row's) is left out.
pub async fn read_each<T, E, F, Fut>(keys: Vec<String>, read: F) -> Result<Vec<T>, E>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let found: Vec<Option<T>> = futures::stream::iter(keys)
        .map(read)
        .buffered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(found.into_iter().flatten().collect())
}

/// The index rows of `appid`'s `family` after `query.cursor`, newest first.
pub async fn page(
    store: &dyn StateStore,
    family: Family,
    appid: &str,
    query: &ListQuery,
) -> Result<IndexPage, StoreError> {
    // Each shard's next rows, one more than the page asked for, as a page that says whether
    // rows follow it ([`QueryPage::at_most`]).
    let reads = (0..SHARDS).map(|s| {
        let pk = partition(family, appid, s);
        async move {
            let page = store
                .query_page(&pk, query.cursor.as_deref(), query.limit + 1)
                .await?;
            Ok::<_, StoreError>(page.at_most(query.limit))
        }
    });
    let pages = try_join_all(reads).await?;
    // A shard with rows after its page may hold rows sorting after its last one: the merged
    // page must not pass that row, or they would be skipped.
    let short_stop = pages
        .iter()
        .filter(|p| p.next_after.is_some())
        .filter_map(|p| p.rows.last().map(|(sk, _)| sk.clone()))
        .min();
    let mut rows: Vec<(String, Attrs)> = pages.into_iter().flat_map(|p| p.rows).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(stop) = &short_stop {
        rows.retain(|(sk, _)| sk <= stop);
    }
    let more = short_stop.is_some() || rows.len() > query.limit;
    rows.truncate(query.limit);
    let next_cursor = more
        .then(|| rows.last().map(|(sk, _)| sk.clone()))
        .flatten();
    Ok(IndexPage {
        rows: rows.into_iter().map(|(_, a)| a).collect(),
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_items_sort_first_and_their_keys_are_cursors() {
        let older = sort_key(1_700_000_000_000, "msg_a");
        let newer = sort_key(1_700_000_000_001, "msg_a");
        assert!(newer < older);
        assert!(is_cursor(&older), "{older}");
        assert_eq!(older.len(), 12 + 1 + 5);
    }

    #[test]
    fn the_query_refuses_what_it_did_not_give_out() {
        let ok = ListQuery::parse(Some("ffffffffffff.msg_1"), Some("100")).unwrap();
        assert_eq!(ok.limit, 100);
        assert_eq!(ListQuery::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        for (cursor, limit, field) in [
            (None, Some("0"), "limit"),
            (None, Some("101"), "limit"),
            (None, Some("ten"), "limit"),
            (None, Some("-1"), "limit"),
            (Some("ffffffffffff"), None, "cursor"),
            (Some("FFFFFFFFFFFF.msg_1"), None, "cursor"),
            (Some("fffffffffff.msg_1"), None, "cursor"),
            (Some("ffffffffffff."), None, "cursor"),
            (Some("ffffffffffff.msg#1"), None, "cursor"),
            (Some(""), None, "cursor"),
        ] {
            match ListQuery::parse(cursor, limit) {
                Err(ApiError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{cursor:?} {limit:?}: {other:?}"),
            }
        }
        let long = format!("ffffffffffff.{}", "a".repeat(65));
        assert!(ListQuery::parse(Some(&long), None).is_err());
    }

    /// Every page of `limit` from an embedded store holding the list rows of `ids` (made one
    /// a millisecond, in order): the ids listed, page by page.
    fn pages_of(ids: &[String], limit: usize) -> Vec<Vec<String>> {
        use crate::store::EmbeddedStateStore;
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let store = EmbeddedStateStore::new(std::sync::Arc::new(db));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let ops: Vec<Op> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| index_op_for_id(MESSAGES, "wx1", 1_000 + i as i64, id, 9))
                .collect();
            store.record(&ops, 0).await.unwrap();
            let mut pages = Vec::new();
            let mut cursor = None;
            loop {
                let q = ListQuery { cursor, limit };
                let page = page(&store, MESSAGES, "wx1", &q).await.unwrap();
                pages.push(page.strings("id"));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return pages,
                }
                assert!(pages.len() <= ids.len() + 1, "the pages never end");
            }
        })
    }

    #[test]
    fn pages_hold_every_item_once_newest_first_however_they_spread() {
        let all: Vec<String> = (0..40).map(|i| format!("msg_{i:03}")).collect();
        // All in one shard: a page is one shard's rows only, and there are more after it.
        let one_shard: Vec<String> = all
            .iter()
            .filter(|id| shard(id) == shard(&all[0]))
            .cloned()
            .collect();
        assert!(one_shard.len() >= 2, "{one_shard:?}");
        for ids in [&all, &one_shard] {
            let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
            for limit in [1, 2, 3, 7, 100] {
                let pages = pages_of(ids, limit);
                let listed: Vec<String> = pages.iter().flatten().cloned().collect();
                assert_eq!(listed, newest_first, "limit {limit}");
                assert!(pages.iter().all(|p| p.len() <= limit));
                assert!(
                    pages.iter().all(|p| !p.is_empty()),
                    "an empty page, limit {limit}"
                );
            }
        }
    }

    #[test]
    fn ids_spread_over_every_shard() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1000 {
            seen.insert(shard(&format!("msg_{i:032x}")));
        }
        assert_eq!(seen.len(), SHARDS as usize);
    }
}
