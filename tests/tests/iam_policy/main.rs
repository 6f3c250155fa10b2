//! template.yaml's IAM policies against what the code does. Each function's clients are built
//! exactly as its `main` builds them (`CallbackDeps::build`, `AwsDeps::build`, the send
//! service, the worker's runner), pointed at a recording proxy in front of moto; a scenario
//! drives every route, event and job kind of that function; then every recorded AWS operation
//! (`TransactWriteItems` as the per-item actions IAM checks, with the item's partition key) must
//! be allowed by that function's policy, and every action and key prefix the policy allows must
//! have been used — exactly what the code calls, no more.

mod callback;
mod policy;
mod recorder;
mod send;
#[path = "../common/template_yaml.rs"]
mod template_yaml;
mod token_refresh;
mod worker;

use serde_json::json;
use std::time::Duration;
use wxpush_shared::runtime::RuntimeEnv;
use wxpush_tests::TokenWorld;

/// What each function runs against: moto's jobs queue and event bus, the emulator's apps and
/// users, and the environment the functions' `main`s read.
struct Stack {
    world: TokenWorld,
    oa: String,
    mp: String,
    sdk: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    bus: String,
    env: RuntimeEnv,
}

async fn stack() -> Stack {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let sdk = wxpush_tests::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = wxpush_tests::moto_queue(&sqs, "iam-jobs").await;
    let bus = wxpush_tests::unique("iam-bus");
    aws_sdk_eventbridge::Client::new(&sdk)
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let e = &world.emulator;
    let env = env(&world, &queue_url, &bus, &e.base);
    e.control(
        "/users",
        json!([
            {"appid": oa, "openid": "o-iam", "unionid": "u-iam"},
            {"appid": oa, "openid": "o-new", "unionid": "u-new"},
            {"appid": mp, "openid": "m-iam", "unionid": "u-iam"},
        ]),
    )
    .await;
    e.control(
        "/grants",
        json!({"appid": mp, "openid": "m-iam", "template_id": "SUB1"}),
    )
    .await;
    Stack {
        world,
        oa,
        mp,
        sdk,
        sqs,
        queue_url,
        bus,
        env,
    }
}

fn env(world: &TokenWorld, queue_url: &str, bus: &str, wechat_base: &str) -> RuntimeEnv {
    RuntimeEnv {
        table: world.table.clone(),
        ssm_prefix: world.prefix.clone(),
        secrets_ttl: Duration::from_secs(300),
        refresh_window: Duration::from_secs(900),
        queue_url: Some(queue_url.to_string()),
        event_bus: Some(bus.to_string()),
        wechat: wxpush_shared::wechat::WeChatClientConfig {
            api_base: wechat_base.to_string(),
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
        },
    }
}

/// Each function in turn, in the order their work flows: the callback and the send API
/// queue the jobs the worker then runs.
#[tokio::test]
async fn each_functions_policy_allows_exactly_what_its_code_calls() {
    let s = stack().await;
    callback::calls_what_its_policy_allows(&s).await;
    send::calls_what_its_policy_allows(&s).await;
    token_refresh::calls_what_its_policy_allows(&s).await;
    worker::calls_what_its_policy_allows(&s).await;
}
