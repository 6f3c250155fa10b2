//! `GET /sandbox/phones[?appid=][&cursor=][&limit=]`: what each emulated user's WeChat shows,
//! a page of users at a time (what the console draws as phones). Read only.

use super::{ControlError, ControlResult, known_app};
use crate::sandbox::world::PhoneQuery;
use crate::sandbox::{Emulator, Query_};
use axum::Json;
use axum::extract::{Query, State};

/// Phones per page at most (`?limit=`), and when not given.
const MAX_PHONES: usize = 50;
const DEFAULT_PHONES: usize = 12;

pub(super) async fn list_phones(State(emu): State<Emulator>, Query(q): Query_) -> ControlResult {
    let limit = match q.get("limit") {
        None => DEFAULT_PHONES,
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PHONES).contains(n))
            .ok_or_else(|| {
                ControlError::bad_request(format!("limit must be a number from 1 to {MAX_PHONES}"))
            })?,
    };
    let start = match q.get("cursor") {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            ControlError::bad_request("cursor must be the next_cursor of the page before")
        })?,
    };
    let now = emu.now();
    let world = emu.world();
    let appid = q.get("appid").map(String::as_str);
    if let Some(a) = appid {
        known_app(&world, a)?;
    }
    Ok(Json(world.phones(
        &PhoneQuery {
            appid,
            start,
            limit,
        },
        now,
    )))
}
