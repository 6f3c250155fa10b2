//! The apps `wxpush serve --sandbox` and `wxpush sandbox` make up when no `--apps` is given.

use crate::sandbox::random_alnum;
use wxpush_shared::secrets::{AppEntry, AppsFile};

/// The demo apps of `--sandbox` without `--apps`: one official account and one mini program
/// sharing a unionid space, with fresh secrets each start.
pub fn demo_apps() -> AppsFile {
    let secret = || format!("{:032x}", rand::random::<u128>());
    let aes_key = || random_alnum(43);
    AppsFile {
        apps: vec![
            AppEntry {
                appid: "wxd0000000000000a1".into(),
                kind: "official_account".into(),
                app_secret: secret(),
                callback_token: Some(format!("demo{:08x}", rand::random::<u32>())),
                encoding_aes_key: Some(aes_key()),
                ..AppEntry::default()
            },
            AppEntry {
                appid: "wxd0000000000000b2".into(),
                kind: "mini_program".into(),
                app_secret: secret(),
                callback_token: Some(format!("demo{:08x}", rand::random::<u32>())),
                encoding_aes_key: Some(aes_key()),
                linked_official_account: Some("wxd0000000000000a1".into()),
                ..AppEntry::default()
            },
        ],
    }
}
