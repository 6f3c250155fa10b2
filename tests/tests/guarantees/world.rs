//! The send service over moto behind the fault-injecting store, the emulator's two apps, and
//! the messages the send tests use.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wxpush_send::SendService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::send::service::claim_key;
use wxpush_shared::store::{Attr, Op, StateStore};
use wxpush_shared::token::{TokenManager, TokenPolicy};
use wxpush_tests::TokenWorld;
use wxpush_tests::faults::{Faults, FaultyStateStore};
use wxpush_tests::send_message as send;
pub struct World {
    pub world: TokenWorld,
    pub oa: String,
    pub mp: String,
    pub faults: Arc<Faults>,
    pub store: Arc<dyn StateStore>,
    pub tokens: Arc<TokenManager>,
    pub svc: Arc<SendService>,
}

/// The send service over moto behind the fault-injecting store, WeChat timeout `timeout_ms`.
pub async fn world(timeout_ms: u64) -> World {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let faults = Faults::new(11);
    let store: Arc<dyn StateStore> = FaultyStateStore::new(world.state_store(), faults.clone());
    let tokens = world.manager(TokenPolicy::default(), timeout_ms);
    let svc = Arc::new(SendService::new(
        tokens.clone(),
        store.clone(),
        Duration::from_millis(timeout_ms),
    ));
    let now = now_unix();
    for (appid, openid) in [(&oa, "fan"), (&mp, "mpuser")] {
        world
            .emulator
            .control(
                "/users",
                json!({"appid": appid, "openid": openid, "last_interaction": now}),
            )
            .await;
    }
    World {
        world,
        oa,
        mp,
        faults,
        store,
        tokens,
        svc,
    }
}

impl World {
    pub async fn send(&self, appid: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
        send(&self.svc, appid, body, key, Duration::from_secs(20)).await
    }
    pub async fn fault(&self, fault: Value) {
        self.world.emulator.control("/faults", fault).await;
    }
    pub async fn delivered(&self, appid: &str) -> Vec<Value> {
        self.world.emulator.delivered(appid).await
    }
    pub fn calls(&self, path: &str) -> u64 {
        self.world.emulator.emu.calls(path)
    }
    pub async fn record(&self, appid: &str, id: &str) -> Value {
        self.svc.sender.message(appid, id).await.unwrap()
    }
    /// The follower's unionid as WeChat's `user/info` answers it, for the official account.
    pub async fn wechat_knows(&self, openid: &str, unionid: &str) {
        self.world
            .emulator
            .control(
                "/users",
                json!({"appid": self.oa, "openid": openid, "unionid": unionid}),
            )
            .await;
    }
    /// Makes a claim's lease run out, as time would once its invocation ended.
    pub async fn expire_lease(&self, appid: &str, key: &str) {
        self.set_claim_time(appid, key, "lease_until", now_unix() - 1)
            .await;
    }
    /// Sets the time `field` of the claim of `key` (a lease's end, its `ttl`) as time would
    /// have.
    pub async fn set_claim_time(&self, appid: &str, key: &str, field: &str, at: i64) {
        let item = claim_key(appid, "test-caller", key);
        let mut claim = self.store.get(&item).await.unwrap().expect("a claim");
        claim.insert(field.into(), Attr::N(at));
        self.store
            .record(
                &[Op::Set {
                    key: item,
                    attrs: claim,
                }],
                now_unix(),
            )
            .await
            .unwrap();
    }
    /// Waits (up to 10 s) until the claim of `key` is in `state`: a slow machine must not
    /// turn "killed at this step" into "killed somewhere else".
    pub async fn await_claim(&self, appid: &str, key: &str, state: &str) {
        for _ in 0..500 {
            if self.claim_state(appid, key).await.as_deref() == Some(state) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("claim {key} never reached {state}");
    }
    pub async fn claim_state(&self, appid: &str, key: &str) -> Option<String> {
        let claim = self
            .store
            .get(&claim_key(appid, "test-caller", key))
            .await
            .unwrap()?;
        match claim.get("state") {
            Some(Attr::S(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

pub fn template() -> Value {
    json!({"type": "template", "to": {"openid": "fan"}, "template_id": "TPL_order",
           "data": {"thing1": {"value": "订单已发货"}}})
}

pub fn custom() -> Value {
    json!({"type": "custom", "to": {"openid": "fan"}, "msgtype": "text", "text": {"content": "您好"}})
}

pub fn subscribe() -> Value {
    json!({"type": "subscribe", "to": {"openid": "mpuser"}, "template_id": "SUB_1",
           "data": {"thing1": {"value": "已发货"}}})
}

pub const TEMPLATE: &str = "/cgi-bin/message/template/send";
pub const CUSTOM: &str = "/cgi-bin/message/custom/send";
pub const SUBSCRIBE: &str = "/cgi-bin/message/subscribe/send";
