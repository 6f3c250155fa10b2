//! The emulator pushing back, as WeChat does: the events of a delivered template message
//! (`TEMPLATESENDJOBFINISH`) or subscribe message (`subscribe_msg_sent_event`), a user's
//! follow / unfollow (`subscribe` / `unsubscribe`), message, menu click (`CLICK`) and scan
//! (`SCAN`), to the app's callback URL — signed with its
//! callback Token, and encrypted (safe mode) when the app has an EncodingAESKey and is not in
//! plaintext mode. Like WeChat, it tries 3 times in all when the answer is not a 200 within
//! 5 s (docs/wechat.md#answering-retries-and-dedupe).

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_shared::callback::crypto::MsgCrypt;
use wxpush_shared::callback::signature;

/// What the app's callback is configured with (the same apps file as wxpush's).
#[derive(Clone)]
pub struct CallbackKeys {
    pub token: String,
    pub encoding_aes_key: Option<String>,
    /// `safe` or `compatible` mode: pushes are encrypted.
    pub encrypted: bool,
}

/// One event to push.
#[derive(Clone, Debug)]
pub struct Push {
    pub appid: String,
    pub openid: String,
    pub event: String,
    /// The plaintext XML, as WeChat writes it.
    pub xml: String,
}

/// Attempts per push, and how long each may take (WeChat: 5 s, 3 tries in all).
pub const PUSH_ATTEMPTS: u32 = 3;
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

fn cdata(v: &str) -> String {
    format!("<![CDATA[{}]]>", v.replace("]]>", "]]]]><![CDATA[>"))
}

/// The head every event shares: the account's original id (`gh_` + the appid's hex), the
/// user, the time and `MsgType` `event`.
fn event_head(appid: &str, openid: &str, now: i64, event: &str) -> String {
    format!(
        "<ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{now}</CreateTime>\
         <MsgType>{}</MsgType><Event>{}</Event>",
        cdata(&format!("gh_{}", appid.trim_start_matches("wx"))),
        cdata(openid),
        cdata("event"),
        cdata(event),
    )
}

impl Push {
    pub fn template_finished(
        appid: &str,
        openid: &str,
        msgid: i64,
        status: &str,
        now: i64,
    ) -> Push {
        Push {
            appid: appid.into(),
            openid: openid.into(),
            event: "TEMPLATESENDJOBFINISH".into(),
            xml: format!(
                "<xml>{}<MsgID>{msgid}</MsgID><Status>{}</Status></xml>",
                event_head(appid, openid, now, "TEMPLATESENDJOBFINISH"),
                cdata(status)
            ),
        }
    }

    pub fn subscribe_sent(
        appid: &str,
        openid: &str,
        template_id: &str,
        msgid: i64,
        now: i64,
    ) -> Push {
        Push {
            appid: appid.into(),
            openid: openid.into(),
            event: "subscribe_msg_sent_event".into(),
            xml: format!(
                "<xml>{}<SubscribeMsgSentEvent><List><TemplateId>{}</TemplateId><MsgID>{msgid}</MsgID>\
                 <ErrorCode>0</ErrorCode><ErrorStatus>{}</ErrorStatus></List></SubscribeMsgSentEvent></xml>",
                event_head(appid, openid, now, "subscribe_msg_sent_event"),
                cdata(template_id),
                cdata("success")
            ),
        }
    }

    /// The user accepted `count` messages of a subscribe template (`wx.requestSubscribeMessage`,
    /// or an official account's `wx-open-subscribe`): one `accept` entry per acceptance.
    pub fn popup_accepted(
        appid: &str,
        openid: &str,
        template_id: &str,
        count: u32,
        now: i64,
    ) -> Push {
        let entry = format!(
            "<List><TemplateId>{}</TemplateId><SubscribeStatusString>{}</SubscribeStatusString>\
             <PopupScene>0</PopupScene></List>",
            cdata(template_id),
            cdata("accept")
        );
        Push {
            appid: appid.into(),
            openid: openid.into(),
            event: "subscribe_msg_popup_event".into(),
            xml: format!(
                "<xml>{}<SubscribeMsgPopupEvent>{}</SubscribeMsgPopupEvent></xml>",
                event_head(appid, openid, now, "subscribe_msg_popup_event"),
                entry.repeat(count as usize)
            ),
        }
    }

    /// `subscribe` (`follow`) or `unsubscribe`.
    pub fn follow(appid: &str, openid: &str, follow: bool, now: i64) -> Push {
        let event = if follow { "subscribe" } else { "unsubscribe" };
        Push {
            appid: appid.into(),
            openid: openid.into(),
            event: event.into(),
            xml: format!(
                "<xml>{}<EventKey>{}</EventKey></xml>",
                event_head(appid, openid, now, event),
                cdata("")
            ),
        }
    }

    /// The user sent a text message (`MsgType` `text`, with its `MsgId`).
    pub fn text_message(appid: &str, openid: &str, content: &str, msgid: i64, now: i64) -> Push {
        Push {
            appid: appid.into(),
            openid: openid.into(),
            event: "text".into(),
            xml: format!(
                "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{now}</CreateTime>\
                 <MsgType>{}</MsgType><Content>{}</Content><MsgId>{msgid}</MsgId></xml>",
                cdata(&format!("gh_{}", appid.trim_start_matches("wx"))),
                cdata(openid),
                cdata("text"),
                cdata(content),
            ),
        }
    }

