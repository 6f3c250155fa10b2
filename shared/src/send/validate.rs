//! The send API's request body, checked before WeChat is called: every refusal is a 422
//! naming the field (facts.md §4.1, §4.2, §4.4 for WeChat's own limits).

use crate::error::ApiError;
use crate::wechat::{
    CustomArticle, CustomArticleId, CustomBody, CustomCard, CustomLink, CustomMedia, CustomMenu,
    CustomMenuItem, CustomMiniProgramPage, CustomMusic, CustomNews, CustomService, CustomText,
    CustomVideo, DataValue, MiniProgramLink,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Template,
    Subscribe,
    /// An official account's 订阅通知 (`subscribe/bizsend`).
    OaSubscribe,
    Uniform,
    Custom,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Template => "template",
            MessageKind::Subscribe => "subscribe",
            MessageKind::OaSubscribe => "oa_subscribe",
            MessageKind::Uniform => "uniform",
            MessageKind::Custom => "custom",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    OpenId(String),
    UnionId(String),
    /// `{"openid", "appid"}`: an openid of another app — a mini program user of a `uniform`
    /// message, posted to the official account it goes out through.
    AppOpenId {
        appid: String,
        openid: String,
    },
}

/// Template fields (for `template` and `uniform`), without `touser`.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateFields {
    pub template_id: String,
    pub data: BTreeMap<String, DataValue>,
    pub url: Option<String>,
    pub miniprogram: Option<MiniProgramLink>,
    pub client_msg_id: Option<String>,
}

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

#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Template(TemplateFields),
    Subscribe(SubscribeFields),
    OaSubscribe(OaSubscribeFields),
    Custom {
        body: CustomBody,
        customservice: Option<CustomService>,
    },
}

/// A checked send request.
#[derive(Clone, Debug, PartialEq)]
pub struct SendRequest {
    pub kind: MessageKind,
    pub to: Recipient,
    pub payload: Payload,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

fn is_chinese(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}')
}

fn is_symbol(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace() && !is_chinese(c))
}

struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(name, "must be a string")),
        }
    }
    fn req_str(&self, name: &str) -> Result<&'a str, ApiError> {
        self.opt_str(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| invalid(name, "is required"))
    }
}

