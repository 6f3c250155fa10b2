//! The typed reader against the whole-`Value` reader it replaced (kept here as the
//! reference): the same answer — status, code, field, message, listed refusals, recipients —
//! for every body of a corpus of edge cases and of generated ones.

use super::*;
use crate::batch::MAX_LISTED_INVALID;
use crate::send::validate::parse_recipient;
use serde_json::json;

/// The reader before the typed one: the body read whole into a `serde_json::Value`.
fn reference(body: &[u8]) -> Result<BatchRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    if let Some(extra) = obj
        .keys()
        .find(|k| !["message", "recipients", "audience"].contains(&k.as_str()))
    {
        return Err(invalid(
            extra.as_str(),
            "is not a field of a batch (message, recipients, audience)",
        ));
    }
    let message = reference_message(obj)?;
    let (audience, listed) = reference_audience(obj)?;
    if audience == Audience::Recipients {
        if listed.is_empty() {
            return Err(invalid("recipients", "must list at least one recipient"));
        }
        if listed.len() > MAX_RECIPIENTS {
            // The only message that changed: the typed reader stops counting at the limit.
            return Err(invalid(
                "recipients",
                format!(
                    "lists more than {MAX_RECIPIENTS} recipients; a batch takes at most {MAX_RECIPIENTS}"
                ),
            ));
        }
    }
    let (keys, bad, count_bad) = reference_recipients(listed);
    if count_bad > 0 {
        return Err(ApiError::InvalidRecipients {
            count: count_bad,
            listed: bad,
        });
    }
    let (recipients, duplicates) = deduplicated(keys);
    Ok(BatchRequest {
        message,
        audience,
        recipients,
        duplicates,
    })
}

/// The reference's message: present, without `to` or `client_msg_id`, small enough, and
/// valid as a single send's.
fn reference_message(obj: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let message = obj
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "message",
                "is required: the message to send, without \"to\"",
            )
        })?
        .clone();
    if message.contains_key("to") {
        return Err(invalid(
            "message.to",
            "a batch's recipients are listed in \"recipients\", not in the message",
        ));
    }
    if message.contains_key("client_msg_id") {
        return Err(invalid(
            "message.client_msg_id",
            "each recipient's message gets its own (from its message id); a batch cannot share one",
        ));
    }
    let size = serde_json::to_vec(&message).map(|b| b.len()).unwrap_or(0);
    if size > MAX_MESSAGE_BYTES {
        return Err(invalid(
            "message",
            format!(
                "is {size} bytes of JSON; a batch's message may have at most {MAX_MESSAGE_BYTES}"
            ),
        ));
    }
    parse_send_request(&probe(&message)).map_err(|e| match e {
        ApiError::Validation { field, message } => invalid(format!("message.{field}"), message),
        other => other,
    })?;
    Ok(message)
}

/// The reference's audience: a list of recipients or the followers, never both.
fn reference_audience(obj: &Map<String, Value>) -> Result<(Audience, &[Value]), ApiError> {
    Ok(match (obj.get("recipients"), obj.get("audience")) {
        (Some(Value::Array(list)), None) => (Audience::Recipients, list.as_slice()),
        (None, Some(Value::String(a))) if a == "followers" => (Audience::Followers, &[][..]),
        (None, Some(_)) => {
            return Err(invalid(
                "audience",
                "the only audience is \"followers\" (every subscribed follower)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "recipients",
                "give recipients or an audience, not both",
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                "recipients",
                "must be an array of {\"openid\": ...} or {\"unionid\": ...}",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "recipients",
                "is required (or \"audience\": \"followers\")",
            ));
        }
    })
}

/// The reference's recipients: keys, the first refusals, how many were refused.
fn reference_recipients(listed: &[Value]) -> (Vec<String>, Vec<(usize, String)>, usize) {
    let (mut bad, mut count_bad, mut keys) = (Vec::new(), 0, Vec::new());
    for (index, r) in listed.iter().enumerate() {
        match parse_recipient(r) {
            Ok(r) => keys.push(r.key()),
            Err(e) => {
                count_bad += 1;
                if bad.len() < MAX_LISTED_INVALID {
                    let why = match e {
                        ApiError::Validation { field, message } => {
                            format!("{}: {message}", field.replace("to", "recipient"))
                        }
                        other => other.to_string(),
                    };
                    bad.push((index, why));
                }
            }
        }
    }
    (keys, bad, count_bad)
}

/// What a caller sees of an answer. A syntax error's position is the parser's; only its
/// status is compared.
fn seen(r: Result<BatchRequest, ApiError>) -> String {
    match r {
        Ok(b) => format!(
            "ok {:?} {:?} {} {}",
            b.audience,
            b.recipients,
            b.duplicates,
            Value::Object(b.message)
        ),
        Err(ApiError::BadRequest(m)) if m.starts_with("the body is not valid JSON") => {
            "400 invalid JSON".into()
        }
        Err(e) => format!("{} {}", e.status(), e.body()),
    }
}

