//! The body of `POST /v1/apps/{appid}/templates`: a template message taken from the library
//! (`template_id_short`, `keyword_names`) or a subscribe template put together from a public
//! one (`tid`, `kid_list`, `scene_desc`).

use super::{invalid, is_template_id};
use crate::error::ApiError;
use serde_json::{Map, Value};

/// What `POST /v1/apps/{appid}/templates` asks for.
pub(super) enum NewTemplate {
    Template {
        short: String,
        keyword_names: Vec<String>,
    },
    Subscribe {
        tid: String,
        kid_list: Vec<i64>,
        scene_desc: String,
    },
}

pub(super) fn parse_new(body: &[u8]) -> Result<NewTemplate, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    let allowed: &[&str] = if obj.contains_key("template_id_short") {
        &["template_id_short", "keyword_names"]
    } else if obj.contains_key("tid") {
        &["tid", "kid_list", "scene_desc"]
    } else {
        return Err(invalid(
            "template_id_short",
            "give {\"template_id_short\", \"keyword_names\"} (template messages) or {\"tid\", \"kid_list\", \"scene_desc\"} (subscribe templates)",
        ));
    };
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(extra, "is not a field of this kind of template"));
    }
    match obj.get("template_id_short") {
        Some(short) => template_message(short, obj),
        None => subscribe_template(obj),
    }
}

/// A template message from the library: its number and the keywords it keeps.
fn template_message(short: &Value, obj: &Map<String, Value>) -> Result<NewTemplate, ApiError> {
    let short = short
        .as_str()
        .filter(|s| is_template_id(s) && s.len() <= 64)
        .ok_or_else(|| {
            invalid(
                "template_id_short",
                "must be the library template's number, e.g. TM00015",
            )
        })?;
    let names = obj
        .get("keyword_names")
        .and_then(Value::as_array)
        .filter(|l| (1..=10).contains(&l.len()))
        .ok_or_else(|| {
            invalid(
                "keyword_names",
                "is required: 1-10 keyword names of the library template",
            )
        })?;
    let mut keyword_names = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        match n.as_str() {
            Some(s) if !s.trim().is_empty() && s.chars().count() <= 20 => {
                keyword_names.push(s.to_string())
            }
            _ => {
                return Err(invalid(
                    &format!("keyword_names[{i}]"),
                    "must be a keyword name of at most 20 characters",
                ));
            }
        }
    }
    Ok(NewTemplate::Template {
        short: short.to_string(),
        keyword_names,
    })
}

/// A subscribe template from a public one: its number and 2-5 of its keyword ids.
fn subscribe_template(obj: &Map<String, Value>) -> Result<NewTemplate, ApiError> {
    let tid = match obj.get("tid") {
        Some(Value::String(t))
            if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_digit()) =>
        {
            t.clone()
        }
        Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
        _ => {
            return Err(invalid(
                "tid",
                "must be the public template's number (from getpubtemplatetitles)",
            ));
        }
    };
    // WeChat combines 2-5 keywords into a subscribe template.
    let kid_list: Vec<i64> = obj
        .get("kid_list")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|k| k.as_i64().filter(|k| *k > 0))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or(None)
        .filter(|l| (2..=5).contains(&l.len()))
        .ok_or_else(|| invalid("kid_list", "must list 2-5 keyword ids (positive integers)"))?;
    let scene_desc = match obj.get("scene_desc") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 15 => s.clone(),
        Some(_) => return Err(invalid("scene_desc", "at most 15 characters")),
    };
    Ok(NewTemplate::Subscribe {
        tid,
        kid_list,
        scene_desc,
    })
}
