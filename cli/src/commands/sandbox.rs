//! `wxpush sandbox --port N [--apps FILE]`: the WeChat emulator alone (WeChat's paths at
//! the root, its controls under /sandbox).

use super::load_apps;
use crate::args::SandboxArgs;
use crate::error::CliError;
use crate::local_server::emulated_apps;
use crate::sandbox::Emulator;
use wxpush_shared::secrets::FileSecretStore;

pub async fn run(args: SandboxArgs) -> Result<(), CliError> {
    let (apps, _) = load_apps(args.apps.as_ref(), true).map_err(CliError::Usage)?;
    let store = FileSecretStore::from_file(apps).map_err(|e| e.to_string())?;
    let emulated = emulated_apps(&store);
    for a in &emulated {
        // Never the AppSecret: it is in the apps file for whoever may read it.
        println!("sandbox app {} ({})", a.appid, a.kind.as_str());
    }
    let emu = Emulator::new(emulated, args.token_ttl);
    emu.set_callback_base(args.callback_base);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "WeChat sandbox on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::select! {
        r = axum::serve(listener, emu.standalone_router()) => r.map_err(|e| CliError::Failed(e.to_string())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
