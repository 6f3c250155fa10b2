//! What wxpush knows of one user of one app before it sends: the customer-service window
//! their interactions opened (`window.rs`), their subscribe grants (`grants.rs`), what they
//! were sent today against the app's daily cap (`caps.rs`), and all of it as one view,
//! `GET /v1/apps/{appid}/users/{openid}` (`view.rs`). The callback writes the window and the
//! grants; a send reads them and takes what it uses before WeChat is called.

mod caps;
mod grants;
mod view;
mod window;

pub use caps::{CapLimits, CapOutcome, CapTake, china_day};
pub use grants::{Grant, GrantTake};
pub use view::is_openid;
pub use window::{Allowance, Interaction, ServiceWindow, WindowTake, interaction_op};

use crate::store::StateStore;
use std::sync::Arc;

/// The per-user state a send consults, over the state store.
pub struct UserState {
    store: Arc<dyn StateStore>,
}

impl UserState {
    pub fn new(store: Arc<dyn StateStore>) -> UserState {
        UserState { store }
    }
}
