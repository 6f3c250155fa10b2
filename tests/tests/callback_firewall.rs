//! `CallbackFirewall` on AWS: the token refresh keeps WeChat's callback addresses
//! (`getcallbackip`, from the emulator) in the WAF IP set (moto's WAFv2), and the callback
//! answers the REST API's (API Gateway v1) events that the firewall's API sends.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wxpush_shared::AppKind;
use wxpush_shared::aws::SdkClient;
use wxpush_shared::clock::now_unix;
use wxpush_shared::token::{TokenManager, TokenPolicy};
use wxpush_tests::{EmulatorServer, TokenWorld, callback_service, signed_query};
use wxpush_token_refresh::callback_ips::{CallbackIpSet, IpSetOutcome, MAX_AGE_SECS};

async fn waf() -> aws_sdk_wafv2::Client {
    aws_sdk_wafv2::Client::new(&wxpush_tests::sdk_config().await)
}

/// A new, empty regional IPv4 set in moto, as the stack creates it; its ARN.
async fn empty_ip_set(client: &aws_sdk_wafv2::Client) -> String {
    let made = client
        .create_ip_set()
        .name(wxpush_tests::unique("wechat-ips"))
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .ip_address_version(aws_sdk_wafv2::types::IpAddressVersion::Ipv4)
        .set_addresses(Some(vec![]))
        .send()
        .await
        .expect("moto creates the IP set");
    made.summary().unwrap().arn().unwrap().to_string()
}

/// The set's name and id, the last two parts of its ARN.
fn name_and_id(set_arn: &str) -> (String, String) {
    let parts: Vec<&str> = set_arn.rsplit('/').take(2).collect();
    (parts[1].to_string(), parts[0].to_string())
}

/// The set's addresses and description.
async fn read(set_arn: &str) -> (Vec<String>, String) {
    let (name, id) = name_and_id(set_arn);
    let got = waf()
        .await
        .get_ip_set()
        .name(name)
        .id(id)
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .send()
        .await
        .unwrap();
    let set = got.ip_set().unwrap();
    let mut addresses = set.addresses().to_vec();
    addresses.sort();
    (addresses, set.description().unwrap_or_default().to_string())
}

#[tokio::test]
async fn the_token_refresh_keeps_wechats_addresses_in_the_waf_ip_set() {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let tokens = world.manager(TokenPolicy::default(), 2000);
    let client = waf().await;
    let arn = empty_ip_set(&client).await;
    let set = CallbackIpSet::from_arn(SdkClient::from(client), &arn).unwrap();
    let now = now_unix();

    // Empty: filled at once, with WeChat's list as networks, the time stamped.
    assert_eq!(
        set.refresh(&tokens, now).await.unwrap(),
        IpSetOutcome::Updated { addresses: 2 }
    );
    let (addresses, stamp) = read(&arn).await;
    assert_eq!(addresses, ["101.226.103.0/25", "127.0.0.1/32"]);
    assert_eq!(stamp, format!("wxpush getcallbackip {now}"));
    // Fresh: read only.
    let calls = world.emulator.get("/sandbox/stats").await["/cgi-bin/getcallbackip"].clone();
    assert_eq!(
        set.refresh(&tokens, now + 60).await.unwrap(),
        IpSetOutcome::Fresh { age_secs: 60 }
    );
    assert_eq!(
        world.emulator.get("/sandbox/stats").await["/cgi-bin/getcallbackip"],
        calls
    );

    // Old: WeChat's new list replaces it (the IPv6 entry does not go into an IPv4 set),
    // also when the stored token was revoked meanwhile (refreshed once, asked again).
    let e = &world.emulator;
    e.control(
        "/callback-ips",
        json!({"ip_list": ["1.2.3.4", "10.9.0.0/16", "2001:db8::/32"]}),
    )
    .await;
    e.control("/tokens/invalidate", json!({"appid": oa})).await;
    e.control("/tokens/invalidate", json!({"appid": mp})).await;
    let later = now + MAX_AGE_SECS + 1;
    assert_eq!(
        set.refresh(&tokens, later).await.unwrap(),
        IpSetOutcome::Updated { addresses: 2 }
    );
    assert_eq!(read(&arn).await.0, ["1.2.3.4/32", "10.9.0.0/16"]);

    // The first app refused: the next one asks.
    e.control(
        "/faults",
        json!({"path": "/cgi-bin/getcallbackip", "errcode": 40013}),
    )
    .await;
    let later = later + MAX_AGE_SECS + 1;
    assert!(matches!(
        set.refresh(&tokens, later).await,
        Ok(IpSetOutcome::Updated { .. })
    ));
    an_empty_list_never_empties_the_set(e, &tokens, &set, &arn, later + MAX_AGE_SECS + 1).await;
}