fn id_like(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
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

fn http_url(field: &str, value: &str) -> Result<String, ApiError> {
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
fn miniprogram_link(obj: &Map<String, Value>) -> Result<Option<MiniProgramLink>, ApiError> {
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

fn page_path(field: &str, value: &str) -> Result<String, ApiError> {
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
fn data_map(obj: &Map<String, Value>) -> Result<BTreeMap<String, DataValue>, ApiError> {
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

/// A subscribe value by its key's type (the `thing` of `thing1`), counted in characters.
pub fn check_subscribe_value(key: &str, value: &str) -> Result<(), String> {
    let kind: String = key
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
        .collect();
    let n = value.chars().count();
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let rule: Option<(bool, &str)> = match kind.as_str() {
        "thing" => Some((n <= 20, "thing: at most 20 characters")),
        "number" => Some((
            n <= 32
                && value.chars().all(|c| c.is_ascii_digit() || c == '.')
                && value.chars().filter(|c| *c == '.').count() <= 1,
            "number: at most 32 digits, a decimal point allowed",
        )),
        "letter" => Some((
            n <= 32 && value.chars().all(|c| c.is_ascii_alphabetic()),
            "letter: at most 32 letters",
        )),
        "symbol" => Some((
            n <= 5 && value.chars().all(is_symbol),
            "symbol: at most 5 symbols",
        )),
        "character_string" => Some((
            n <= 32
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || is_symbol(c)),
            "character_string: at most 32 digits, letters or symbols",
        )),
        "time" | "date" => Some((
            n <= 64 && value.chars().any(|c| c.is_ascii_digit()),
            "time/date: a date or 24-hour time such as 2019年10月1日 15:01",
        )),
        "amount" => {
            let digits = value.chars().filter(|c| c.is_ascii_digit()).count();
            let body = value.trim_end_matches('元');
            let mut chars = body.chars();
            let first = chars.next().unwrap_or(' ');
            let rest_ok = chars.all(|c| c.is_ascii_digit() || c == '.');
            Some((
                (1..=10).contains(&digits)
                    && (is_symbol(first) || first.is_ascii_digit())
                    && rest_ok,
                "amount: a currency symbol and at most 10 digits, e.g. ¥100.50",
            ))
        }
        "phone_number" => Some((
            n <= 17
                && value.chars().all(|c| {
                    c.is_ascii_digit() || c == '+' || c == '-' || c == ' ' || c == '(' || c == ')'
                }),
            "phone_number: at most 17 digits and symbols",
        )),
        "car_number" => {
            let chars: Vec<char> = value.chars().collect();
            let ok = n <= 8
                && chars.iter().enumerate().all(|(i, c)| {
                    c.is_ascii_alphanumeric()
                        || (is_chinese(*c) && (i == 0 || i + 1 == chars.len()))
                });
            Some((
                ok,
                "car_number: at most 8 characters; only the first and last may be Chinese",
            ))
        }
        "name" => {
            let ok = if value.chars().any(is_chinese) {
                n <= 10
            } else {
                n <= 20
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphabetic() || is_symbol(c) || c == ' ')
            };
            Some((ok, "name: at most 10 Chinese characters or 20 letters"))
        }
        "phrase" => Some((
            n <= 5 && value.chars().all(is_chinese),
            "phrase: at most 5 Chinese characters",
        )),
        _ => None,
    };
    match rule {
        Some((false, why)) => Err(why.to_string()),
        _ => Ok(()),
    }
}

/// One recipient as a batch lists it (`{"openid": ...}` or `{"unionid": ...}`), checked by
/// the rules of a send's `to`.
pub fn parse_recipient(value: &Value) -> Result<Recipient, ApiError> {
    let mut obj = Map::new();
    obj.insert("to".into(), value.clone());
    recipient(&obj)
}

impl Recipient {
    /// The recipient as JSON (`{"openid": ...}` / `{"unionid": ...}` / `{"openid", "appid"}`).
    pub fn to_json(&self) -> Value {
        match self {
            Recipient::OpenId(o) => serde_json::json!({ "openid": o }),
            Recipient::UnionId(u) => serde_json::json!({ "unionid": u }),
            Recipient::AppOpenId { appid, openid } => {
                serde_json::json!({ "openid": openid, "appid": appid })
            }
        }
    }
    /// A short key naming the recipient: `o:{openid}`, `u:{unionid}` or `m:{appid}:{openid}`.
    pub fn key(&self) -> String {
        match self {
            Recipient::OpenId(o) => format!("o:{o}"),
            Recipient::UnionId(u) => format!("u:{u}"),
            Recipient::AppOpenId { appid, openid } => format!("m:{appid}:{openid}"),
        }
    }
    /// The recipient a [`Recipient::key`] names.
    pub fn from_key(key: &str) -> Option<Recipient> {
        match key.split_at_checked(2)? {
            ("o:", o) if !o.is_empty() => Some(Recipient::OpenId(o.to_string())),
            ("u:", u) if !u.is_empty() => Some(Recipient::UnionId(u.to_string())),
            ("m:", rest) => {
                let (appid, openid) = rest.split_once(':')?;
                (crate::app::is_valid_appid(appid) && !openid.is_empty()).then(|| {
                    Recipient::AppOpenId {
                        appid: appid.to_string(),
                        openid: openid.to_string(),
                    }
                })
            }
            _ => None,
        }
    }
}

/// Whether a message of `kind` may go to `to`: only `uniform` names another app's openid
/// (`{"openid", "appid"}`), and a `uniform` needs that (or a unionid) — a bare openid would be
/// ambiguous between the mini program and the official account.
pub fn check_recipient(kind: MessageKind, to: &Recipient) -> Result<(), ApiError> {
    match (kind, to) {
        (MessageKind::Uniform, Recipient::OpenId(_)) => Err(invalid(
            "to",
            "a uniform message goes to a mini program user: {\"openid\": \"<mini program openid>\", \"appid\": \"<mini program appid>\"}, or {\"unionid\": ...}",
        )),
        (MessageKind::Uniform, _) | (_, Recipient::OpenId(_) | Recipient::UnionId(_)) => Ok(()),
        (_, Recipient::AppOpenId { .. }) => Err(invalid(
            "to.appid",
            "only a uniform message names the app of an openid; give the openid of the sending app, or a unionid",
        )),
    }
}

fn recipient(obj: &Map<String, Value>) -> Result<Recipient, ApiError> {
    let to = obj
        .get("to")
        .and_then(Value::as_object)
        .ok_or_else(missing_recipient)?;
    let field = |name: &str| match to.get(name) {
        None | Some(Value::Null) => IdField::Absent,
        Some(Value::String(s)) => IdField::of(s),
        Some(_) => IdField::Invalid,
    };
    ToFields {
        openid: field("openid"),
        unionid: field("unionid"),
        appid: field("appid"),
        unknown: to
            .keys()
            .find(|k| !["openid", "unionid", "appid"].contains(&k.as_str()))
            .cloned(),
    }
    .recipient()
}

/// The refusal of a recipient that is not an object.
pub fn missing_recipient() -> ApiError {
    invalid("to", "is required: {\"openid\": ...} or {\"unionid\": ...}")
}

/// An `openid` or `unionid` field of a recipient, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IdField {
    /// Absent or `null`.
    #[default]
    Absent,
    Id(String),
    /// Not a string, or not an id.
    Invalid,
}

impl IdField {
    /// A string as an id field: 1-128 bytes without whitespace or control characters.
    pub fn of(s: &str) -> IdField {
        if !s.is_empty()
            && s.len() <= 128
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            IdField::Id(s.to_string())
        } else {
            IdField::Invalid
        }
    }
}

/// A recipient object (`to`, or an entry of a batch's `recipients`) as read: its id fields
/// and its first other field name in key order.
#[derive(Clone, Debug, Default)]
pub struct ToFields {
    pub openid: IdField,
    pub unionid: IdField,
    /// The app of `openid`, for a `uniform` message to a mini program user.
    pub appid: IdField,
    pub unknown: Option<String>,
}

impl ToFields {
    /// The recipient, or the refusal naming the field: an unknown field first, then a bad
    /// `openid`, a bad `unionid`, then neither or both given.
    pub fn recipient(self) -> Result<Recipient, ApiError> {
        if let Some(extra) = self.unknown {
            return Err(invalid(
                format!("to.{extra}"),
                "unknown field; give openid or unionid",
            ));
        }
        for (name, field) in [("openid", &self.openid), ("unionid", &self.unionid)] {
            if *field == IdField::Invalid {
                return Err(invalid(
                    format!("to.{name}"),
                    "must be a non-empty id without spaces",
                ));
            }
        }
        if self.appid == IdField::Invalid {
            return Err(invalid("to.appid", "must be an appid (wx + 16 hex)"));
        }
        match (self.openid, self.unionid, self.appid) {
            (IdField::Id(o), IdField::Absent, IdField::Absent) => Ok(Recipient::OpenId(o)),
            (IdField::Absent, IdField::Id(u), IdField::Absent) => Ok(Recipient::UnionId(u)),
            (IdField::Id(openid), IdField::Absent, IdField::Id(appid))
                if crate::app::is_valid_appid(&appid) =>
            {
                Ok(Recipient::AppOpenId { appid, openid })
            }
            (IdField::Id(_), IdField::Absent, IdField::Id(_)) => {
                Err(invalid("to.appid", "must be an appid (wx + 16 hex)"))
            }
            (IdField::Absent, _, IdField::Id(_)) => Err(invalid(
                "to.appid",
                "names the app of an openid: give openid with it",
            )),
            _ => Err(invalid("to", "give exactly one of openid or unionid")),
        }
    }
}

/// Every `msgtype` a customer-service message may have (facts.md §4.4).
pub const CUSTOM_MSGTYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
    "link",
];

