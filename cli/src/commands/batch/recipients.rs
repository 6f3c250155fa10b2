//! The recipients file of `wxpush batch send --recipients FILE`.

use serde_json::{Value, json};

/// Recipients from a file: a JSON array of `{"openid": ...}` / `{"unionid": ...}`, or one a
/// line — `OPENID`, `openid:OPENID` or `unionid:UNIONID` (blank lines and `#` comments
/// skipped). The server checks each one; this only reads the file's shape.
pub fn read_recipients(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("the recipients file is not a JSON array: {e}"))?;
        return Ok(list);
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = match line.split_once(':') {
            Some(("unionid", u)) => json!({"unionid": u.trim()}),
            Some(("openid", o)) => json!({"openid": o.trim()}),
            // A mini program user of a uniform batch, posted to the official account.
            Some((appid, o)) if wxpush_shared::is_valid_appid(appid) => {
                json!({"openid": o.trim(), "appid": appid})
            }
            Some((other, _)) => {
                return Err(format!(
                    "line {}: `{other}:` is not openid:, unionid: or a mini program's APPID:",
                    n + 1
                ));
            }
            None => json!({"openid": line}),
        };
        out.push(r);
    }
    if out.is_empty() {
        return Err("the recipients file lists no one".into());
    }
    Ok(out)
}
