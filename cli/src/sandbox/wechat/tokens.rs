//! `cgi-bin/token` and `cgi-bin/stable_token`.

use crate::sandbox::wechat::parse_json;
use crate::sandbox::{Emulator, Query_};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;

pub(super) async fn classic_token(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/cgi-bin/token", move |w, now| w.classic_token(&q, now))
        .await
}

pub(super) async fn stable_token(State(emu): State<Emulator>, body: Bytes) -> Response {
    emu.call("/cgi-bin/stable_token", move |w, now| {
        w.stable_token(&parse_json(&body)?, now)
    })
    .await
}