/// The msgtypes a mini program's customer-service messages may have (the rest are an
/// official account's).
pub const MINI_PROGRAM_CUSTOM_MSGTYPES: &[&str] = &["text", "image", "link", "miniprogrampage"];

/// The object of one msgtype, its fields named `{msgtype}.{field}` in refusals.
struct Part<'a> {
    name: &'static str,
    f: Fields<'a>,
}

impl<'a> Part<'a> {
    fn field(&self, n: &str) -> String {
        format!("{}.{n}", self.name)
    }
    fn req(&self, n: &str) -> Result<&'a str, ApiError> {
        match self.f.obj.get(n) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.as_str()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                Err(invalid(self.field(n), "is required"))
            }
            Some(_) => Err(invalid(self.field(n), "must be a string")),
        }
    }
    fn opt(&self, n: &str) -> Result<Option<String>, ApiError> {
        match self.f.obj.get(n) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(self.field(n), "must be a string")),
        }
    }
    /// A WeChat id (media_id, card_id, article_id): 1-128 characters of [A-Za-z0-9_-].
    fn id(&self, n: &str) -> Result<String, ApiError> {
        id_like(&self.field(n), self.req(n)?, 128)
    }
    fn url(&self, n: &str) -> Result<String, ApiError> {
        http_url(&self.field(n), self.req(n)?)
    }
    /// A free text of at most `max` characters.
    fn text(&self, n: &str, max: usize, required: bool) -> Result<Option<String>, ApiError> {
        let v = if required {
            Some(self.req(n)?.to_string())
        } else {
            self.opt(n)?
        };
        if let Some(t) = &v
            && t.chars().count() > max
        {
            return Err(invalid(self.field(n), format!("at most {max} characters")));
        }
        Ok(v)
    }
    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.f.obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(extra) => Err(invalid(
                self.field(extra),
                format!("is not a field of a {} message", self.name),
            )),
            None => Ok(()),
        }
    }
}

