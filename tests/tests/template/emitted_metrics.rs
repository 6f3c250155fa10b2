//! The metrics the code emits, read from its sources, for the alarms' and the dashboard's checks.

use std::collections::{BTreeMap, BTreeSet};

/// Every `wxpush` metric the code emits (EMF), with its dimensions' names: the
/// `count("Name", ..., &[("Dim", ...)...])` calls in the functions' and shared sources.
pub fn emitted_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut emitted: BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut stack = vec![std::path::PathBuf::from(root).join("shared/src")];
    for f in [
        "functions/send/src",
        "functions/callback/src",
        "functions/token-refresh/src",
    ] {
        stack.push(std::path::PathBuf::from(root).join(f));
    }
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let flat: String = text.split_whitespace().collect();
            for call in flat.split("metrics::count(").skip(1) {
                let Some(name) = call.strip_prefix('"').and_then(|c| c.split('"').next()) else {
                    continue;
                };
                // The dimensions: `&[("Name", value), ...]`, up to its closing `])`.
                let args = call.split("])").next().unwrap_or("");
                let dims = emitted.entry(name.to_string()).or_default();
                for part in args.split("(\"").skip(1) {
                    if let Some(dim) = part.split('"').next() {
                        dims.insert(dim.to_string());
                    }
                }
            }
        }
    }
    emitted
}
