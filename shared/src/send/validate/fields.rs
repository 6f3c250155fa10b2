//! The readers every message kind shares: the body's string fields, ids, URLs, page paths,
//! the `miniprogram` link and the `data` map, each refusing with a 422 naming the field.

use crate::error::ApiError;
use crate::wechat::{DataValue, MiniProgramLink};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

/// The fields of a JSON object, read as strings.
pub(super) struct Fields<'a> {
    pub(super) obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(super) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(name, "must be a string")),
        }
    }
    pub(super) fn req_str(&self, name: &str) -> Result<&'a str, ApiError> {
        self.opt_str(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| invalid(name, "is required"))
    }
}

pub(super) fn id_like(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    if value.is_empty()
        || value.len() > max
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            field,
            format!("must be 1-{max} characters of [A-Za-z0-9_-]"),
        ));
    }
    Ok(value.to_string())
}

pub(super) fn http_url(field: &str, value: &str) -> Result<String, ApiError> {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() <= 1024
        && value
            .split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(value.to_string())
    } else {
        Err(invalid(
            field,
            "must be an http(s) URL of at most 1024 characters",
        ))
    }
}

/// `miniprogram`: `{"appid", "pagepath"}` (a mini program the message opens), if given.
pub(super) fn miniprogram_link(
    obj: &Map<String, Value>,
) -> Result<Option<MiniProgramLink>, ApiError> {
    match obj.get("miniprogram") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let m = Fields { obj: m };
            let appid = m
                .req_str("appid")
                .map_err(|_| invalid("miniprogram.appid", "is required"))?;
            if !crate::app::is_valid_appid(appid) {
                return Err(invalid(
                    "miniprogram.appid",
                    "must be an appid (wx + 16 hex characters)",
                ));
            }
            let pagepath = m
                .opt_str("pagepath")?
                .map(|p| page_path("miniprogram.pagepath", p))
                .transpose()?;
            Ok(Some(MiniProgramLink {
                appid: appid.to_string(),
                pagepath,
            }))
        }
        Some(_) => Err(invalid("miniprogram", "must be {\"appid\", \"pagepath\"}")),
    }
}

pub(super) fn page_path(field: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty()
        || value.len() > 1024
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            field,
            "must be a mini program page path (no spaces, at most 1024 characters)",
        ));
    }
    Ok(value.to_string())
}

/// `data`: `{key: {"value": "<string>"}}`, keys as WeChat names them (`thing1`, `keyword2`).
pub(super) fn data_map(obj: &Map<String, Value>) -> Result<BTreeMap<String, DataValue>, ApiError> {
    let data = match obj.get("data") {
        Some(Value::Object(d)) if !d.is_empty() => d,
        Some(Value::Object(_)) | None | Some(Value::Null) => {
            return Err(invalid("data", "is required and must not be empty"));
        }
        Some(_) => {
            return Err(invalid(
                "data",
                "must be an object of {\"key\": {\"value\": \"...\"}}",
            ));
        }
    };
    let mut out = BTreeMap::new();
    for (key, entry) in data {
        let field = format!("data.{key}");
        if key.is_empty()
            || key.len() > 64
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid(
                &field,
                "keys are the template's {{key.DATA}} names",
            ));
        }
        let value = match entry.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(_)) => {
                return Err(invalid(
                    format!("{field}.value"),
                    "must be a string (send \"42\", not 42)",
                ));
            }
            _ => {
                return Err(invalid(
                    format!("{field}.value"),
                    "is required and must be a string",
                ));
            }
        };
        let color = match entry.get("color") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => return Err(invalid(format!("{field}.color"), "must be a string")),
        };
        out.insert(key.clone(), DataValue { value, color });
    }
    Ok(out)
}
