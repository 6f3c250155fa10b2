//! WeChat's refusals of a send, as docs/api.md names them.

use crate::error::ApiError;
use crate::wechat::WeChatCallError;
use http::StatusCode;

/// WeChat refusals of a send, as docs/api.md names them; anything else as for any call.
pub fn send_error(appid: &str, err: &WeChatCallError) -> ApiError {
    let mapped = match err.errcode() {
        Some(43101) => Some((
            "subscription_required",
            StatusCode::FORBIDDEN,
            "the user has no (remaining) subscription to this template",
        )),
        Some(43004) => Some((
            "not_following",
            StatusCode::FORBIDDEN,
            "the user does not follow the official account",
        )),
        Some(43019) => Some((
            "user_blocked",
            StatusCode::FORBIDDEN,
            "the user has blocked the account",
        )),
        Some(45015) => Some((
            "outside_service_window",
            StatusCode::FORBIDDEN,
            "customer-service messages need an interaction of the user within the last 48 hours",
        )),
        Some(45047) => Some((
            "reply_limit_reached",
            StatusCode::TOO_MANY_REQUESTS,
            "the customer-service reply quota for this interaction is used up",
        )),
        Some(40003) => Some((
            "invalid_recipient",
            StatusCode::UNPROCESSABLE_ENTITY,
            "WeChat does not know this openid in this app",
        )),
        Some(40037) => Some((
            "invalid_template",
            StatusCode::UNPROCESSABLE_ENTITY,
            "WeChat does not know this template_id",
        )),
        Some(47003) => Some((
            "invalid_data",
            StatusCode::UNPROCESSABLE_ENTITY,
            "WeChat refused the template data",
        )),
        Some(41030) => Some((
            "invalid_page",
            StatusCode::UNPROCESSABLE_ENTITY,
            "the page does not exist in the published mini program",
        )),
        Some(48001) => Some((
            "api_unauthorized",
            StatusCode::FORBIDDEN,
            "the app lacks the permission for this message type",
        )),
        _ => None,
    };
    match mapped {
        Some((code, status, why)) => ApiError::WeChat {
            code,
            status,
            message: format!("app {appid}: {why} ({err})"),
            errcode: err.errcode(),
        },
        None => ApiError::from_wechat(appid, err),
    }
}
