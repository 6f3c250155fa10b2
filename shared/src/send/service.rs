//! [`Sender`]: one API send, start to finish — validate, resolve the recipient, claim the
//! Idempotency-Key, call WeChat with the retry rules of docs/api.md, record the message.
//! Its steps live beside this file (see [`crate::send`]); their public items are re-exported
//! here, where the rest of the workspace names them.

use crate::store::StateStore;
use crate::templates::Templates;
use crate::token::TokenManager;
use crate::user_state::UserState;
use std::sync::Arc;
use std::time::Duration;

pub use super::claim::{CLAIM_LEASE_MARGIN_SECS, ClaimSpec, ClaimedOutcome, IDEMPOTENCY_TTL_SECS};
pub use super::deliver::{MAX_ATTEMPTS, TEMPLATE_RESEND_WINDOW_SECS};
pub use super::idempotency_key::{body_hash, check_idempotency_key, claim_key, principal};
pub use super::outcome::SendOutcome;
pub use super::record::{MESSAGE_TTL_SECS, template_send_prefix, template_send_sk};
pub use super::refusal::send_error;
pub use super::route::Routed;

pub struct Sender {
    pub(super) tokens: Arc<TokenManager>,
    /// The apps' template listings, to check `data` keys before WeChat is called.
    pub(super) templates: Arc<Templates>,
    pub(super) store: Arc<dyn StateStore>,
    /// What wxpush knows of each user: the customer-service window, grants, the daily cap.
    pub(super) users: Arc<UserState>,
    /// Per-attempt WeChat timeout, to know whether another attempt fits in the budget.
    pub(super) attempt_timeout: Duration,
}

impl Sender {
    pub fn new(
        tokens: Arc<TokenManager>,
        store: Arc<dyn StateStore>,
        attempt_timeout: Duration,
    ) -> Sender {
        let templates = Arc::new(Templates::new(tokens.clone(), store.clone()));
        let users = Arc::new(UserState::new(store.clone()));
        Sender {
            tokens,
            templates,
            users,
            store,
            attempt_timeout,
        }
    }

    /// The template listings this sender checks against (`/v1/apps/{appid}/templates`).
    pub fn templates(&self) -> &Arc<Templates> {
        &self.templates
    }

    /// What wxpush knows of each user (`/v1/apps/{appid}/users/{openid}`).
    pub fn users(&self) -> &Arc<UserState> {
        &self.users
    }

    /// The token manager (and through it the app configuration) this sender uses.
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }
}
