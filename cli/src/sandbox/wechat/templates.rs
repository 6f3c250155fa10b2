//! The template paths: an official account's private templates and a mini program's
//! subscribe templates, listed, added and deleted; the messages of a template WeChat
//! intercepted (`queryblocktmplmsg`).

use crate::sandbox::wechat::parse_json;
use crate::sandbox::{Emulator, Query_};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;

pub(super) async fn private_templates(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call(
        "/cgi-bin/template/get_all_private_template",
        move |w, now| {
            let app = w.check_token(q.get("access_token"), now)?;
            w.private_templates(&app)
        },
    )
    .await
}

pub(super) async fn add_private_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/template/api_add_template", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.add_private_template(&app, &parse_json(&body)?)
    })
    .await
}

pub(super) async fn delete_private_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/cgi-bin/template/del_private_template", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.delete_private_template(&app, &parse_json(&body)?)
    })
    .await
}

pub(super) async fn subscribe_templates(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    emu.call("/wxaapi/newtmpl/gettemplate", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.subscribe_templates(&app)
    })
    .await
}

pub(super) async fn add_subscribe_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/wxaapi/newtmpl/addtemplate", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.add_subscribe_template(&app, &parse_json(&body)?)
    })
    .await
}

pub(super) async fn delete_subscribe_template(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/wxaapi/newtmpl/deltemplate", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.delete_subscribe_template(&app, &parse_json(&body)?)
    })
    .await
}

pub(super) async fn blocked_messages(
    State(emu): State<Emulator>,
    Query(q): Query_,
    body: Bytes,
) -> Response {
    emu.call("/wxa/sec/queryblocktmplmsg", move |w, now| {
        let app = w.check_token(q.get("access_token"), now)?;
        w.blocked_messages(&app, &parse_json(&body)?)
    })
    .await
}
