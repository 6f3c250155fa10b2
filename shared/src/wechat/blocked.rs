//! `queryblocktmplmsg`'s answer: the template messages WeChat intercepted
//! (docs/wechat.md, Intercepted template messages).

use super::WeChatCallError;
use serde_json::Value;

/// A message WeChat intercepted (`queryblocktmplmsg`'s `msginfo`, docs/wechat.md,
/// Intercepted template messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedMessage {
    /// WeChat's id of the interception (pages go on from the largest seen).
    pub id: i64,
    pub template_id: String,
    pub title: String,
    pub content: String,
    pub sent_at: i64,
    pub openid: String,
}

impl BlockedMessage {
    /// `msginfo` of an answer: a list, or (as the documentation's example shows) one object.
    pub fn list(answer: &Value) -> Result<Vec<BlockedMessage>, WeChatCallError> {
        let entries = match answer.get("msginfo") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one) => vec![one],
        };
        entries.into_iter().map(BlockedMessage::read).collect()
    }

    fn read(e: &Value) -> Result<BlockedMessage, WeChatCallError> {
        // Numbers may come as JSON numbers or as strings of digits.
        let number = |k: &str| {
            e.get(k).and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let text = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let bad =
            |k: &str| WeChatCallError::Decode(format!("queryblocktmplmsg: msginfo without {k}"));
        Ok(BlockedMessage {
            id: number("id").ok_or_else(|| bad("id"))?,
            template_id: text("tmpl_msg_id"),
            title: text("title"),
            content: text("content"),
            sent_at: number("send_timestamp").ok_or_else(|| bad("send_timestamp"))?,
            openid: Some(text("openid"))
                .filter(|o| !o.is_empty())
                .ok_or_else(|| bad("openid"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn msginfo_is_a_list_or_one_object() {
        let one = json!({"id": 7, "tmpl_msg_id": "T", "title": "t", "content": "c",
                         "send_timestamp": 1_700_000_000, "openid": "o"});
        let list = BlockedMessage::list(&json!({"errcode": 0, "msginfo": [one.clone()]})).unwrap();
        assert_eq!(
            list,
            BlockedMessage::list(&json!({"msginfo": one})).unwrap()
        );
        assert_eq!(list[0].id, 7);
        assert_eq!(list[0].sent_at, 1_700_000_000);
        let as_text = json!({"msginfo": [{"id": "8", "send_timestamp": "9", "openid": "o"}]});
        assert_eq!(BlockedMessage::list(&as_text).unwrap()[0].id, 8);
        assert!(
            BlockedMessage::list(&json!({"errcode": 0}))
                .unwrap()
                .is_empty()
        );
        assert!(BlockedMessage::list(&json!({"msginfo": [{"id": 1}]})).is_err());
    }
}
