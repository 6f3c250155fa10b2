//! moto, the real AWS APIs on 127.0.0.1 through the real SDK: its configuration, fresh
//! tables shaped like template.yaml's, and apps' parameters in SSM.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_ssm::types::ParameterType;

/// The SDK configuration for moto. Panics (rather than skipping) when the suite was not
/// started through `scripts/test`, so a test can never pass without its backing server.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run the suite with `bash scripts/test`, which starts moto",
    );
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "tests only talk to 127.0.0.1, not {endpoint}"
    );
    wxpush_shared::aws::load_sdk_config().await
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A fresh table shaped like the one in template.yaml (pk/sk strings, TTL on `ttl`).
pub async fn create_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("wxpush-test-");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table in moto");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL in moto");
    name
}

/// An app's parameters in SSM as template.yaml documents them. `None` leaves one out.
pub struct SsmApp<'a> {
    pub appid: &'a str,
    pub kind: Option<&'a str>,
    pub app_secret: Option<&'a str>,
    pub token_api: Option<&'a str>,
}

pub async fn put_app(ssm: &aws_sdk_ssm::Client, prefix: &str, app: SsmApp<'_>) {
    let mut params = vec![(
        "callback_token",
        Some("cbtoken"),
        ParameterType::SecureString,
    )];
    params.push(("app_secret", app.app_secret, ParameterType::SecureString));
    params.push(("kind", app.kind, ParameterType::String));
    params.push(("token_api", app.token_api, ParameterType::String));
    for (name, value, kind) in params {
        if let Some(value) = value {
            ssm.put_parameter()
                .name(format!("{prefix}/apps/{}/{name}", app.appid))
                .value(value)
                .r#type(kind)
                .overwrite(true)
                .send()
                .await
                .expect("put parameter in moto");
        }
    }
}

pub fn random_appid() -> String {
    format!("wx{:016x}", rand::random::<u64>())
}
