//! The queue of pushes: the events a call produced, handed to one task that sends them in
//! the order they were made.

use super::Emulator;
use super::push::{self, CallbackKeys};
use serde_json::json;
use std::sync::Arc;

/// A push on its way: where, signed with what, and when it was made.
pub(super) type Outgoing = (String, CallbackKeys, push::Push, i64);

impl Emulator {
    /// Sends the events the last call produced, in order, from the push task (WeChat pushes
    /// asynchronously, after it answered the call). Without a callback base or the app's
    /// callback keys, the push is listed as not sent.
    pub(super) fn dispatch_pushes(&self) {
        let base = self
            .inner
            .callback_base
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut world = self.world();
        let pending = std::mem::take(&mut world.pending_pushes);
        for p in pending {
            let keys = world.apps.get(&p.appid).and_then(|a| a.callback.clone());
            let (Some(base), Some(keys)) = (base.clone(), keys) else {
                let reason = if base.is_none() {
                    "no callback URL (wxpush sandbox --callback-base)"
                } else {
                    "the app has no callback_token"
                };
                world
                    .pushes
                    .push(json!({"appid": p.appid, "openid": p.openid,
                    "event": p.event, "status": "not_pushed", "reason": reason}));
                continue;
            };
            let _ = self.pusher().send((base, keys, p, self.now()));
        }
    }

    /// The sending end of the push task, started on first use. The task holds the emulator
    /// weakly and ends when the emulator is dropped.
    fn pusher(&self) -> &tokio::sync::mpsc::UnboundedSender<Outgoing> {
        self.inner.pusher.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
            let inner = Arc::downgrade(&self.inner);
            let http = self
                .inner
                .http
                .get_or_init(|| {
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .unwrap_or_default()
                })
                .clone();
            tokio::spawn(async move {
                while let Some((base, keys, p, at)) = rx.recv().await {
                    let outcome = push::send(&http, &base, &keys, &p, at).await;
                    let Some(inner) = inner.upgrade() else {
                        break;
                    };
                    Emulator { inner }.world().pushes.push(outcome);
                }
            });
            tx
        })
    }
}
