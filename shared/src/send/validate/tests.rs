//! The send body's checks, field by field: what each message kind accepts and the 422 naming
//! the field for what it does not.

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
        field_of(json!({"type": "template", "to": {"openid": "o"}, "data": {"a": {"value": "b"}}})),
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
        field_of(json!({"type": "custom", "to": {"openid": "o"}, "msgtype": "text", "text": {}})),
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

#[test]
fn options_and_the_fallback_are_checked_like_messages() {
    let custom = |extra: Value| {
        let mut b = json!({"type": "custom", "to": {"openid": "o"}, "msgtype": "text", "text": {"content": "在吗"}});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let template =
        json!({"type": "template", "template_id": "T", "data": {"thing1": {"value": "到货"}}});
    let ok = parse_send_request(
        custom(json!({"fallback": template, "cap": false}))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(!ok.cap);
    let fallback = ok.fallback.unwrap();
    assert_eq!(fallback.kind, MessageKind::Template);
    assert_eq!(
        fallback.to,
        Recipient::OpenId("o".into()),
        "the custom's recipient"
    );
    assert!(fallback.cap, "a fallback has no cap of its own");
    let mut with_to = template.clone();
    with_to["to"] = json!({"openid": "x"});
    assert_eq!(
        field_of(custom(json!({"fallback": with_to}))),
        "fallback.to"
    );
    let mut nested = template.clone();
    nested["cap"] = json!(false);
    assert_eq!(
        field_of(custom(json!({"fallback": nested}))),
        "fallback.cap"
    );
    let mut text = json!({"type": "custom", "msgtype": "text", "text": {"content": "x"}});
    assert_eq!(field_of(custom(json!({"fallback": text}))), "fallback.type");
    text = json!({"type": "template", "template_id": "T"});
    assert_eq!(field_of(custom(json!({"fallback": text}))), "fallback.data");
    assert_eq!(field_of(custom(json!({"fallback": "no"}))), "fallback");
    assert_eq!(field_of(custom(json!({"cap": "no"}))), "cap");
    let mut t = template.clone();
    t["to"] = json!({"openid": "o"});
    t["fallback"] = json!({});
    assert_eq!(
        field_of(t.clone()),
        "fallback",
        "only custom messages fall back"
    );
    t.as_object_mut().unwrap().remove("fallback");
    t["require_grant"] = json!(true);
    assert_eq!(
        field_of(t),
        "require_grant",
        "only subscribe messages need a grant"
    );
    let sub = json!({"type": "subscribe", "to": {"openid": "o"}, "template_id": "S", "data": {"thing1": {"value": "到货"}}, "require_grant": true});
    assert!(
        parse_send_request(sub.to_string().as_bytes())
            .unwrap()
            .require_grant
    );
    let mut bad = sub.clone();
    bad["require_grant"] = json!(1);
    assert_eq!(field_of(bad), "require_grant");
}
