//! `sns/jscode2session`: a mini program's login code traded for the user's openid.

use crate::sandbox::{Emulator, Query_};
use axum::extract::{Query, State};
use axum::response::Response;

pub(super) async fn code_to_session(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/sns/jscode2session", move |w, now| {
        w.code_to_session(&q, now)
    })
    .await
}
