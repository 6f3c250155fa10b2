//! A template's keys, read from its `content`, and a send's `data` checked against them.

use super::{TemplateInfo, TemplateKind};
use crate::error::ApiError;
use crate::wechat::DataValue;
use std::collections::BTreeMap;

/// The keys of a template's `content`, in order: `{{thing1.DATA}}` → `thing1`.
pub fn keys_of(content: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        if let Some(key) = rest[..end].trim().strip_suffix(".DATA")
            && !key.is_empty()
            && !keys.iter().any(|k| k == key)
        {
            keys.push(key.to_string());
        }
        rest = &rest[end + 2..];
    }
    keys
}

/// The legacy header and footer of template messages: no longer shown since 2023-05-04
/// (docs/wechat.md#template-messages), so neither required nor refused.
const LEGACY_KEYS: &[&str] = &["first", "remark"];

/// `data` against the template's keys: every key needs a value and no other key is taken.
pub fn check_data_keys(
    template: &TemplateInfo,
    data: &BTreeMap<String, DataValue>,
) -> Result<(), ApiError> {
    let legacy = |k: &str| template.kind == TemplateKind::Template && LEGACY_KEYS.contains(&k);
    let refuse = |key: &str, what: &str| ApiError::Validation {
        field: format!("data.{key}"),
        message: format!(
            "{what} template {} (keys: {})",
            template.id,
            template.keys.join(", ")
        ),
    };
    if let Some(missing) = template
        .keys
        .iter()
        .find(|k| !legacy(k) && !data.contains_key(*k))
    {
        return Err(refuse(missing, "is required by"));
    }
    if let Some(unknown) = data
        .keys()
        .find(|k| !legacy(k) && !template.keys.contains(k))
    {
        return Err(refuse(unknown, "is not a key of"));
    }
    Ok(())
}
