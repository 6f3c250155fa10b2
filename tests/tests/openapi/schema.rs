//! openapi.yaml, read as JSON, and a check of a value against its schemas.

use serde_json::Value;
use std::collections::BTreeSet;

/// openapi.yaml as JSON, read with PyYAML from the test venv (cfn-lint's dependency).
pub fn openapi() -> Value {
    let lint = std::env::var("WXPUSH_CFN_LINT")
        .expect("WXPUSH_CFN_LINT is not set: run the suite with `bash scripts/test`");
    let python = std::path::Path::new(&lint).with_file_name("python");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            path,
        ])
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("openapi.yaml is valid YAML")
}

/// (METHOD, path) of every documented operation.
pub fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// A schema node with `$ref`s followed.
pub fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut node = spec;
            for part in r.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            resolve(spec, node)
        }
        None => schema,
    }
}

/// Checks `value` against `schema` (the subset openapi.yaml uses: type, nullable, required,
/// properties, items, enum, oneOf, and the error code's snake_case pattern). Returns the first
/// mismatch as `path: why`.
pub fn check(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(options) = schema["oneOf"].as_array() {
        return options
            .iter()
            .any(|o| check(spec, o, value, at).is_ok())
            .then_some(())
            .ok_or_else(|| format!("{at}: matches none of oneOf"));
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some(other) => return Err(format!("{at}: the test does not know type {other}")),
        None => true,
    };
    if !ok {
        return Err(format!("{at}: {value} is not a {}", schema["type"]));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if schema["pattern"] == "^[a-z][a-z0-9_]*$" {
        let s = value.as_str().unwrap_or("");
        let snake = s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !snake {
            return Err(format!("{at}: {s} is not snake_case"));
        }
    }
    if let Some(required) = schema["required"].as_array() {
        for r in required {
            let r = r.as_str().unwrap();
            if value.get(r).is_none() {
                return Err(format!("{at}: `{r}` is required but missing from {value}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (k, v) in obj {
            match props.get(k) {
                Some(p) => check(spec, p, v, &format!("{at}.{k}"))?,
                None if schema.get("additionalProperties").is_some() => check(
                    spec,
                    &schema["additionalProperties"],
                    v,
                    &format!("{at}.{k}"),
                )?,
                None => return Err(format!("{at}: `{k}` is not documented")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(spec, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The documented schema of `method path`'s answer with `status` (else `default`).
pub fn response_schema<'a>(spec: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let responses = &spec["paths"][path][method.to_lowercase()]["responses"];
    let r = responses
        .get(status.to_string())
        .unwrap_or_else(|| &responses["default"]);
    let r = resolve(spec, r);
    let schema = &r["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path}: status {status} has no documented schema"
    );
    schema
}
