//! `seed_messages FILE APPID COUNT`: writes COUNT sent template messages of APPID, the latest
//! made now, into the embedded database FILE (created if missing), as `wxpush serve --data
//! FILE` reads them. The console's browser test measures a page load over 100 000 of them.

use std::sync::Arc;
use wxpush_shared::store::EmbeddedStateStore;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, appid, count] = args.as_slice() else {
        return Err("usage: seed_messages FILE APPID COUNT".into());
    };
    if !wxpush_shared::is_valid_appid(appid) {
        return Err(format!("{appid} is not an appid (wx and 16 hex digits)"));
    }
    let count: usize = count
        .parse()
        .map_err(|_| format!("COUNT must be a number, not {count}"))?;
    let db = redb::Database::create(file).map_err(|e| format!("cannot open {file}: {e}"))?;
    let store = EmbeddedStateStore::new(Arc::new(db));
    let start_ms = wxpush_shared::clock::now_unix_millis() - count as i64;
    wxpush_tests::seed_messages(&store, appid, count, start_ms)
        .await
        .map_err(|e| e.to_string())?;
    println!("seeded {count} messages of {appid} into {file}");
    Ok(())
}
