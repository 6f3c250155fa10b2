//! `openapi/quota/get`: an app's daily quota of one path.

use crate::sandbox::wechat::parse_json;
use crate::sandbox::{Emulator, Query_};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;

pub(super) async fn quota_get(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/openapi/quota/get", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.quota_get(&app, &parse_json(&body)?, now)
    })
    .await
}