/// An empty list from WeChat never empties the set: the old one stays, the tick fails, and
/// the Lambda's invocation with it (Errors, and the CallbackIpLists alarm). Once WeChat
/// lists addresses again, the next tick writes them.
async fn an_empty_list_never_empties_the_set(
    e: &EmulatorServer,
    tokens: &Arc<TokenManager>,
    set: &CallbackIpSet,
    arn: &str,
    at: i64,
) {
    e.control("/callback-ips", json!({"ip_list": []})).await;
    let err = set.refresh(tokens, at).await.unwrap_err();
    assert!(err.to_string().contains("listed no address"), "{err}");
    assert_eq!(read(arn).await.0, ["1.2.3.4/32", "10.9.0.0/16"]);
    // The handler runs with the wall clock: make the stored list old by emptying the set's
    // stamp (a set whose list is not stamped is due).
    unstamp(arn, "1.2.3.4/32").await;
    let window = Duration::from_secs(900);
    let err = wxpush_token_refresh::handle_event(tokens.clone(), window, Some(set), scheduled())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("callback addresses"), "{err}");
    // WeChat lists addresses again: the next tick writes them.
    e.control("/callback-ips", json!({"ip_list": ["203.0.113.0/24"]}))
        .await;
    wxpush_token_refresh::handle_event(tokens.clone(), window, Some(set), scheduled())
        .await
        .unwrap();
    assert_eq!(read(arn).await.0, ["203.0.113.0/24"]);
}

/// The token refresh's schedule event, from the fixture.
fn scheduled() -> LambdaEvent<EventBridgeEvent<serde_json::Value>> {
    let payload = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/eventbridge-scheduled-event.json"
        ))
        .unwrap(),
    )
    .unwrap();
    LambdaEvent::new(payload, Context::default())
}

/// Sets the set's addresses to `address` by hand, with a description that is no stamp.
async fn unstamp(arn: &str, address: &str) {
    let (name, id) = name_and_id(arn);
    let c = waf().await;
    let lock = c
        .get_ip_set()
        .name(&name)
        .id(&id)
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .send()
        .await
        .unwrap()
        .lock_token()
        .unwrap()
        .to_string();
    c.update_ip_set()
        .name(name)
        .id(id)
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .set_addresses(Some(vec![address.into()]))
        .description("set by hand")
        .lock_token(lock)
        .send()
        .await
        .unwrap();
}

/// A real API Gateway REST (v1) proxy event for `/wechat/{appid}` on the `live` stage.
fn rest_event(
    method: &str,
    appid: &str,
    q: &HashMap<String, String>,
    body: &str,
) -> lambda_http::Request {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/apigw-v1-wechat-post.json"
    ))
    .unwrap()
    .replace("APPID", appid)
    .replace("METHOD", method);
    let mut e: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    e["queryStringParameters"] = json!(q);
    e["multiValueQueryStringParameters"] = json!(
        q.iter()
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect::<HashMap<_, _>>()
    );
    e["body"] = json!(body);
    lambda_http::request::from_str(&e.to_string()).expect("a REST API event parses")
}

#[tokio::test]
async fn the_callback_answers_the_rest_apis_events() {
    const OA: &str = "wx00000000000000c9";
    let (svc, _store, _emu) =
        callback_service(&[(OA, "rest-token", None, AppKind::OfficialAccount)]).await;
    let now = now_unix();
    let ts = now.to_string();
    let q = signed_query("rest-token", &ts, "n1", &[("echostr", "4242")]);
    let resp = wxpush_callback::handle(&svc, rest_event("GET", OA, &q, "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), b"4242");
    let push = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>o-rest</FromUserName><CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>K</EventKey></xml>"
    );
    let q = signed_query("rest-token", &ts, "n2", &[]);
    let resp = wxpush_callback::handle(&svc, rest_event("POST", OA, &q, &push)).await;
    assert_eq!(
        (resp.status().as_u16(), resp.body().as_ref()),
        (200, b"success".as_slice())
    );
    let resp = wxpush_callback::handle(&svc, rest_event("GET", "wx00000000000000ff", &q, "")).await;
    assert_eq!(resp.status(), 404);
}
