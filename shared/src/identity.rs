//! Who a user is across the company's apps: mini program login (`jscode2session`) and the
//! unionid directory — per app (`GET /v1/apps/{appid}/users?unionid=`, which IAM scopes to the
//! app like every `/v1/apps/{appid}/...` route) and across the apps (`GET /v1/users/{unionid}`,
//! a route an operator grants on purpose).

use crate::app::AppKind;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::store::{Attr, Attrs, ItemKey, ItemRead, Op, StateStore, attrs};
use crate::token::TokenManager;
use crate::wechat::WeChatCallError;
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::info;

pub struct Identity {
    tokens: Arc<TokenManager>,
    store: Arc<dyn StateStore>,
}

/// jscode2session's refusals as the caller can act on them (docs/wechat.md#mini-program-login).
fn login_error(appid: &str, err: &WeChatCallError) -> ApiError {
    let mapped = match err.errcode() {
        Some(40029 | 40163) => Some((
            "invalid_code",
            StatusCode::BAD_REQUEST,
            "the login code is invalid, expired or already used",
        )),
        Some(45011) => Some((
            "rate_limited",
            StatusCode::TOO_MANY_REQUESTS,
            "too many logins for this user; retry next minute",
        )),
        Some(40226) => Some((
            "high_risk_user",
            StatusCode::FORBIDDEN,
            "WeChat blocked this login (high-risk user)",
        )),
        _ => None,
    };
    match mapped {
        Some((code, status, why)) => ApiError::WeChat {
            code,
            status,
            message: format!("app {appid}: {why}"),
            errcode: err.errcode(),
        },
        None => ApiError::from_wechat(appid, err),
    }
}

impl Identity {
    pub fn new(tokens: Arc<TokenManager>, store: Arc<dyn StateStore>) -> Identity {
        Identity { tokens, store }
    }

    /// `POST /v1/apps/{appid}/sessions` `{"code"}` → `{"openid", "unionid"}`. The session_key
    /// WeChat returns is dropped here: never returned, stored or logged.
    pub async fn login(&self, appid: &str, body: &[u8]) -> Result<Value, ApiError> {
        let app = self.tokens.secrets().app(appid).await?;
        if app.kind != AppKind::MiniProgram {
            return Err(ApiError::Validation {
                field: "appid".into(),
                message: format!("app {appid} is not a mini program; logins are for mini programs"),
            });
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        let code = value
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty() && c.len() <= 256 && c.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| ApiError::Validation {
                field: "code".into(),
                message: "the wx.login code is required".into(),
            })?;
        let session = self
            .tokens
            .wechat()
            .code_to_session(&app, code)
            .await
            .map_err(|e| login_error(appid, &e))?;
        let now = now_unix();
        let mut account = attrs([
            ("appid", appid.into()),
            ("openid", session.openid.as_str().into()),
            ("updated_at", Attr::N(now)),
        ]);
        let mut ops = Vec::new();
        if let Some(u) = &session.unionid {
            account.insert("unionid".into(), u.as_str().into());
            let union = attrs([
                ("appid", appid.into()),
                ("openid", session.openid.as_str().into()),
                ("updated_at", Attr::N(now)),
            ]);
            ops.push(Op::SetIfNewer {
                key: ItemKey::union_account(u, appid),
                event_time: now,
                attrs: union,
            });
        }
        ops.insert(
            0,
            Op::SetIfNewer {
                key: ItemKey::account(appid, &session.openid),
                event_time: now,
                attrs: account,
            },
        );
        self.store.record(&ops, now).await?;
        info!(
            appid,
            has_unionid = session.unionid.is_some(),
            "mini program login"
        );
        Ok(json!({"openid": session.openid, "unionid": session.unionid}))
    }

    /// `GET /v1/apps/{appid}/users?unionid=U`: the person's account in this app only (one
    /// `GetItem`). 404 `unknown_user` when the app has none, whether or not other apps do.
    pub async fn app_user(&self, appid: &str, unionid: Option<&str>) -> Result<Value, ApiError> {
        self.tokens.secrets().app(appid).await?;
        let unionid = unionid
            .filter(|u| is_unionid(u))
            .ok_or_else(|| ApiError::Validation {
                field: "unionid".into(),
                message: "the query parameter unionid is required: 1-64 of A-Z a-z 0-9 _ -".into(),
            })?;
        let row = self
            .store
            .get(&ItemKey::union_account(unionid, appid))
            .await?
            .ok_or_else(|| ApiError::WeChat {
                code: "unknown_user",
                status: StatusCode::NOT_FOUND,
                message: format!("unionid {unionid} has no account in app {appid}"),
                errcode: None,
            })?;
        let mut account = account_json(&row);
        account["appid"] = json!(appid);
        Ok(json!({"unionid": unionid, "accounts": [account]}))
    }

    /// `GET /v1/users/{unionid}`: every account of the person, from one `Query`.
    pub async fn user(&self, unionid: &str) -> Result<Value, ApiError> {
        let rows = self.store.query(&ItemKey::union_pk(unionid)).await?;
        if rows.is_empty() {
            return Err(ApiError::WeChat {
                code: "unknown_user",
                status: StatusCode::NOT_FOUND,
                message: format!("unionid {unionid} is not known"),
                errcode: None,
            });
        }
        let accounts: Vec<Value> = rows.iter().map(|(_, a)| account_json(a)).collect();
        Ok(json!({"unionid": unionid, "accounts": accounts}))
    }
}

/// A unionid as WeChat issues them (28 characters today): letters, digits, `-` and `_`.
pub fn is_unionid(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One `union#` entry as the directory shows it: `subscribed` is null where it does not
/// apply (mini programs) or is not known.
fn account_json(a: &Attrs) -> Value {
    // Not `flag`: a missing `subscribed` is unknown (null), not false.
    let subscribed = match a.get("subscribed") {
        Some(Attr::Bool(b)) => Some(*b),
        _ => None,
    };
    json!({"appid": a.text("appid"), "openid": a.text("openid"), "subscribed": subscribed})
}
