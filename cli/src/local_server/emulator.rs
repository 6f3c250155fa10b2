//! The WeChat emulator as `wxpush serve --sandbox` and `wxpush sandbox` set it up: one
//! emulated app per configured app, pushing its events signed with the app's callback keys.

use crate::sandbox::{CallbackKeys, EmulatedApp, Emulator};
use std::net::SocketAddr;
use wxpush_shared::secrets::FileSecretStore;
use wxpush_shared::wechat::WeChatClientConfig;

/// The emulated apps: each configured app, with its secret and callback keys.
pub fn emulated_apps(store: &FileSecretStore) -> Vec<EmulatedApp> {
    store
        .apps()
        .map(|a| EmulatedApp {
            appid: a.appid.clone(),
            secret: a.app_secret.expose().to_string(),
            kind: a.kind,
            callback: callback_keys(a),
        })
        .collect()
}

/// What the emulator signs (and encrypts) its pushes to an app's callback with.
pub fn callback_keys(app: &wxpush_shared::AppConfig) -> Option<CallbackKeys> {
    app.callback_token.as_ref().map(|token| CallbackKeys {
        token: token.expose().to_string(),
        encoding_aes_key: app
            .encoding_aes_key
            .as_ref()
            .map(|k| k.expose().to_string()),
        encrypted: app.callback_mode.encrypted(),
    })
}

/// `--sandbox`: the emulator under this server's `/sandbox`, the WeChat client pointed at
/// it, and its pushes sent to this server's own callback route.
pub(super) fn sandbox_at(
    addr: SocketAddr,
    store: &FileSecretStore,
    wechat: &mut WeChatClientConfig,
) -> Emulator {
    let emu = Emulator::new(emulated_apps(store), 7200);
    wechat.api_base = format!("http://{addr}/sandbox");
    // The emulator pushes WeChat's events to this server's own callback route.
    emu.set_callback_base(Some(format!("http://{addr}/wechat")));
    emu
}
