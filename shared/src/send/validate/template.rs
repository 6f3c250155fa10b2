//! A template message (`template`, and `uniform`, which goes out as one): its fields and
//! the 2023 rules for their values.

use super::fields::{Fields, data_map, http_url, id_like, invalid, miniprogram_link};
use crate::error::ApiError;
use crate::wechat::{DataValue, MiniProgramLink};
use std::collections::BTreeMap;

/// The fields of a template message besides `type` and `to`.
pub(super) const TEMPLATE_FIELDS: &[&str] =
    &["template_id", "data", "url", "miniprogram", "client_msg_id"];

/// Template fields (for `template` and `uniform`), without `touser`.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateFields {
    pub template_id: String,
    pub data: BTreeMap<String, DataValue>,
    pub url: Option<String>,
    pub miniprogram: Option<MiniProgramLink>,
    pub client_msg_id: Option<String>,
}

/// The 2023 template rules: at most 20 characters a field and no line breaks (WeChat would
/// truncate silently; wxpush refuses instead). `first` and `remark` are no longer shown and
/// are left alone.
fn check_template_values(data: &BTreeMap<String, DataValue>) -> Result<(), ApiError> {
    for (key, v) in data {
        if key == "first" || key == "remark" {
            continue;
        }
        if v.value.trim().is_empty() {
            return Err(invalid(format!("data.{key}.value"), "must not be empty"));
        }
        if v.value.chars().count() > 20 {
            return Err(invalid(
                format!("data.{key}.value"),
                "template fields hold at most 20 characters since 2023-05-04",
            ));
        }
        if v.value.contains(['\n', '\r']) {
            return Err(invalid(
                format!("data.{key}.value"),
                "template fields may not contain line breaks",
            ));
        }
    }
    Ok(())
}

/// The fields of a template message, checked.
pub(super) fn template_fields(f: &Fields<'_>) -> Result<TemplateFields, ApiError> {
    let template_id = id_like("template_id", f.req_str("template_id")?, 128)?;
    let data = data_map(f.obj)?;
    check_template_values(&data)?;
    let url = f.opt_str("url")?.map(|u| http_url("url", u)).transpose()?;
    let miniprogram = miniprogram_link(f.obj)?;
    let client_msg_id = f
        .opt_str("client_msg_id")?
        .map(|c| id_like("client_msg_id", c, 64))
        .transpose()?;
    Ok(TemplateFields {
        template_id,
        data,
        url,
        miniprogram,
        client_msg_id,
    })
}
