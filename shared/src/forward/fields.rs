//! Every field of a push as JSON, for the forwarded event's `message`: a JSON push as it
//! came, an XML push element by element. The callback's own parser (`callback::message`)
//! reads only the fields wxpush acts on; this runs in the worker, off the callback's path.

use quick_xml::events::Event;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Elements deeper than this are refused (WeChat's pushes are three levels deep).
const MAX_DEPTH: usize = 16;

/// The push's fields: the JSON object of a JSON push, or the XML root's children, where a
/// leaf element is its text (a string, as WeChat wrote it: `"CreateTime": "1700000000"`), an
/// element with children an object, and a name repeated among siblings an array. `List`
/// (the entries of the subscribe-message events) is always an array, even with one entry.
pub fn message_fields(body: &str) -> Result<Map<String, Value>, String> {
    match body.trim_start().chars().next() {
        Some('{') => match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err("the JSON body is not an object".into()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        },
        Some('<') => xml_fields(body),
        _ => Err("expected an XML or JSON body".into()),
    }
}

/// An element being read: its name, its children so far, its text so far.
struct Open {
    name: String,
    children: Map<String, Value>,
    /// Names seen more than once among the children (their value is an array).
    repeated: HashSet<String>,
    text: String,
}

impl Open {
    fn new(name: String) -> Open {
        Open {
            name,
            children: Map::new(),
            repeated: HashSet::new(),
            text: String::new(),
        }
    }

    /// The element's value once closed: its children, or else its text as WeChat sent it.
    fn into_value(self) -> Value {
        if self.children.is_empty() {
            Value::String(self.text)
        } else {
            Value::Object(self.children)
        }
    }

    fn add(&mut self, name: String, value: Value) {
        let always_list = name == "List";
        match self.children.get_mut(&name) {
            None if always_list => {
                self.children.insert(name, Value::Array(vec![value]));
            }
            None => {
                self.children.insert(name, value);
            }
            Some(existing) => {
                if !always_list && !self.repeated.contains(&name) {
                    // The second sibling of this name: the first becomes an array's head.
                    let first = existing.take();
                    *existing = Value::Array(vec![first]);
                    self.repeated.insert(name);
                }
                if let Value::Array(items) = existing {
                    items.push(value);
                }
            }
        }
    }
}

fn xml_fields(body: &str) -> Result<Map<String, Value>, String> {
    let invalid = |e: &dyn std::fmt::Display| format!("invalid XML: {e}");
    let mut reader = quick_xml::Reader::from_str(body);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Map<String, Value>> = None;
    let name_of = |raw: &str| raw.to_string();
    // Bounded by the body: every turn consumes at least one event of it.
    loop {
        match reader.read_event().map_err(|e| invalid(&e))? {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(invalid(&"more than one root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(invalid(&"elements nested too deeply"));
                }
                stack.push(Open::new(name_of(e.name().as_ref())));
            }
            Event::Empty(e) => match stack.last_mut() {
                Some(parent) => {
                    parent.add(name_of(e.name().as_ref()), Value::String(String::new()))
                }
                None if root.is_some() => return Err(invalid(&"more than one root element")),
                None => root = Some(Map::new()),
            },
            Event::Text(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let Some(open) = stack.last_mut() else {
                    continue;
                };
                if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(|e| invalid(&e))? {
                        Some(c) => open.text.push(c),
                        None => return Err(invalid(&"a character reference to nothing")),
                    }
                } else {
                    let name = r.into_inner();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(v) => open.text.push_str(v),
                        None => return Err(invalid(&format!("unknown entity &{name};"))),
                    }
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(invalid(&"an end tag without a start"));
                };
                match stack.last_mut() {
                    Some(parent) => {
                        let name = done.name.clone();
                        parent.add(name, done.into_value());
                    }
                    None => root = Some(done.children),
                }
            }
            Event::DocType(_) => return Err(invalid(&"a DTD is not allowed")),
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(invalid(&"the document ends inside an element"));
    }
    root.ok_or_else(|| invalid(&"no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn xml_text_message() {
        let body = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a &lt; b]]></Content><MsgId>42</MsgId><Empty/></xml>";
        assert_eq!(
            Value::Object(message_fields(body).unwrap()),
            json!({"ToUserName": "gh_1", "FromUserName": "o1", "CreateTime": "1700000000",
                   "MsgType": "text", "Content": "a &lt; b", "MsgId": "42", "Empty": ""})
        );
        let escaped = "<xml><Content>a &lt; b &#x4F60;</Content></xml>";
        assert_eq!(message_fields(escaped).unwrap()["Content"], "a < b 你");
    }

    #[test]
    fn subscribe_lists_are_arrays() {
        let one = "<xml><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>t1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString></List></SubscribeMsgPopupEvent></xml>";
        assert_eq!(
            message_fields(one).unwrap()["SubscribeMsgPopupEvent"],
            json!({"List": [{"TemplateId": "t1", "SubscribeStatusString": "accept"}]})
        );
        let two = "<xml><SubscribeMsgSentEvent><List><MsgID>1</MsgID></List><List><MsgID>2</MsgID></List><List><MsgID>3</MsgID></List></SubscribeMsgSentEvent></xml>";
        assert_eq!(
            message_fields(two).unwrap()["SubscribeMsgSentEvent"],
            json!({"List": [{"MsgID": "1"}, {"MsgID": "2"}, {"MsgID": "3"}]})
        );
        let repeated = "<xml><A>1</A><A>2</A><A>3</A></xml>";
        assert_eq!(
            message_fields(repeated).unwrap()["A"],
            json!(["1", "2", "3"])
        );
    }

    #[test]
    fn json_as_it_came_and_bad_bodies_refused() {
        let body = r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1700000000,"MsgType":"event","Event":"subscribe_msg_popup_event","List":{"TemplateId":"t"}}"#;
        let fields = message_fields(body).unwrap();
        assert_eq!(fields["CreateTime"], 1_700_000_000);
        assert_eq!(fields["List"], json!({"TemplateId": "t"}));
        for bad in [
            "[1]",
            "plain",
            "<xml><a></xml>",
            "<!DOCTYPE x [<!ENTITY e \"x\">]><xml>&e;</xml>",
            "<xml><a>&bogus;</a></xml>",
            "<xml/><xml/>",
        ] {
            assert!(message_fields(bad).is_err(), "{bad}");
        }
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert!(message_fields(&deep).is_err());
    }
}