/// Titles and descriptions: WeChat documents no limit for customer-service messages; wxpush
/// refuses what no client could show (and keeps the body well under WeChat's size limits).
const TITLE_MAX: usize = 64;
const DESCRIPTION_MAX: usize = 512;

fn custom_body(f: &Fields<'_>) -> Result<CustomBody, ApiError> {
    let msgtype = f.req_str("msgtype")?;
    let Some(&name) = CUSTOM_MSGTYPES.iter().find(|t| **t == msgtype) else {
        return Err(invalid(
            "msgtype",
            format!(
                "`{}` is not one of {}",
                msgtype.chars().take(40).collect::<String>(),
                CUSTOM_MSGTYPES.join(", ")
            ),
        ));
    };
    let p = match f.obj.get(name) {
        Some(Value::Object(obj)) => Part {
            name,
            f: Fields { obj },
        },
        _ => {
            return Err(invalid(
                name,
                format!("is required for msgtype {name} and must be an object"),
            ));
        }
    };
    Ok(match name {
        "text" => {
            p.only(&["content"])?;
            let content = p.req("content")?;
            if content.len() > 2048 {
                return Err(invalid("text.content", "at most 2048 bytes"));
            }
            CustomBody::Text {
                text: CustomText {
                    content: content.to_string(),
                },
            }
        }
        "image" | "voice" | "mpnews" => {
            p.only(&["media_id"])?;
            let media = CustomMedia {
                media_id: p.id("media_id")?,
            };
            match name {
                "image" => CustomBody::Image { image: media },
                "voice" => CustomBody::Voice { voice: media },
                _ => CustomBody::Mpnews { mpnews: media },
            }
        }
        "video" => {
            p.only(&["media_id", "thumb_media_id", "title", "description"])?;
            CustomBody::Video {
                video: CustomVideo {
                    media_id: p.id("media_id")?,
                    thumb_media_id: p.id("thumb_media_id")?,
                    title: p.text("title", TITLE_MAX, false)?,
                    description: p.text("description", DESCRIPTION_MAX, false)?,
                },
            }
        }
        "music" => {
            p.only(&[
                "title",
                "description",
                "musicurl",
                "hqmusicurl",
                "thumb_media_id",
            ])?;
            CustomBody::Music {
                music: CustomMusic {
                    title: p.text("title", TITLE_MAX, false)?,
                    description: p.text("description", DESCRIPTION_MAX, false)?,
                    musicurl: p.url("musicurl")?,
                    hqmusicurl: p.url("hqmusicurl")?,
                    thumb_media_id: p.id("thumb_media_id")?,
                },
            }
        }
        "news" => {
            p.only(&["articles"])?;
            let articles =
                p.f.obj
                    .get("articles")
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == 1)
                    .ok_or_else(|| {
                        invalid(
                            "news.articles",
                            "must hold exactly one article (WeChat sends one per message)",
                        )
                    })?;
            let a = articles[0]
                .as_object()
                .map(|obj| Part {
                    name: "news.articles[0]",
                    f: Fields { obj },
                })
                .ok_or_else(|| invalid("news.articles[0]", "must be an object"))?;
            a.only(&["title", "description", "url", "picurl"])?;
            let title = a.text("title", TITLE_MAX, true)?.unwrap_or_default();
            let url = a.url("url")?;
            let picurl = a
                .opt("picurl")?
                .map(|pic| http_url("news.articles[0].picurl", &pic))
                .transpose()?;
            CustomBody::News {
                news: CustomNews {
                    articles: vec![CustomArticle {
                        title,
                        description: a.text("description", DESCRIPTION_MAX, false)?,
                        url,
                        picurl,
                    }],
                },
            }
        }
        "mpnewsarticle" => {
            p.only(&["article_id"])?;
            CustomBody::Mpnewsarticle {
                mpnewsarticle: CustomArticleId {
                    article_id: p.id("article_id")?,
                },
            }
        }
        "msgmenu" => {
            p.only(&["head_content", "list", "tail_content"])?;
            let list = match p.f.obj.get("list") {
                Some(Value::Array(items)) if !items.is_empty() && items.len() <= 10 => items,
                _ => {
                    return Err(invalid(
                        "msgmenu.list",
                        "must hold 1-10 choices of {\"id\", \"content\"}",
                    ));
                }
            };
            let mut choices = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let item_name = format!("msgmenu.list[{i}]");
                let obj = item
                    .as_object()
                    .ok_or_else(|| invalid(&item_name, "must be {\"id\", \"content\"}"))?;
                let req = |n: &str| match obj.get(n) {
                    Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                    _ => Err(invalid(
                        format!("{item_name}.{n}"),
                        "is required and must be a non-empty string",
                    )),
                };
                if let Some(extra) = obj.keys().find(|k| *k != "id" && *k != "content") {
                    return Err(invalid(
                        format!("{item_name}.{extra}"),
                        "is not a field of a menu choice",
                    ));
                }
                let id = req("id")?;
                if id.len() > 64 {
                    return Err(invalid(format!("{item_name}.id"), "at most 64 characters"));
                }
                let content = req("content")?;
                if content.chars().count() > TITLE_MAX {
                    return Err(invalid(
                        format!("{item_name}.content"),
                        format!("at most {TITLE_MAX} characters"),
                    ));
                }
                choices.push(CustomMenuItem { id, content });
            }
            CustomBody::Msgmenu {
                msgmenu: CustomMenu {
                    head_content: p.text("head_content", DESCRIPTION_MAX, false)?,
                    list: choices,
                    tail_content: p.text("tail_content", DESCRIPTION_MAX, false)?,
                },
            }
        }
        "wxcard" => {
            p.only(&["card_id"])?;
            CustomBody::Wxcard {
                wxcard: CustomCard {
                    card_id: p.id("card_id")?,
                },
            }
        }
        "miniprogrampage" => {
            p.only(&["title", "appid", "pagepath", "thumb_media_id"])?;
            let title = p.text("title", TITLE_MAX, true)?.unwrap_or_default();
            let pagepath = page_path(&p.field("pagepath"), p.req("pagepath")?)?;
            let thumb_media_id = p.id("thumb_media_id")?;
            let appid = p.opt("appid")?;
            if let Some(a) = &appid
                && !crate::app::is_valid_appid(a)
            {
                return Err(invalid(
                    "miniprogrampage.appid",
                    "must be an appid (wx + 16 hex characters)",
                ));
            }
            CustomBody::Miniprogrampage {
                miniprogrampage: CustomMiniProgramPage {
                    title,
                    appid,
                    pagepath,
                    thumb_media_id,
                },
            }
        }
        _ => {
            // "link": every field is required (mini program customer-service messages).
            p.only(&["title", "description", "url", "thumb_url"])?;
            CustomBody::Link {
                link: CustomLink {
                    title: p.text("title", TITLE_MAX, true)?.unwrap_or_default(),
                    description: p
                        .text("description", DESCRIPTION_MAX, true)?
                        .unwrap_or_default(),
                    url: p.url("url")?,
                    thumb_url: p.url("thumb_url")?,
                },
            }
        }
    })
}

