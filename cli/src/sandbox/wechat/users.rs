//! `user/get` (followers), `user/info` and `user/info/batchget` (unionids).

use crate::sandbox::wechat::parse_json;
use crate::sandbox::{Emulator, Query_};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;

pub(super) async fn user_get(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/cgi-bin/user/get", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.user_get(&app, q.get("next_openid").map(String::as_str), now)
    })
    .await
}

pub(super) async fn user_info(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/cgi-bin/user/info", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.user_info(&app, q.get("openid").map(String::as_str), now)
    })
    .await
}

pub(super) async fn user_info_batch(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/user/info/batchget", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.user_info_batch(&app, &parse_json(&body)?, now)
    })
    .await
}
