//! Reading template.yaml as text, for the test binaries that check it (template,
//! template_firewall, iam_policy, openapi, route_iam). Each includes this file with `#[path]`
//! and uses some of it.
#![allow(dead_code)]

use std::collections::BTreeSet;

/// Where template.yaml is.
pub const TEMPLATE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

/// template.yaml, as the repository has it.
pub fn template() -> String {
    std::fs::read_to_string(TEMPLATE_PATH).unwrap()
}

/// The text between the first `start` and the next `end` after it.
pub fn section<'a>(t: &'a str, start: &str, end: &str) -> &'a str {
    t.split(start)
        .nth(1)
        .unwrap_or_else(|| panic!("{start} not found"))
        .split(end)
        .next()
        .unwrap()
}

/// Each IAM policy statement, from its `Effect:` to the next one (cut at the `Events:` or the
/// blank line that ends the last statement of a resource).
pub fn statements(t: &str) -> Vec<&str> {
    t.split("Effect:")
        .skip(1)
        .map(|s| {
            s.split("Events:")
                .next()
                .unwrap()
                .split("\n\n")
                .next()
                .unwrap()
        })
        .collect()
}

/// (METHOD, path template) of the send function's IAM-authorised routes in template.yaml.
pub fn deployed_routes() -> BTreeSet<(String, String)> {
    let t = template();
    let lines: Vec<&str> = t.lines().map(str::trim).collect();
    let mut ops = BTreeSet::new();
    for w in lines.windows(2) {
        if let (Some(m), Some(p)) = (w[0].strip_prefix("Method: "), w[1].strip_prefix("Path: "))
            && p.starts_with("/v1/")
            && m != "ANY"
        {
            ops.insert((m.to_string(), p.to_string()));
        }
    }
    ops
}