/// `customservice`: `{"kf_account": "agent@account"}`, the agent the message is sent as.
fn custom_service(obj: &Map<String, Value>) -> Result<Option<CustomService>, ApiError> {
    match obj.get("customservice") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(cs)) => {
            if let Some(extra) = cs.keys().find(|k| *k != "kf_account") {
                return Err(invalid(
                    format!("customservice.{extra}"),
                    "unknown field; give kf_account",
                ));
            }
            match cs.get("kf_account") {
                Some(Value::String(k))
                    if k.len() <= 128
                        && k.split_once('@')
                            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
                        && !k.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    Ok(Some(CustomService {
                        kf_account: k.clone(),
                    }))
                }
                _ => Err(invalid(
                    "customservice.kf_account",
                    "is required: the agent's full account, prefix@account",
                )),
            }
        }
        Some(_) => Err(invalid(
            "customservice",
            "must be {\"kf_account\": \"...\"}",
        )),
    }
}

const COMMON: &[&str] = &["type", "to"];
const TEMPLATE_FIELDS: &[&str] = &["template_id", "data", "url", "miniprogram", "client_msg_id"];
const SUBSCRIBE_FIELDS: &[&str] = &["template_id", "data", "page", "miniprogram_state", "lang"];
const OA_SUBSCRIBE_FIELDS: &[&str] = &["template_id", "data", "page", "miniprogram"];
/// A custom message's own fields besides the object of each msgtype ([`CUSTOM_MSGTYPES`]).
const CUSTOM_FIELDS: &[&str] = &["msgtype", "customservice"];

