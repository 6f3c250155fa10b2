//! WeChat's limits changed for tests: a path's daily quota and `user/get`'s page size.

use super::{ControlError, ControlResult, parse_control, wechat_path};
use crate::sandbox::Emulator;
use crate::sandbox::world::FOLLOWERS_PER_PAGE;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quota {
    path: String,
    daily_limit: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    page_size: usize,
}

/// `POST /sandbox/paging {"page_size": N}` (an extension for tests): `user/get` pages of N
/// followers (1-10 000) instead of WeChat's 10 000, so multi-page syncs need fewer users.
pub(super) async fn set_paging(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let p: Paging = parse_control(&body)?;
    if !(1..=FOLLOWERS_PER_PAGE).contains(&p.page_size) {
        return Err(ControlError::bad_request("page_size must be 1-10000"));
    }
    emu.world().page_size = p.page_size;
    Ok(Json(json!({"page_size": p.page_size})))
}

/// Extension: sets a path's daily quota per app (to reach 45009 without 2 000 calls).
pub(super) async fn set_quota(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let q: Quota = parse_control(&body)?;
    emu.world()
        .daily_limits
        .insert(wechat_path(&q.path).to_string(), q.daily_limit);
    Ok(Json(json!({"daily_limit": q.daily_limit})))
}
