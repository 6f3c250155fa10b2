//! Customer-service messages (`custom`): the msgtypes and the object each one takes, and the
//! agent (`customservice`) a message is sent as.

use super::Payload;
use super::fields::{Fields, http_url, id_like, invalid, page_path};
use crate::error::ApiError;
use crate::wechat::{
    CustomArticle, CustomArticleId, CustomBody, CustomCard, CustomLink, CustomMedia, CustomMenu,
    CustomMenuItem, CustomMiniProgramPage, CustomMusic, CustomNews, CustomService, CustomText,
    CustomVideo,
};
use serde_json::{Map, Value};

/// A custom message's own fields besides the object of each msgtype ([`CUSTOM_MSGTYPES`]).
pub(super) const CUSTOM_FIELDS: &[&str] = &["msgtype", "customservice", "fallback"];

/// Every `msgtype` a customer-service message may have (docs/wechat.md#customer-service-messages).
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

/// A `custom` message's payload: its msgtype's object and the agent, checked.
pub(super) fn custom_payload(f: &Fields<'_>) -> Result<Payload, ApiError> {
    Ok(Payload::Custom {
        body: custom_body(f)?,
        customservice: custom_service(f.obj)?,
    })
}

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
    match name {
        "text" => text(&p),
        "image" | "voice" | "mpnews" => media(&p),
        "video" => video(&p),
        "music" => music(&p),
        "news" => news(&p),
        "mpnewsarticle" => mpnewsarticle(&p),
        "msgmenu" => msgmenu(&p),
        "wxcard" => wxcard(&p),
        "miniprogrampage" => miniprogrampage(&p),
        _ => link(&p),
    }
}

fn text(p: &Part<'_>) -> Result<CustomBody, ApiError> {
    p.only(&["content"])?;
    let content = p.req("content")?;
    if content.len() > 2048 {
        return Err(invalid("text.content", "at most 2048 bytes"));
    }
    Ok(CustomBody::Text {
        text: CustomText {
            content: content.to_string(),
        },
    })
}

/// `image`, `voice` and `mpnews`: a `media_id` each.
fn media(p: &Part<'_>) -> Result<CustomBody, ApiError> {
    p.only(&["media_id"])?;
    let media = CustomMedia {
        media_id: p.id("media_id")?,
    };
    Ok(match p.name {
        "image" => CustomBody::Image { image: media },
        "voice" => CustomBody::Voice { voice: media },
        _ => CustomBody::Mpnews { mpnews: media },
    })
}

fn video(p: &Part<'_>) -> Result<CustomBody, ApiError> {
    p.only(&["media_id", "thumb_media_id", "title", "description"])?;
    Ok(CustomBody::Video {
        video: CustomVideo {
            media_id: p.id("media_id")?,
            thumb_media_id: p.id("thumb_media_id")?,
            title: p.text("title", TITLE_MAX, false)?,
            description: p.text("description", DESCRIPTION_MAX, false)?,
        },
    })
}

fn music(p: &Part<'_>) -> Result<CustomBody, ApiError> {
    p.only(&[
        "title",
        "description",
        "musicurl",
        "hqmusicurl",
        "thumb_media_id",
    ])?;
    Ok(CustomBody::Music {
        music: CustomMusic {
            title: p.text("title", TITLE_MAX, false)?,
            description: p.text("description", DESCRIPTION_MAX, false)?,
            musicurl: p.url("musicurl")?,
            hqmusicurl: p.url("hqmusicurl")?,
            thumb_media_id: p.id("thumb_media_id")?,
        },
    })
}

/// `news`: exactly one article (WeChat sends one per message).
fn news(p: &Part<'_>) -> Result<CustomBody, ApiError> {
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
    Ok(CustomBody::News {
        news: CustomNews {
            articles: vec![CustomArticle {
                title,
                description: a.text("description", DESCRIPTION_MAX, false)?,
                url,
                picurl,
            }],
        },
    })
}

fn mpnewsarticle(p: &Part<'_>) -> Result<CustomBody, ApiError> {
    p.only(&["article_id"])?;
    Ok(CustomBody::Mpnewsarticle {
        mpnewsarticle: CustomArticleId {
            article_id: p.id("article_id")?,
        },
    })
}

/// `msgmenu`: 1-10 choices of `{"id", "content"}` between an optional head and tail.
fn msgmenu(p: &Part<'_>) -> Result<CustomBody, ApiError> {
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
    let choices = list
        .iter()
        .enumerate()
        .map(|(i, item)| menu_choice(i, item))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CustomBody::Msgmenu {
        msgmenu: CustomMenu {
            head_content: p.text("head_content", DESCRIPTION_MAX, false)?,
            list: choices,
            tail_content: p.text("tail_content", DESCRIPTION_MAX, false)?,
        },
    })
}

/// The `i`-th choice of a menu, named `msgmenu.list[i]` in refusals.
fn menu_choice(i: usize, item: &Value) -> Result<CustomMenuItem, ApiError> {
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
    Ok(CustomMenuItem { id, content })
}

fn wxcard(p: &Part<'_>) -> Result<CustomBody, ApiError> {
    p.only(&["card_id"])?;
    Ok(CustomBody::Wxcard {
        wxcard: CustomCard {
            card_id: p.id("card_id")?,
        },
    })
}

fn miniprogrampage(p: &Part<'_>) -> Result<CustomBody, ApiError> {
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
    Ok(CustomBody::Miniprogrampage {
        miniprogrampage: CustomMiniProgramPage {
            title,
            appid,
            pagepath,
            thumb_media_id,
        },
    })
}

/// `link`: every field is required (mini program customer-service messages).
fn link(p: &Part<'_>) -> Result<CustomBody, ApiError> {
    p.only(&["title", "description", "url", "thumb_url"])?;
    Ok(CustomBody::Link {
        link: CustomLink {
            title: p.text("title", TITLE_MAX, true)?.unwrap_or_default(),
            description: p
                .text("description", DESCRIPTION_MAX, true)?
                .unwrap_or_default(),
            url: p.url("url")?,
            thumb_url: p.url("thumb_url")?,
        },
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