/// Parses and checks a send body. Malformed JSON is a 400; everything else a 422 naming the field.
pub fn parse_send_request(body: &[u8]) -> Result<SendRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    let f = Fields { obj };
    let kind = match f.req_str("type")? {
        "template" => MessageKind::Template,
        "subscribe" => MessageKind::Subscribe,
        "oa_subscribe" => MessageKind::OaSubscribe,
        "uniform" => MessageKind::Uniform,
        "custom" => MessageKind::Custom,
        other => {
            return Err(invalid(
                "type",
                format!(
                    "`{other}` is not one of template, subscribe, oa_subscribe, uniform, custom"
                ),
            ));
        }
    };
    let (allowed, objects): (&[&str], &[&str]) = match kind {
        MessageKind::Template | MessageKind::Uniform => (TEMPLATE_FIELDS, &[]),
        MessageKind::Subscribe => (SUBSCRIBE_FIELDS, &[]),
        MessageKind::OaSubscribe => (OA_SUBSCRIBE_FIELDS, &[]),
        MessageKind::Custom => (CUSTOM_FIELDS, CUSTOM_MSGTYPES),
    };
    if let Some(extra) = obj.keys().find(|k| {
        let k = k.as_str();
        !COMMON.contains(&k) && !allowed.contains(&k) && !objects.contains(&k)
    }) {
        return Err(invalid(
            extra.as_str(),
            format!("is not a field of a {} message", kind.as_str()),
        ));
    }
    let to = recipient(obj)?;
    if matches!(to, Recipient::AppOpenId { .. }) {
        check_recipient(kind, &to)?;
    }
    let payload = match kind {
        MessageKind::Template | MessageKind::Uniform => {
            let template_id = id_like("template_id", f.req_str("template_id")?, 128)?;
            let data = data_map(obj)?;
            check_template_values(&data)?;
            let url = f.opt_str("url")?.map(|u| http_url("url", u)).transpose()?;
            let miniprogram = miniprogram_link(obj)?;
            let client_msg_id = f
                .opt_str("client_msg_id")?
                .map(|c| id_like("client_msg_id", c, 64))
                .transpose()?;
            Payload::Template(TemplateFields {
                template_id,
                data,
                url,
                miniprogram,
                client_msg_id,
            })
        }
        MessageKind::Subscribe => {
            let template_id = id_like("template_id", f.req_str("template_id")?, 128)?;
            let data = data_map(obj)?;
            for (key, v) in &data {
                check_subscribe_value(key, &v.value)
                    .map_err(|why| invalid(format!("data.{key}.value"), why))?;
            }
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
            Payload::Subscribe(SubscribeFields {
                template_id,
                data,
                page,
                miniprogram_state,
                lang,
            })
        }
        MessageKind::OaSubscribe => {
            let template_id = id_like("template_id", f.req_str("template_id")?, 128)?;
            let data = data_map(obj)?;
            for (key, v) in &data {
                check_subscribe_value(key, &v.value)
                    .map_err(|why| invalid(format!("data.{key}.value"), why))?;
            }
            Payload::OaSubscribe(OaSubscribeFields {
                template_id,
                data,
                page: f
                    .opt_str("page")?
                    .map(|u| http_url("page", u))
                    .transpose()?,
                miniprogram: miniprogram_link(obj)?,
            })
        }
        MessageKind::Custom => Payload::Custom {
            body: custom_body(&f)?,
            customservice: custom_service(obj)?,
        },
    };
    Ok(SendRequest { kind, to, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(body: Value) -> String {
        match parse_send_request(body.to_string().as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn valid_requests() {
        let t = parse_send_request(json!({"type": "template", "to": {"openid": "o1"}, "template_id": "T-1_x", "data": {"thing1": {"value": "到货了"}}, "url": "https://example.com/a"}).to_string().as_bytes()).unwrap();
        assert_eq!(t.kind, MessageKind::Template);
        let s = parse_send_request(json!({"type": "subscribe", "to": {"unionid": "u1"}, "template_id": "T", "page": "pages/index?x=1", "data": {"phrase1": {"value": "配送中"}, "number2": {"value": "339208499"}, "amount3": {"value": "¥100.50元"}, "time4": {"value": "2019年10月1日 15:01"}}}).to_string().as_bytes()).unwrap();
        assert_eq!(s.to, Recipient::UnionId("u1".into()));
        let c = parse_send_request(json!({"type": "custom", "to": {"openid": "o"}, "msgtype": "text", "text": {"content": "你好"}}).to_string().as_bytes()).unwrap();
        assert!(matches!(
            c.payload,
            Payload::Custom {
                body: CustomBody::Text { .. },
                ..
            }
        ));
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(
            field_of(json!({"type": "fax", "to": {"openid": "o"}})),
            "type"
        );
        assert_eq!(
            field_of(
                json!({"type": "template", "to": {}, "template_id": "T", "data": {"a": {"value": "b"}}})
            ),
            "to"
        );
        assert_eq!(
            field_of(
                json!({"type": "template", "to": {"openid": "o", "unionid": "u"}, "template_id": "T", "data": {"a": {"value": "b"}}})
            ),
            "to"
        );
        assert_eq!(
            field_of(
                json!({"type": "template", "to": {"openid": "o"}, "data": {"a": {"value": "b"}}})
            ),
            "template_id"
        );
        assert_eq!(
            field_of(json!({"type": "template", "to": {"openid": "o"}, "template_id": "T"})),
            "data"
        );
        assert_eq!(
            field_of(
                json!({"type": "template", "to": {"openid": "o"}, "template_id": "T", "data": {"a": {"value": 42}}})
            ),
            "data.a.value"
        );
        assert_eq!(
            field_of(
                json!({"type": "template", "to": {"openid": "o"}, "template_id": "T", "data": {"a": {"value": "一二三四五六七八九十一二三四五六七八九十一"}}})
            ),
            "data.a.value"
        );
        assert_eq!(
            field_of(
                json!({"type": "template", "to": {"openid": "o"}, "template_id": "T", "data": {"a": {"value": "x"}}, "url": "javascript:alert(1)"})
            ),
            "url"
        );
        assert_eq!(
            field_of(
                json!({"type": "template", "to": {"openid": "o"}, "template_id": "T", "data": {"a": {"value": "x"}}, "page": "p"})
            ),
            "page"
        );
        assert_eq!(
            field_of(
                json!({"type": "subscribe", "to": {"openid": "o"}, "template_id": "T", "data": {"phrase1": {"value": "abc"}}})
            ),
            "data.phrase1.value"
        );
        assert_eq!(
            field_of(
                json!({"type": "subscribe", "to": {"openid": "o"}, "template_id": "T", "data": {"thing1": {"value": "x"}}, "lang": "fr"})
            ),
            "lang"
        );
        assert_eq!(
            field_of(
                json!({"type": "custom", "to": {"openid": "o"}, "msgtype": "text", "text": {}})
            ),
            "text.content"
        );
        assert_eq!(
            field_of(
                json!({"type": "custom", "to": {"openid": "o"}, "msgtype": "news", "news": {"articles": []}})
            ),
            "news.articles"
        );
        assert!(matches!(
            parse_send_request(b"{not json"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn custom_types_and_their_fields() {
        let custom = |msgtype: &str, object: Value| {
            let mut body = json!({"type": "custom", "to": {"openid": "o"}, "msgtype": msgtype});
            body[msgtype] = object;
            body
        };
        let ok = parse_send_request(
            custom("video", json!({"media_id": "M1", "thumb_media_id": "T1"}))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let Payload::Custom {
            body,
            customservice,
        } = ok.payload
        else {
            panic!()
        };
        assert_eq!((body.msgtype(), customservice), ("video", None));
        let mut with_agent = custom("text", json!({"content": "hi"}));
        with_agent["customservice"] = json!({"kf_account": "a@b"});
        assert!(matches!(
            parse_send_request(with_agent.to_string().as_bytes())
                .unwrap()
                .payload,
            Payload::Custom {
                customservice: Some(CustomService { .. }),
                ..
            }
        ));
        assert_eq!(field_of(custom("voice", json!({}))), "voice.media_id");
        assert_eq!(field_of(custom("voice", json!(null))), "voice");
        assert_eq!(
            field_of(custom(
                "music",
                json!({"musicurl": "https://a.example.com/x", "hqmusicurl": "https://a.example.com/y"})
            )),
            "music.thumb_media_id"
        );
        assert_eq!(
            field_of(custom(
                "msgmenu",
                json!({"list": [{"id": "1", "content": "a", "x": 1}]})
            )),
            "msgmenu.list[0].x"
        );
        assert_eq!(
            field_of(custom(
                "link",
                json!({"title": "t", "description": "d", "url": "https://a.example.com", "thumb_url": "nope"})
            )),
            "link.thumb_url"
        );
        assert_eq!(
            field_of(custom(
                "video",
                json!({"media_id": "M", "thumb_media_id": "T", "title": "字".repeat(65)})
            )),
            "video.title"
        );
        assert_eq!(
            field_of(custom("wxcard", json!({"card_id": "c", "extra": 1}))),
            "wxcard.extra"
        );
    }

    #[test]
    fn subscribe_limits_count_characters_not_bytes() {
        assert!(check_subscribe_value("thing1", &"字".repeat(20)).is_ok());
        assert!(check_subscribe_value("thing1", &"字".repeat(21)).is_err());
        assert!(check_subscribe_value("phrase1", "配送中").is_ok());
        assert!(check_subscribe_value("name1", "张三").is_ok());
        assert!(check_subscribe_value("name1", &"张".repeat(11)).is_err());
        assert!(check_subscribe_value("car_number1", "粤A8Z888挂").is_ok());
        assert!(check_subscribe_value("car_number1", "粤A8中888").is_err());
        assert!(check_subscribe_value("phone_number1", "+86-0766-66888866").is_ok());
        assert!(check_subscribe_value("character_string1", "订单").is_err());
        assert!(check_subscribe_value("keyword1", "anything goes").is_ok());
    }

    #[test]
    fn a_mini_program_user_is_named_with_its_app_for_uniform_only() {
        let app = "wx0123456789abcdef";
        let body = |kind: &str| {
            json!({"type": kind, "to": {"openid": "mp:o", "appid": app}, "template_id": "T",
                   "data": {"a": {"value": "b"}}})
            .to_string()
        };
        let req = parse_send_request(body("uniform").as_bytes()).unwrap();
        let to = Recipient::AppOpenId {
            appid: app.into(),
            openid: "mp:o".into(),
        };
        assert_eq!(req.to, to);
        assert_eq!(Recipient::from_key(&to.key()), Some(to.clone()));
        assert_eq!(to.to_json(), json!({"openid": "mp:o", "appid": app}));
        for r in [
            Recipient::OpenId("o".into()),
            Recipient::UnionId("u".into()),
        ] {
            assert_eq!(Recipient::from_key(&r.key()), Some(r));
        }
        assert_eq!(Recipient::from_key("m:nope:o"), None);
        assert!(matches!(
            parse_send_request(body("template").as_bytes()),
            Err(ApiError::Validation { field, .. }) if field == "to.appid"
        ));
        assert!(check_recipient(MessageKind::Uniform, &Recipient::OpenId("o".into())).is_err());
        assert!(check_recipient(MessageKind::Uniform, &Recipient::UnionId("u".into())).is_ok());
    }
}
