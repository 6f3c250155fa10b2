//! What a send answers: `200 sent`, `202 unknown`, WeChat's refusal, each written on the
//! message record as it is answered.

use super::refusal::send_error;
use super::validate::SendRequest;
use crate::store::{Attr, Attrs};
use crate::wechat::{ErrorClass, WeChatCallError};
use http::StatusCode;
use serde_json::{Value, json};
use tracing::{info, warn};

/// The HTTP answer of a send (success, or a refusal worth replaying).
#[derive(Clone, Debug, PartialEq)]
pub struct SendOutcome {
    pub status: StatusCode,
    pub body: Value,
}

/// `200 sent`, with the record's status.
pub(super) fn sent_outcome(
    appid: &str,
    id: &str,
    via: &str,
    req: &SendRequest,
    msgid: Option<i64>,
    record: &mut Attrs,
) -> SendOutcome {
    record.insert("status".into(), "sent".into());
    if let Some(m) = msgid {
        record.insert("wechat_msgid".into(), m.to_string().into());
    }
    info!(appid, id, via, kind = req.kind.as_str(), "message sent");
    crate::metrics::count("Sends", 1.0, &[("Outcome", "sent")]);
    SendOutcome {
        status: StatusCode::OK,
        body: json!({"id": id, "status": "sent", "wechat_msgid": msgid}),
    }
}

/// `202 unknown`: WeChat may have delivered it. `resend_until`: a template that a retry
/// with the same key (or the batch) resends, deduped by its client_msg_id, until then.
pub(super) fn unknown_outcome(
    appid: &str,
    id: &str,
    why: &str,
    resend_until: Option<i64>,
    record: &mut Attrs,
) -> SendOutcome {
    record.insert("status".into(), "unknown".into());
    record.insert("error".into(), why.into());
    crate::metrics::count("Sends", 1.0, &[("Outcome", "unknown")]);
    let body = match resend_until {
        Some(until) => {
            record.insert("resend_until".into(), Attr::N(until));
            warn!(appid, id, error = %why, until, "send outcome unknown; a retry resends with the same client_msg_id");
            json!({"id": id, "status": "unknown", "retry_until": until,
                "message": "WeChat did not confirm the message; a retry with the same Idempotency-Key before retry_until resends it, and WeChat delivers it at most once"})
        }
        None => {
            warn!(appid, id, error = %why, "send outcome unknown; not resent");
            json!({"id": id, "status": "unknown",
                "message": "WeChat did not confirm the message; it may have been delivered and is not sent again"})
        }
    };
    SendOutcome {
        status: StatusCode::ACCEPTED,
        body,
    }
}

/// WeChat refused the message (recorded `failed`).
pub(super) fn refused_outcome(
    appid: &str,
    id: &str,
    via: &str,
    e: &WeChatCallError,
    record: &mut Attrs,
) -> SendOutcome {
    record.insert("status".into(), "failed".into());
    if let Some(code) = e.errcode() {
        record.insert("wechat_errcode".into(), Attr::N(code));
        crate::metrics::count(
            "SendWeChatErrors",
            1.0,
            &[("Errcode", code.to_string().as_str())],
        );
    }
    record.insert("error".into(), e.to_string().into());
    let err = send_error(via, e);
    if e.class() == ErrorClass::UserRefused {
        crate::metrics::count("Sends", 1.0, &[("Outcome", "refused")]);
        info!(appid, id, errcode = ?e.errcode(), "message refused by the user's state");
    } else {
        crate::metrics::count("Sends", 1.0, &[("Outcome", "failed")]);
        warn!(appid, id, errcode = ?e.errcode(), error = %e, "message refused by WeChat");
    }
    SendOutcome {
        status: err.status(),
        body: err.body(),
    }
}

/// The answer of a send whose outcome could not be recorded: what a retry will hear.
pub(super) fn unrecorded_outcome(id: &str, what_wechat_said: &SendOutcome) -> SendOutcome {
    SendOutcome {
        status: StatusCode::ACCEPTED,
        body: json!({"id": id, "status": "unknown",
            "wechat_answer": what_wechat_said.body,
            "message": "WeChat answered, but wxpush could not record the outcome; the message is not sent again, and a retry with this Idempotency-Key answers unknown too"}),
    }
}
