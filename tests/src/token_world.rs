//! A token test's world in moto: one table, one SSM prefix, the emulator, and managers over
//! them as Lambda instances would have.

use crate::emulator_server::{EmulatorServer, emulated};
use crate::moto::{SsmApp, create_table, put_app, random_appid, sdk_config, unique};
use aws_sdk_ssm::types::ParameterType;
use std::sync::Arc;
use std::time::Duration;
use wxpush_cli::sandbox::EmulatedApp;
use wxpush_shared::AppKind;
use wxpush_shared::secrets::{CachedSecretStore, SecretStore, SsmSecretStore};
use wxpush_shared::token::{AccessToken, DynamoTokenStore, TokenManager, TokenPolicy, TokenStore};

/// Everything a token test needs: one moto table, one SSM prefix, the emulator.
pub struct TokenWorld {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub table: String,
    pub prefix: String,
    pub emulator: EmulatorServer,
}

impl TokenWorld {
    pub async fn new(apps: Vec<EmulatedApp>) -> TokenWorld {
        let sdk = sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let table = create_table(&dynamo).await;
        let prefix = format!("/{}", unique("wxpush-test-"));
        let emulator = EmulatorServer::start(apps).await;
        TokenWorld {
            dynamo,
            ssm,
            table,
            prefix,
            emulator,
        }
    }

    pub fn store(&self) -> Arc<dyn TokenStore> {
        Arc::new(DynamoTokenStore::new(
            self.dynamo.clone(),
            self.table.clone(),
        ))
    }

    pub fn state_store(&self) -> Arc<dyn wxpush_shared::store::StateStore> {
        Arc::new(wxpush_shared::store::DynamoStateStore::new(
            self.dynamo.clone(),
            self.table.clone(),
        ))
    }

    pub fn secrets(&self) -> Arc<dyn SecretStore> {
        Arc::new(CachedSecretStore::new(
            SsmSecretStore::new(self.ssm.clone(), &self.prefix),
            Duration::from_secs(300),
            64,
        ))
    }

    /// A new manager, as a new Lambda instance would have: own cache, own lease identity,
    /// own SSM cache and HTTP client.
    pub fn manager(&self, policy: TokenPolicy, timeout_ms: u64) -> Arc<TokenManager> {
        Arc::new(TokenManager::new(
            self.store(),
            self.secrets(),
            self.emulator.client(timeout_ms),
            policy,
        ))
    }

    /// A world with one official account known to the emulator and configured in SSM.
    pub async fn with_app(secret: &str, token_api: Option<&str>) -> (TokenWorld, String) {
        let appid = random_appid();
        let world = TokenWorld::new(vec![emulated(&appid, secret, AppKind::OfficialAccount)]).await;
        let app = SsmApp {
            appid: &appid,
            kind: Some("official_account"),
            app_secret: Some(secret),
            token_api,
        };
        put_app(&world.ssm, &world.prefix, app).await;
        (world, appid)
    }

    /// An official account and a mini program linked to it (`linked_official_account`), both
    /// known to the emulator (secrets `oa-secret`, `mp-secret`) and configured in SSM.
    pub async fn with_oa_and_mp() -> (TokenWorld, String, String) {
        let (oa, mp) = (random_appid(), random_appid());
        let world = TokenWorld::new(vec![
            emulated(&oa, "oa-secret", AppKind::OfficialAccount),
            emulated(&mp, "mp-secret", AppKind::MiniProgram),
        ])
        .await;
        let apps = [
            (&oa, "official_account", "oa-secret"),
            (&mp, "mini_program", "mp-secret"),
        ];
        for (appid, kind, secret) in apps {
            put_app(
                &world.ssm,
                &world.prefix,
                SsmApp {
                    appid,
                    kind: Some(kind),
                    app_secret: Some(secret),
                    token_api: None,
                },
            )
            .await;
        }
        world
            .ssm
            .put_parameter()
            .name(format!(
                "{}/apps/{mp}/linked_official_account",
                world.prefix
            ))
            .value(&oa)
            .r#type(ParameterType::String)
            .send()
            .await
            .expect("put parameter in moto");
        (world, oa, mp)
    }
}

/// `requests` concurrent `get`s spread round-robin over `managers` (as Lambda instances),
/// each required to succeed.
pub async fn concurrent_gets(
    managers: &[Arc<TokenManager>],
    appid: &str,
    requests: usize,
) -> Vec<AccessToken> {
    let tasks: Vec<_> = (0..requests)
        .map(|i| {
            let (m, appid) = (managers[i % managers.len()].clone(), appid.to_string());
            tokio::spawn(async move { m.get(&appid).await })
        })
        .collect();
    let mut tokens = Vec::with_capacity(requests);
    for t in tasks {
        tokens.push(t.await.expect("task").expect("every caller gets a token"));
    }
    tokens
}
