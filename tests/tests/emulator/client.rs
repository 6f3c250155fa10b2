//! The emulator with an official account and a mini program, and the calls a client makes.

use serde_json::{Value, json};
use wxpush_shared::AppKind;
use wxpush_tests::{EmulatorServer, emulated};

pub const OA: &str = "wx00000000000000aa";
pub const MP: &str = "wx00000000000000bb";

pub async fn emulator() -> EmulatorServer {
    EmulatorServer::start(vec![
        emulated(OA, "oa-secret", AppKind::OfficialAccount),
        emulated(MP, "mp-secret", AppKind::MiniProgram),
    ])
    .await
}

pub async fn stable(emu: &EmulatorServer, appid: &str, secret: &str, force: bool) -> Value {
    emu.post("/cgi-bin/stable_token", json!({"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force})).await
}

pub async fn classic(emu: &EmulatorServer, appid: &str, secret: &str) -> Value {
    emu.get(&format!(
        "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
    ))
    .await
}

pub fn token(v: &Value) -> String {
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {v}"))
        .to_string()
}

pub async fn template(emu: &EmulatorServer, tok: &str, body: Value) -> Value {
    emu.post(
        &format!("/cgi-bin/message/template/send?access_token={tok}"),
        body,
    )
    .await
}

pub fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(0)
}