fn same(body: &[u8]) {
    assert_eq!(
        seen(parse_batch_request(body)),
        seen(reference(body)),
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
}

fn msg() -> Value {
    json!({"type": "template", "template_id": "T", "data": {"a": {"value": "b"}}})
}

#[test]
fn the_typed_reader_answers_as_the_value_reader() {
    let m = msg();
    let corpus = vec![
        json!({"message": m, "recipients": [{"openid": "o1"}, {"unionid": "u1"}, {"openid": "o1"}]}),
        json!({"message": m, "recipients": [{"openid": "o1"}, {"openid": ""}, {"x": 1}, 0, null, [],
               {"openid": "a b"}, {"openid": 5}, {"unionid": {}}, {"openid": "o", "unionid": "u"},
               {"openid": null}, {"openid": null, "unionid": "u2"}, {"zz": 1, "aa": 2, "openid": "o"},
               {"openid": "x".repeat(129)}, {"openid": "tab\there"}]}),
        json!({"message": m, "audience": "followers"}),
        json!({"message": m, "audience": "everyone"}),
        json!({"message": m, "audience": null}),
        json!({"message": m, "audience": ["followers"]}),
        json!({"message": m, "audience": "followers", "recipients": []}),
        json!({"message": m, "recipients": {"openid": "o"}}),
        json!({"message": m, "recipients": null}),
        json!({"message": m}),
        json!({"message": m, "recipients": []}),
        json!({"recipients": [{"openid": "o"}]}),
        json!({"message": null, "recipients": [{"openid": "o"}]}),
        json!({"message": [m], "recipients": [{"openid": "o"}]}),
        json!({"message": {"type": "template"}, "recipients": [{"openid": "o"}]}),
        json!({"message": {"type": "template", "template_id": "T", "data": {}, "to": {"openid": "o"}}, "recipients": [0]}),
        json!({"message": {"client_msg_id": "x"}, "recipients": [0]}),
        json!({"message": m, "recipients": [{"openid": "o"}], "to": {"openid": "o"}, "b": 1, "a": [[[]]]}),
        json!({"message": {"type": "template", "template_id": "T", "data": {"first": {"value": "长".repeat(30_000)}}},
               "recipients": [{"openid": "o"}]}),
        json!({"message": {"type": "template", "template_id": "T", "data": {"first": {"value": "x".repeat(65_400)}}},
               "recipients": [{"openid": "o"}]}),
        json!({"message": {"type": "template", "template_id": "T", "data": {"a": {"value": "\u{1}\"\\é/"}},
               "url": "https://e.x/?a=1.5e3", "n": [1.0, -2, 1e300, 0.1, true, null]}, "recipients": [{"openid": "o"}]}),
        json!([m]),
        json!("text"),
        json!(7),
        json!(null),
    ];
    for body in &corpus {
        same(body.to_string().as_bytes());
    }
    let raw: &[&[u8]] = &[
        b"",
        b"{",
        b"{}",
        b"{} x",
        b"[1,2",
        b"{\"message\": 1e400}",
        br#"{"message": {"type": "template", "template_id": "T", "data": {"a": {"value": "b"}}}, "recipients": [{"openid": "o1"}], "recipients": [{"openid": "o2"}]}"#,
        br#"{"message": {"type":"template"}, "message": {"type": "template", "template_id": "T", "data": {"a": {"value": "b"}}}, "recipients": [{"openid": "o1", "openid": "o3"}]}"#,
        br#"{"message": {"type": "template", "template_id": "T", "data": {"a": {"value": "b"}}}, "recipients": [{"open\u0069d": "o\u00e9"}]}"#,
        br#"  {"message" : { "type" : "template" , "template_id" : "T" , "data" : { "a" : { "value" : "b" } } } , "recipients" : [ { "openid" : "o" } ] }  "#,
    ];
    for body in raw {
        same(body);
    }
}

#[test]
fn nesting_and_size_limits_answer_as_before() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for n in [100, 126, 127, 128, 129, 5_000] {
        for body in [
            format!(r#"{{"message": {}, "recipients": [0]}}"#, deep(n)),
            format!(
                r#"{{"message": {{"type": "template", "x": {}}}, "recipients": [0]}}"#,
                deep(n)
            ),
            format!(r#"{{"message": {{}}, "recipients": {}}}"#, deep(n)),
            format!(r#"{{"message": {{}}, "zz": {}}}"#, deep(n)),
            deep(n),
        ] {
            let (typed, old) = (
                parse_batch_request(body.as_bytes()),
                reference(body.as_bytes()),
            );
            // At the nesting limit the two readers count the message's levels from
            // different roots; both refuse.
            if (126..=128).contains(&n) {
                assert!(typed.is_err() && old.is_err(), "{n}");
            } else {
                assert_eq!(
                    seen(typed),
                    seen(old),
                    "{n}: {}",
                    &body[..60.min(body.len())]
                );
            }
        }
    }
    // A message of exactly the limit and one byte more, sent with whitespace the limit
    // does not count.
    let base = json!({"type": "template", "template_id": "T", "data": {"first": {"value": ""}}});
    let overhead = serde_json::to_vec(&base).unwrap().len();
    for compact in [MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1] {
        let mut m = base.clone();
        m["data"]["first"]["value"] = json!("v".repeat(compact - overhead));
        let body = format!(
            r#"{{"message": {}{}, "recipients": [{{"openid": "o"}}]}}"#,
            serde_json::to_string_pretty(&m).unwrap(),
            " ".repeat(70_000)
        );
        same(body.as_bytes());
        assert_eq!(
            parse_batch_request(body.as_bytes()).is_ok(),
            compact == MAX_MESSAGE_BYTES
        );
    }
}

#[test]
fn recipients_are_counted_to_the_limit() {
    let listed = |n: usize, item: &str| {
        let items = vec![item; n].join(",");
        format!(r#"{{"message": {}, "recipients": [{items}]}}"#, msg())
    };
    for (n, item) in [
        (MAX_RECIPIENTS, r#"{"openid": "o"}"#),
        (MAX_RECIPIENTS + 1, r#"{"openid": "o"}"#),
        (MAX_RECIPIENTS + 1, "0"),
        (250_000, "0"),
        (3, "0"),
    ] {
        same(listed(n, item).as_bytes());
    }
    let many: Vec<Value> = (0..MAX_RECIPIENTS)
        .map(|i| json!({"openid": format!("o{}", i % 70_000)}))
        .collect();
    let body = json!({"message": msg(), "recipients": many}).to_string();
    same(body.as_bytes());
    let r = parse_batch_request(body.as_bytes()).unwrap();
    assert_eq!((r.recipients.len(), r.duplicates), (70_000, 30_000));
    let err = parse_batch_request(listed(MAX_RECIPIENTS + 1, "0").as_bytes()).unwrap_err();
    assert_eq!(
        err.body()["error"]["message"],
        "recipients: lists more than 100000 recipients; a batch takes at most 100000"
    );
}

#[test]
fn generated_bodies_answer_as_before() {
    use rand::seq::SliceRandom;
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let parts = [
        r#"{"openid": "o1"}"#,
        r#"{"unionid": "u1"}"#,
        r#"{"openid": ""}"#,
        r#"{"x": 1}"#,
        "0",
        "null",
        "[]",
        r#"{"openid": "o1", "unionid": "u1"}"#,
        r#"{"openid": [1, {"a": 2}]}"#,
    ];
    let fields = [
        format!(r#""message": {}"#, msg()),
        r#""message": {"type": "custom", "msgtype": "text", "text": {"content": "hi"}}"#.into(),
        r#""message": {"type": "nope"}"#.into(),
        r#""message": 3"#.into(),
        r#""audience": "followers""#.into(),
        r#""audience": 1"#.into(),
        r#""other": {"deep": [1, 2]}"#.into(),
        r#""aaa": null"#.into(),
        r#""recipients": 5"#.into(),
    ];
    for _ in 0..2_000 {
        let mut picked: Vec<String> = Vec::new();
        for _ in 0..rng.random_range(0..4) {
            picked.push(fields[rng.random_range(0..fields.len())].clone());
        }
        if rng.random_bool(0.7) {
            let n = rng.random_range(0..6);
            let list: Vec<&str> = (0..n)
                .map(|_| parts[rng.random_range(0..parts.len())])
                .collect();
            picked.push(format!(r#""recipients": [{}]"#, list.join(",")));
        }
        picked.shuffle(&mut rng);
        same(format!("{{{}}}", picked.join(",")).as_bytes());
    }
}

#[test]
fn request_checks() {
    let ok = |b: Value| parse_batch_request(b.to_string().as_bytes());
    let msg = json!({"type": "template", "template_id": "T", "data": {"a": {"value": "b"}}});
    let r = ok(json!({"message": msg, "recipients": [{"openid": "o1"}, {"unionid": "u1"}, {"openid": "o1"}]})).unwrap();
    assert_eq!(r.recipients, vec!["o:o1", "u:u1"]);
    assert_eq!(r.duplicates, 1);
    let err =
        ok(json!({"message": msg, "recipients": [{"openid": "o1"}, {"openid": ""}, {"x": 1}]}))
            .unwrap_err();
    match err {
        ApiError::InvalidRecipients { count, listed } => {
            assert_eq!(count, 2);
            assert_eq!(listed[0].0, 1);
            assert_eq!(listed[1].0, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ok(json!({"message": {"type": "template"}, "recipients": [{"openid": "o"}]})),
        Err(ApiError::Validation { field, .. }) if field == "message.template_id"
    ));
    assert!(matches!(
        ok(json!({"message": msg, "audience": "everyone"})),
        Err(ApiError::Validation { field, .. }) if field == "audience"
    ));
}
