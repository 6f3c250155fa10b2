//! Subscribe messages: a mini program's (`subscribe`) and an official account's 订阅通知
//! (`oa_subscribe`), with the rules their values follow by key type (`thing1`, `time2`…).

use super::fields::{Fields, data_map, http_url, id_like, invalid, miniprogram_link, page_path};
use crate::error::ApiError;
use crate::wechat::{DataValue, MiniProgramLink};
use std::collections::BTreeMap;

/// The fields of a mini program's subscribe message besides `type` and `to`.
pub(super) const SUBSCRIBE_FIELDS: &[&str] = &[
    "template_id",
    "data",
    "page",
    "miniprogram_state",
    "lang",
    "require_grant",
];
/// The fields of an official account's subscribe notification besides `type` and `to`.
pub(super) const OA_SUBSCRIBE_FIELDS: &[&str] = &[
    "template_id",
    "data",
    "page",
    "miniprogram",
    "require_grant",
];

/// A mini program's subscribe message, without `touser`.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeFields {
    pub template_id: String,
    pub data: BTreeMap<String, DataValue>,
    pub page: Option<String>,
    pub miniprogram_state: Option<String>,
    pub lang: Option<String>,
}

/// An official account's subscribe notification (`subscribe/bizsend`), without `touser`.
#[derive(Clone, Debug, PartialEq)]
pub struct OaSubscribeFields {
    pub template_id: String,
    pub data: BTreeMap<String, DataValue>,
    /// A web page (http/https URL) the notification opens.
    pub page: Option<String>,
    pub miniprogram: Option<MiniProgramLink>,
}

fn is_chinese(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}')
}

fn is_symbol(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace() && !is_chinese(c))
}

/// A subscribe value by its key's type (the `thing` of `thing1`), counted in characters.
pub fn check_subscribe_value(key: &str, value: &str) -> Result<(), String> {
    let kind: String = key
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
        .collect();
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    match value_rule(&kind, value) {
        Some((false, why)) => Err(why.to_string()),
        _ => Ok(()),
    }
}

/// The rule of a value type: whether `value` keeps it, and the rule in words. `None` for a
/// type without a rule of its own (`keyword1`…).
fn value_rule(kind: &str, value: &str) -> Option<(bool, &'static str)> {
    let n = value.chars().count();
    Some(match kind {
        "thing" => (n <= 20, "thing: at most 20 characters"),
        "number" => (
            n <= 32
                && value.chars().all(|c| c.is_ascii_digit() || c == '.')
                && value.chars().filter(|c| *c == '.').count() <= 1,
            "number: at most 32 digits, a decimal point allowed",
        ),
        "letter" => (
            n <= 32 && value.chars().all(|c| c.is_ascii_alphabetic()),
            "letter: at most 32 letters",
        ),
        "symbol" => (
            n <= 5 && value.chars().all(is_symbol),
            "symbol: at most 5 symbols",
        ),
        "character_string" => (
            n <= 32
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || is_symbol(c)),
            "character_string: at most 32 digits, letters or symbols",
        ),
        "time" | "date" => (
            n <= 64 && value.chars().any(|c| c.is_ascii_digit()),
            "time/date: a date or 24-hour time such as 2019年10月1日 15:01",
        ),
        "amount" => (
            is_amount(value),
            "amount: a currency symbol and at most 10 digits, e.g. ¥100.50",
        ),
        "phone_number" => (
            n <= 17
                && value.chars().all(|c| {
                    c.is_ascii_digit() || c == '+' || c == '-' || c == ' ' || c == '(' || c == ')'
                }),
            "phone_number: at most 17 digits and symbols",
        ),
        "car_number" => (
            n <= 8 && is_car_number(value),
            "car_number: at most 8 characters; only the first and last may be Chinese",
        ),
        "name" => (
            is_name(value),
            "name: at most 10 Chinese characters or 20 letters",
        ),
        "phrase" => (
            n <= 5 && value.chars().all(is_chinese),
            "phrase: at most 5 Chinese characters",
        ),
        _ => return None,
    })
}

/// A currency symbol (or a digit) first, then digits and a decimal point, 1-10 digits in
/// all, an optional 元 at the end.
fn is_amount(value: &str) -> bool {
    let digits = value.chars().filter(|c| c.is_ascii_digit()).count();
    let body = value.trim_end_matches('元');
    let mut chars = body.chars();
    let first = chars.next().unwrap_or(' ');
    let rest_ok = chars.all(|c| c.is_ascii_digit() || c == '.');
    (1..=10).contains(&digits) && (is_symbol(first) || first.is_ascii_digit()) && rest_ok
}

/// Letters and digits, a Chinese character allowed first and last only.
fn is_car_number(value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    chars.iter().enumerate().all(|(i, c)| {
        c.is_ascii_alphanumeric() || (is_chinese(*c) && (i == 0 || i + 1 == chars.len()))
    })
}

/// At most 10 characters with a Chinese one among them, else at most 20 letters, symbols
/// and spaces.
fn is_name(value: &str) -> bool {
    let n = value.chars().count();
    if value.chars().any(is_chinese) {
        n <= 10
    } else {
        n <= 20
            && value
                .chars()
                .all(|c| c.is_ascii_alphabetic() || is_symbol(c) || c == ' ')
    }
}

/// `template_id` and `data` with each value checked by its key's type.
fn template_and_data(f: &Fields<'_>) -> Result<(String, BTreeMap<String, DataValue>), ApiError> {
    let template_id = id_like("template_id", f.req_str("template_id")?, 128)?;
    let data = data_map(f.obj)?;
    for (key, v) in &data {
        check_subscribe_value(key, &v.value)
            .map_err(|why| invalid(format!("data.{key}.value"), why))?;
    }
    Ok((template_id, data))
}

/// The fields of a mini program's subscribe message, checked.
pub(super) fn subscribe_fields(f: &Fields<'_>) -> Result<SubscribeFields, ApiError> {
    let (template_id, data) = template_and_data(f)?;
    let page = f
        .opt_str("page")?
        .map(|p| page_path("page", p))
        .transpose()?;
    let miniprogram_state = f.opt_str("miniprogram_state")?.map(str::to_string);
    if let Some(s) = &miniprogram_state
        && !matches!(s.as_str(), "developer" | "trial" | "formal")
    {
        return Err(invalid(
            "miniprogram_state",
            "must be developer, trial or formal",
        ));
    }
    let lang = f.opt_str("lang")?.map(str::to_string);
    if let Some(l) = &lang
        && !matches!(l.as_str(), "zh_CN" | "en_US" | "zh_HK" | "zh_TW")
    {
        return Err(invalid("lang", "must be zh_CN, en_US, zh_HK or zh_TW"));
    }
    Ok(SubscribeFields {
        template_id,
        data,
        page,
        miniprogram_state,
        lang,
    })
}

/// The fields of an official account's subscribe notification, checked.
pub(super) fn oa_subscribe_fields(f: &Fields<'_>) -> Result<OaSubscribeFields, ApiError> {
    let (template_id, data) = template_and_data(f)?;
    Ok(OaSubscribeFields {
        template_id,
        data,
        page: f
            .opt_str("page")?
            .map(|u| http_url("page", u))
            .transpose()?,
        miniprogram: miniprogram_link(f.obj)?,
    })
}
