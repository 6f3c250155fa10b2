//! Sending, against real moto DynamoDB/SSM and the WeChat emulator: every message type, the
//! error mappings, unionid routing, idempotency, token refresh mid-stream, timeouts and -1
//! storms without duplicates.

mod custom;
mod refusals_and_retries;
mod template_and_subscribe;

use serde_json::{Value, json};
use std::time::Duration;
use wxpush_send::SendService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::store::{Attr, ItemKey, Op, attrs};
use wxpush_shared::token::TokenPolicy;
use wxpush_tests::TokenWorld;

struct World {
    world: TokenWorld,
    oa: String,
    mp: String,
    svc: SendService,
}

const TIMEOUT_MS: u64 = 700;

async fn world() -> World {
    let (world, oa, mp) = TokenWorld::with_oa_and_mp().await;
    let svc = SendService::new(
        world.manager(TokenPolicy::default(), TIMEOUT_MS),
        world.state_store(),
        Duration::from_millis(TIMEOUT_MS),
    );
    World { world, oa, mp, svc }
}

impl World {
    async fn send_with(
        &self,
        appid: &str,
        body: &Value,
        key: Option<&str>,
        budget: Duration,
    ) -> (u16, Value) {
        wxpush_tests::send_message(&self.svc, appid, body, key, budget).await
    }
    async fn send(&self, appid: &str, body: Value) -> (u16, Value) {
        self.send_with(appid, &body, None, Duration::from_secs(20))
            .await
    }
    async fn user(&self, appid: &str, openid: &str, extra: Value) {
        let mut u = json!({"appid": appid, "openid": openid});
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.world.emulator.control("/users", u).await;
    }
    /// The openid↔unionid mapping, as the callback and the login keep it.
    async fn link(&self, appid: &str, openid: &str, unionid: &str) {
        let s = |v: &str| Attr::S(v.to_string());
        let ops = [
            Op::Set {
                key: ItemKey::account(appid, openid),
                attrs: attrs([
                    ("appid", s(appid)),
                    ("openid", s(openid)),
                    ("unionid", s(unionid)),
                ]),
            },
            Op::Set {
                key: ItemKey::union_account(unionid, appid),
                attrs: attrs([("appid", s(appid)), ("openid", s(openid))]),
            },
        ];
        self.world
            .state_store()
            .record(&ops, now_unix())
            .await
            .unwrap();
    }
    async fn delivered(&self, appid: &str) -> Vec<Value> {
        self.world.emulator.delivered(appid).await
    }
    /// A fault the emulator injects (`POST /sandbox/faults`).
    async fn fault(&self, fault: Value) {
        self.world.emulator.control("/faults", fault).await;
    }
    fn calls(&self, path: &str) -> u64 {
        self.world.emulator.emu.calls(path)
    }
}

fn template(to: Value) -> Value {
    json!({"type": "template", "to": to, "template_id": "TPL_order", "url": "https://shop.example.com/o/1",
           "data": {"thing1": {"value": "订单已发货"}, "character_string2": {"value": "SN-20261125"}}})
}

fn subscribe(to: Value) -> Value {
    json!({"type": "subscribe", "to": to, "template_id": "SUB_1", "page": "pages/order?id=1", "miniprogram_state": "formal",
           "lang": "zh_CN", "data": {"thing1": {"value": "已发货"}, "phrase2": {"value": "配送中"}}})
}
