//! A WeChat call with an app's access_token, retried once with a fresh token when WeChat
//! refuses the token: the rule the account-management calls share (the quota, template
//! management in [`crate::templates`], the callback addresses in [`crate::callback_ips`]).

use crate::error::ApiError;
use crate::token::TokenManager;
use crate::wechat::{ErrorClass, WeChatApi, WeChatCallError};
use std::future::Future;
use std::sync::Arc;
use tracing::warn;

/// Calls WeChat with `appid`'s access_token. A token WeChat refuses (40001/40014/42001) is
/// invalidated (compare-and-invalidate) and the call made once more with a fresh one; every
/// other failure maps through [`ApiError::from_wechat`]. For calls that are safe to repeat
/// (reads, and writes WeChat refused without acting).
pub async fn with_token<T, F, Fut>(
    tokens: &TokenManager,
    appid: &str,
    call: F,
) -> Result<T, WeChatOrApi>
where
    F: Fn(Arc<dyn WeChatApi>, String) -> Fut,
    Fut: Future<Output = Result<T, WeChatCallError>>,
{
    let mut token = tokens.get(appid).await.map_err(ApiError::from)?;
    let mut retried = false;
    loop {
        match call(tokens.wechat().clone(), token.token.expose().to_string()).await {
            Ok(v) => return Ok(v),
            Err(e) if e.class() == ErrorClass::TokenInvalid && !retried => {
                warn!(appid, errcode = ?e.errcode(), "access_token refused; refreshing once");
                retried = true;
                let _ = tokens.invalidate(appid, &token).await;
                token = tokens.get(appid).await.map_err(ApiError::from)?;
            }
            Err(e) => return Err(WeChatOrApi::WeChat(e)),
        }
    }
}

/// What [`with_token`] failed with: WeChat's own answer (for callers that map some codes
/// themselves) or an API error (no token).
#[derive(Debug)]
pub enum WeChatOrApi {
    WeChat(WeChatCallError),
    Api(ApiError),
}

impl From<ApiError> for WeChatOrApi {
    fn from(e: ApiError) -> Self {
        WeChatOrApi::Api(e)
    }
}

impl WeChatOrApi {
    /// The API error, WeChat's through the common errcode mapping.
    pub fn into_api(self, appid: &str) -> ApiError {
        match self {
            WeChatOrApi::WeChat(e) => ApiError::from_wechat(appid, &e),
            WeChatOrApi::Api(e) => e,
        }
    }
}
