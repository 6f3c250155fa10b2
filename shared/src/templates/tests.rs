//! Template ids, data keys read from a template's content, and the body of a new template.

use super::new_template::{NewTemplate, parse_new};
use super::*;
use crate::wechat::DataValue;
use std::collections::BTreeMap;

fn tpl(kind: TemplateKind, content: &str) -> TemplateInfo {
    TemplateInfo {
        id: "T1".into(),
        kind,
        title: "t".into(),
        keys: keys_of(content),
        content: content.into(),
        example: String::new(),
    }
}

fn data(keys: &[&str]) -> BTreeMap<String, DataValue> {
    keys.iter()
        .map(|k| {
            (
                k.to_string(),
                DataValue {
                    value: "v".into(),
                    color: None,
                },
            )
        })
        .collect()
}

#[test]
fn keys_come_from_content() {
    assert_eq!(
        keys_of(
            "{{first.DATA}}\n订单:{{character_string1.DATA}}\n时间:{{ time2.DATA }}\n{{remark.DATA}}{{broken"
        ),
        ["first", "character_string1", "time2", "remark"]
    );
    assert!(keys_of("no keys").is_empty());
}

#[test]
fn missing_and_unknown_keys_are_named() {
    let t = tpl(TemplateKind::SubscribeOnce, "{{thing1.DATA}}{{time2.DATA}}");
    assert!(check_data_keys(&t, &data(&["thing1", "time2"])).is_ok());
    let field = |r: Result<(), ApiError>| match r {
        Err(ApiError::Validation { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(check_data_keys(&t, &data(&["thing1"]))), "data.time2");
    assert_eq!(
        field(check_data_keys(&t, &data(&["thing1", "time2", "thing3"]))),
        "data.thing3"
    );
    // first/remark are optional on template messages either way.
    let old = tpl(
        TemplateKind::Template,
        "{{first.DATA}}{{keyword1.DATA}}{{remark.DATA}}",
    );
    assert!(check_data_keys(&old, &data(&["keyword1"])).is_ok());
    let new = tpl(TemplateKind::Template, "{{thing1.DATA}}");
    assert!(check_data_keys(&new, &data(&["thing1", "remark"])).is_ok());
    assert_eq!(
        field(check_data_keys(&t, &data(&["thing1", "time2", "first"]))),
        "data.first"
    );
}

#[test]
fn add_bodies() {
    assert!(matches!(
        parse_new(r#"{"template_id_short": "TM00015", "keyword_names": ["订单号"]}"#.as_bytes()),
        Ok(NewTemplate::Template { .. })
    ));
    assert!(matches!(
        parse_new(r#"{"tid": "1234", "kid_list": [1, 2], "scene_desc": "发货"}"#.as_bytes()),
        Ok(NewTemplate::Subscribe { .. })
    ));
    let field = |b: &[u8]| match parse_new(b) {
        Err(ApiError::Validation { field, .. }) => field,
        _ => panic!(),
    };
    assert_eq!(field(br#"{"template_id_short": "TM1"}"#), "keyword_names");
    assert_eq!(field(br#"{"tid": "12", "kid_list": [1]}"#), "kid_list");
    assert_eq!(field(br#"{"tid": "x1", "kid_list": [1, 2]}"#), "tid");
    assert_eq!(field(br#"{}"#), "template_id_short");
}
