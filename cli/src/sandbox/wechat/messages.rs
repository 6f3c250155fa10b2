//! The message paths: template, subscribe (mini program and official account),
//! customer-service, and the withdrawn `uniform_send`.

use crate::sandbox::wechat::parse_json;
use crate::sandbox::world::wx_err;
use crate::sandbox::{Emulator, Query_};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;

pub(super) async fn template_send(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/message/template/send", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.template_send(&app, &parse_json(&body)?, now)
    })
    .await
}

pub(super) async fn subscribe_send(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/message/subscribe/send", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.subscribe_send(&app, &parse_json(&body)?, now)
    })
    .await
}

pub(super) async fn biz_subscribe_send(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/message/subscribe/bizsend", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.biz_subscribe_send(&app, &parse_json(&body)?, now)
    })
    .await
}

pub(super) async fn custom_send(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/message/custom/send", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.custom_send(&app, &parse_json(&body)?, now)
    })
    .await
}

/// Withdrawn on 2023-09-20: every call answers 45109.
pub(super) async fn uniform_send(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call(
        "/cgi-bin/message/wxopen/template/uniform_send",
        move |w, now| {
            w.check_token(q.get("access_token"), now)?;
            Err(wx_err(45109, "This API has been unsupported"))
        },
    )
    .await
}
