//! A listed app whose configuration cannot be built (safe mode without its key, an invalid
//! `kind`) must not turn each unauthenticated callback on its public URL into an SSM read:
//! the error is kept ([`FAILURE_TTL`]) and answered the same each time, saying nothing of the
//! inside. A half-written app (every parameter but `kind`, as a failed `wxpush apps put`
//! leaves it) is not listed at all. On moto's SSM through the real SDK, counting requests.

#[path = "common/ssm_requests.rs"]
mod ssm_requests;

use ssm_requests::callback_secrets;
use wxpush_callback::handle as callback_handle;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::secrets::{ConfigError, SecretStore, SsmSecretStore};
use wxpush_tests::faults::RecordingQueue;
use wxpush_tests::{TokenWorld, apigw_callback_request, random_appid, signed_query};

const TOKEN: &str = "misconfigured-cb-token";
const AES_KEY: &str = "Misconfigured0123456789abcdefghijklmnopqrst";
const SECRET: &str = "misconfigured-app-secret";

/// Writes `params` of `appid` (secrets as SecureString).
async fn put(world: &TokenWorld, appid: &str, params: &[(&str, &str)]) {
    use aws_sdk_ssm::types::ParameterType;
    for (name, value) in params {
        let secure = matches!(*name, "app_secret" | "callback_token" | "encoding_aes_key");
        world
            .ssm
            .put_parameter()
            .name(format!("{}/apps/{appid}/{name}", world.prefix))
            .value(*value)
            .r#type(if secure {
                ParameterType::SecureString
            } else {
                ParameterType::String
            })
            .overwrite(true)
            .send()
            .await
            .expect("put parameter in moto");
    }
}

/// `n` signed pushes to `appid` through the callback Lambda's handler: the statuses and
/// bodies answered, each distinct one once.
async fn flood(svc: &CallbackService, appid: &str, n: usize) -> Vec<(u16, String)> {
    let now = now_unix();
    let xml = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>K</EventKey></xml>"
    );
    let mut answers: Vec<(u16, String)> = Vec::new();
    for _ in 0..n {
        let q = signed_query(TOKEN, &now.to_string(), &wxpush_tests::nonce(), &[]);
        let req = apigw_callback_request("POST", appid, &q, xml.as_bytes(), false);
        let resp = callback_handle(svc, req).await;
        let answer = (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_ref()).into_owned(),
        );
        if !answers.contains(&answer) {
            answers.push(answer);
        }
    }
    answers
}

#[tokio::test]
async fn a_listed_app_that_cannot_be_built_costs_one_read_not_one_per_callback() {
    wxpush_tests::remember_secrets([TOKEN.into(), AES_KEY.into(), SECRET.into()]);
    let world = TokenWorld::new(vec![]).await;
    let (no_key, bad_kind) = (random_appid(), random_appid());
    // Safe mode without its key; a kind wxpush does not know (with a key it must not show).
    let common = [("app_secret", SECRET), ("callback_token", TOKEN)];
    put(&world, &no_key, &common).await;
    put(
        &world,
        &no_key,
        &[("callback_mode", "safe"), ("kind", "official_account")],
    )
    .await;
    put(&world, &bad_kind, &common).await;
    put(
        &world,
        &bad_kind,
        &[("encoding_aes_key", AES_KEY), ("kind", "bogus")],
    )
    .await;
    let (secrets, calls) = callback_secrets(&world).await;
    let svc = CallbackService::new(secrets.clone(), world.state_store(), RecordingQueue::new());
    for appid in [&no_key, &bad_kind] {
        let before = calls.of("GetParameters");
        let answers = flood(&svc, appid, 1000).await;
        let reads = calls.of("GetParameters") - before;
        println!("1000 callbacks to a misconfigured app: {reads} GetParameters");
        assert_eq!(answers.len(), 1, "the same answer each time: {answers:?}");
        let (status, body) = &answers[0];
        assert_eq!(*status, 500, "{body}");
        for inside in [
            "encoding_aes_key",
            "callback_mode",
            "kind",
            "bogus",
            &world.prefix,
            TOKEN,
            AES_KEY,
            SECRET,
        ] {
            assert!(!body.contains(inside), "{inside} in {body}");
        }
        assert!(reads <= 1, "{reads} GetParameters for 1000 callbacks");
    }
    assert!(
        calls.total() <= 4,
        "one listing, one read per app: {}",
        calls.total()
    );
    // The error kept is the error read: it names the app and the parameter, never a value.
    for appid in [&no_key, &bad_kind] {
        let first = secrets.app(appid).await.unwrap_err();
        assert_eq!(secrets.app(appid).await.unwrap_err(), first);
        assert!(
            matches!(&first, ConfigError::InvalidParameter { appid: a, .. } if a == appid),
            "{first:?}"
        );
        let shown = format!("{first} {first:?}");
        for secret in [TOKEN, AES_KEY, SECRET] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

#[tokio::test]
async fn a_half_written_app_is_not_listed() {
    wxpush_tests::remember_secrets([TOKEN.into(), AES_KEY.into(), SECRET.into()]);
    let world = TokenWorld::new(vec![]).await;
    let (half, whole) = (random_appid(), random_appid());
    // What `wxpush apps put` leaves when it fails before its last write, `kind`.
    let all_but_kind = [
        ("app_secret", SECRET),
        ("callback_token", TOKEN),
        ("encoding_aes_key", AES_KEY),
        ("callback_mode", "safe"),
    ];
    put(&world, &half, &all_but_kind).await;
    put(&world, &whole, &all_but_kind).await;
    put(&world, &whole, &[("kind", "official_account")]).await;
    for store in [
        SsmSecretStore::new(world.ssm.clone(), &world.prefix),
        SsmSecretStore::callback_only(world.ssm.clone(), &world.prefix),
    ] {
        let listed = store.list_apps().await.unwrap();
        assert_eq!(listed, vec![whole.clone()], "only the app with its kind");
    }
    let (secrets, calls) = callback_secrets(&world).await;
    let svc = CallbackService::new(secrets.clone(), world.state_store(), RecordingQueue::new());
    let answers = flood(&svc, &half, 1000).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0, 404, "{}", answers[0].1);
    println!(
        "1000 callbacks to a half-written app: {} SSM requests ({} GetParameters)",
        calls.total(),
        calls.of("GetParameters")
    );
    assert_eq!(calls.of("GetParameters"), 0, "unlisted: never read");
    assert_eq!(calls.total(), 1, "one listing");
    // Its `kind` written, the app is served (a new instance lists it at once).
    put(&world, &half, &[("kind", "official_account")]).await;
    let (secrets, _) = callback_secrets(&world).await;
    let app = secrets.app(&half).await.unwrap();
    assert_eq!(app.callback_token.as_ref().unwrap().expose(), TOKEN);
}