    /// A menu event with an `EventKey`: `CLICK` (the menu key), `SCAN` (the QR scene).
    pub fn keyed_event(appid: &str, openid: &str, event: &str, key: &str, now: i64) -> Push {
        Push {
            appid: appid.into(),
            openid: openid.into(),
            event: event.into(),
            xml: format!(
                "<xml>{}<EventKey>{}</EventKey></xml>",
                event_head(appid, openid, now, event),
                cdata(key)
            ),
        }
    }

    /// The query string and body WeChat would send for this push to an app with `keys`.
    pub fn request(
        &self,
        keys: &CallbackKeys,
        now: i64,
    ) -> Result<(Vec<(String, String)>, String), String> {
        let timestamp = now.to_string();
        let nonce = rand::random::<u32>().to_string();
        let mut query = vec![
            (
                "signature".to_string(),
                signature::compute(&[&keys.token, &timestamp, &nonce]),
            ),
            ("timestamp".to_string(), timestamp.clone()),
            ("nonce".to_string(), nonce.clone()),
            ("openid".to_string(), self.openid.clone()),
        ];
        let aes_key = keys.encoding_aes_key.as_deref().filter(|_| keys.encrypted);
        let Some(aes_key) = aes_key else {
            return Ok((query, self.xml.clone()));
        };
        let crypt = MsgCrypt::new(aes_key).map_err(|e| format!("encoding_aes_key: {e}"))?;
        let encrypt = crypt.encrypt(&self.xml, &self.appid, &rand::random::<[u8; 16]>());
        query.push(("encrypt_type".into(), "aes".into()));
        query.push((
            "msg_signature".into(),
            signature::compute(&[&keys.token, &timestamp, &nonce, &encrypt]),
        ));
        let body = format!(
            "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
            cdata(&format!("gh_{}", self.appid.trim_start_matches("wx"))),
            cdata(&encrypt)
        );
        Ok((query, body))
    }
}

/// Sends `push` to `{base}/{appid}` up to [`PUSH_ATTEMPTS`] times; the outcome, for
/// `GET /sandbox/pushes`.
pub async fn send(
    http: &reqwest::Client,
    base: &str,
    keys: &CallbackKeys,
    push: &Push,
    now: i64,
) -> Value {
    let url = format!("{}/{}", base.trim_end_matches('/'), push.appid);
    let mut last = String::new();
    for attempt in 1..=PUSH_ATTEMPTS {
        let (query, body) = match push.request(keys, now) {
            Ok(r) => r,
            Err(e) => {
                last = e;
                break;
            }
        };
        let answer = http
            .post(&url)
            .query(&query)
            .header("content-type", "text/xml")
            .timeout(PUSH_TIMEOUT)
            .body(body)
            .send()
            .await;
        match answer {
            Ok(resp) if resp.status().is_success() => {
                let text = resp.text().await.unwrap_or_default();
                return json!({"appid": push.appid, "openid": push.openid, "event": push.event,
                              "status": "delivered", "attempts": attempt, "answer": text, "at": now});
            }
            Ok(resp) => last = format!("HTTP {}", resp.status().as_u16()),
            Err(e) => last = e.without_url().to_string(),
        }
        if attempt < PUSH_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    json!({"appid": push.appid, "openid": push.openid, "event": push.event,
           "status": "failed", "attempts": PUSH_ATTEMPTS, "error": last, "at": now})
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_shared::callback::message::parse_message;

    #[test]
    fn pushes_parse_as_wechat_events_and_decrypt_with_the_apps_key() {
        let appid = "wx0123456789abcdef";
        let push = Push::subscribe_sent(appid, "o1", "tpl]]>1", 42, 1_700_000_000);
        let msg = parse_message(&push.xml).unwrap();
        assert_eq!(msg.event(), Some("subscribe_msg_sent_event"));
        assert_eq!(msg.fields.subscribe_items[0].template_id, "tpl]]>1");
        assert_eq!(msg.fields.subscribe_items[0].msg_id.as_deref(), Some("42"));
        let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let keys = CallbackKeys {
            token: "tok".into(),
            encoding_aes_key: Some(key.into()),
            encrypted: true,
        };
        let (query, body) = push.request(&keys, 1_700_000_000).unwrap();
        let q: std::collections::HashMap<_, _> = query.into_iter().collect();
        assert_eq!(q["encrypt_type"], "aes");
        let encrypt = body
            .split("<Encrypt><![CDATA[")
            .nth(1)
            .unwrap()
            .split("]]>")
            .next()
            .unwrap();
        assert!(signature::verify(
            &q["msg_signature"],
            &["tok", &q["timestamp"], &q["nonce"], encrypt]
        ));
        let plain = MsgCrypt::new(key).unwrap().decrypt(encrypt, appid).unwrap();
        assert_eq!(plain, push.xml);
        let finished = Push::template_finished(appid, "o1", 7, "failed:user block", 1);
        let msg = parse_message(&finished.xml).unwrap();
        assert_eq!(msg.fields.msg_id.as_deref(), Some("7"));
        assert_eq!(msg.fields.status.as_deref(), Some("failed:user block"));
        assert_eq!(
            parse_message(&Push::follow(appid, "o2", false, 1).xml)
                .unwrap()
                .event(),
            Some("unsubscribe")
        );
    }
}
