//! `GET /cgi-bin/getcallbackip` (the addresses WeChat pushes from) and its control,
//! `POST /sandbox/callback-ips {"ip_list": [...]}`.
//!
//! The token is checked as for every call (41001 missing, 40001 unknown or invalidated,
//! 42001 expired). The list is [`DEFAULT_CALLBACK_IPS`] until a control replaces it:
//! loopback, which the emulator's own pushes come from, and one CIDR in WeChat's form.

use super::controls::{ControlError, ControlResult, parse_control};
use super::{Emulator, Query_};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

/// What `getcallbackip` lists until `POST /sandbox/callback-ips` says otherwise.
pub const DEFAULT_CALLBACK_IPS: [&str; 2] = ["127.0.0.1", "101.226.103.0/25"];

/// The list at start.
pub(super) fn default_list() -> Vec<String> {
    DEFAULT_CALLBACK_IPS.iter().map(|s| s.to_string()).collect()
}

pub(super) async fn get_callback_ips(State(emu): State<Emulator>, Query(q): Query_) -> Response {
    let list = emu.callback_ips();
    emu.call("/cgi-bin/getcallbackip", move |w, now| {
        w.check_token(q.get("access_token"), now)?;
        Ok(json!({ "ip_list": list }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpList {
    ip_list: Vec<String>,
}

/// Replaces the list; each entry must be an IPv4 or IPv6 address or a CIDR.
pub(super) async fn set_callback_ips(State(emu): State<Emulator>, body: Bytes) -> ControlResult {
    let l: IpList = parse_control(&body)?;
    if let Some(bad) = l
        .ip_list
        .iter()
        .find(|e| wxpush_shared::callback_ips::parse_entry(e).is_none())
    {
        return Err(ControlError::bad_request(format!(
            "{bad:?} is not an address or a CIDR"
        )));
    }
    emu.set_callback_ips(l.ip_list.clone());
    Ok(Json(json!({ "ip_list": l.ip_list })))
}
