//! The parser on WeChat's pushes, on XML's own rules, and on hostile bodies.

use super::*;
use proptest::prelude::*;

#[test]
fn xml_text_message_and_event() {
    let m = parse_message("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>24012345678901234</MsgId></xml>").unwrap();
    assert_eq!(
        (
            m.from_user_name.as_str(),
            m.create_time,
            m.msg_type.as_str()
        ),
        ("o1", 1700000000, "text")
    );
    assert_eq!(m.dedupe_key(), "msg|24012345678901234");
    let e = parse_message("<xml><ToUserName>gh</ToUserName><FromUserName>o2</FromUserName><CreateTime>5</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>200163836</MsgID><Status><![CDATA[failed: system failed]]></Status></xml>").unwrap();
    assert_eq!(e.fields.msg_id.as_deref(), Some("200163836"));
    assert_eq!(e.fields.status.as_deref(), Some("failed: system failed"));
    assert_eq!(e.dedupe_key(), "evt|o2|5|TEMPLATESENDJOBFINISH||200163836");
}

#[test]
fn subscribe_lists_in_both_formats() {
    let xml = "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List><List><TemplateId>T2</TemplateId><SubscribeStatusString>reject</SubscribeStatusString><PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent></xml>";
    let m = parse_message(xml).unwrap();
    assert_eq!(m.fields.subscribe_items.len(), 2);
    assert_eq!(
        m.fields.subscribe_items[1].status.as_deref(),
        Some("reject")
    );
    let json = r#"{"FromUserName":"o","CreateTime":"1","MsgType":"event","Event":"subscribe_msg_sent_event","List":{"TemplateId":"T1","MsgID":"1700","ErrorCode":"0","ErrorStatus":"success"}}"#;
    let m = parse_message(json).unwrap();
    assert_eq!(m.fields.subscribe_items[0].error_code, Some(0));
    assert_eq!(m.fields.subscribe_items[0].msg_id.as_deref(), Some("1700"));
}

#[test]
fn xml_text_is_read_as_xml_says() {
    // Predefined entities and character references are expanded; CDATA is taken as is;
    // unknown elements (nested too) are skipped; empty elements are absent fields.
    let m = parse_message("<xml><ToUserName/><FromUserName>o&amp;&#x31;&#50;</FromUserName><CreateTime> 7 </CreateTime><MsgType><![CDATA[te]]>xt</MsgType><Extra><Deep><MsgType>no</MsgType></Deep></Extra><EventKey><![CDATA[a&amp;b]]></EventKey></xml>").unwrap();
    assert_eq!(m.from_user_name, "o&12");
    assert_eq!((m.create_time, m.msg_type.as_str()), (7, "text"));
    assert_eq!(m.fields.event_key.as_deref(), Some("a&amp;b"));
    assert_eq!(m.to_user_name, "");
    for bad in [
        "<xml><FromUserName>&nbsp;</FromUserName><CreateTime>1</CreateTime><MsgType>t</MsgType></xml>",
        "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>t</MsgType></xml><xml/>",
        "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>t</MsgType>",
        "<xml><FromUserName>o</ToUserName></xml>",
        "",
    ] {
        assert!(parse_message(bad).is_err(), "{bad}");
    }
}

#[test]
fn hostile_inputs_are_errors() {
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><xml><FromUserName>&lol2;</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>"#;
    assert!(parse_message(bomb).is_err());
    let deep = format!("<xml>{}{}</xml>", "<a>".repeat(5000), "</a>".repeat(5000));
    assert!(parse_message(&deep).is_err());
    // Deep unknown elements beside valid fields are skipped without blowing the stack.
    let deep_valid = format!(
        "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>{}{}</xml>",
        "<a>".repeat(20_000),
        "</a>".repeat(20_000)
    );
    let _ = parse_message(&deep_valid);
    let deep_json = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(parse_message(&deep_json).is_err());
    assert!(parse_message("hello").is_err());
    assert!(parse_message("<xml><CreateTime>soon</CreateTime></xml>").is_err());
}

proptest! {
    #[test]
    fn random_text_never_panics(s in ".{0,300}") {
        let _ = parse_message(&s);
        let _ = parse_message(&format!("<xml>{s}</xml>"));
        let _ = parse_message(&format!("{{\"FromUserName\":{s}}}"));
    }
}
