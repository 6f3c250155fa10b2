//! What the store holds after a sync, read back item by item.

use crate::world::{SyncWorld, openid, unionid};
use std::collections::HashMap;
use wxpush_shared::store::{Attr, ItemKey};

impl SyncWorld {
    /// Items by key, with `BatchGetItem` (100 keys a call, unprocessed keys asked again).
    async fn batch_get(&self, keys: &[ItemKey]) -> HashMap<ItemKey, HashMap<String, Attr>> {
        use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder();
            for k in chunk {
                request = request.keys(HashMap::from([
                    ("pk".to_string(), AttributeValue::S(k.pk.clone())),
                    ("sk".to_string(), AttributeValue::S(k.sk.clone())),
                ]));
            }
            let mut pending = Some(request.consistent_read(true).build().unwrap());
            for _ in 0..10 {
                let Some(req) = pending.take() else { break };
                let out = self
                    .world
                    .dynamo
                    .batch_get_item()
                    .request_items(&self.world.table, req)
                    .send()
                    .await
                    .unwrap();
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.world.table))
                    .into_iter()
                    .flatten()
                {
                    let text = |k: &str| item[k].as_s().unwrap().clone();
                    let mut a = HashMap::new();
                    for (name, v) in item {
                        let v = match v {
                            AttributeValue::S(s) => Attr::S(s.clone()),
                            AttributeValue::N(n) => Attr::N(n.parse().unwrap()),
                            AttributeValue::Bool(b) => Attr::Bool(*b),
                            _ => continue,
                        };
                        a.insert(name.clone(), v);
                    }
                    found.insert(ItemKey::new(text("pk"), text("sk")), a);
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.world.table))
                    .cloned();
            }
        }
        found
    }

    /// Every follower `0..n` stored once, subscribed, with the right unionid, and listed under
    /// that unionid with the right openid; every departed user stored unsubscribed, there too.
    pub async fn assert_mapped(&self, n: usize, departed: usize) {
        let accounts: HashMap<String, wxpush_shared::store::Attrs> = self
            .store
            .query(&format!("acct#{}", self.oa))
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(accounts.len(), n + departed, "one account item per user");
        let mut union_keys = vec![];
        for i in 0..n {
            let a = &accounts[&format!("openid#{}", openid(i))];
            assert_eq!(a["subscribed"], Attr::Bool(true), "{}", openid(i));
            match unionid(i) {
                Some(u) => {
                    assert_eq!(a.get("unionid"), Some(&Attr::S(u.clone())));
                    union_keys.push((ItemKey::union_account(&u, &self.oa), openid(i), true));
                }
                None => assert_eq!(a.get("unionid"), None),
            }
        }
        for i in 0..departed {
            let a = &accounts[&format!("openid#gone{i:03}")];
            assert_eq!(a["subscribed"], Attr::Bool(false), "gone{i:03}");
            assert_eq!(a["unionid"], Attr::S(format!("UG{i}")));
            union_keys.push((
                ItemKey::union_account(&format!("UG{i}"), &self.oa),
                format!("gone{i:03}"),
                false,
            ));
        }
        let keys: Vec<ItemKey> = union_keys.iter().map(|(k, _, _)| k.clone()).collect();
        let unions = self.batch_get(&keys).await;
        assert_eq!(unions.len(), keys.len(), "every unionid lists the account");
        for (key, openid, subscribed) in &union_keys {
            let a = &unions[key];
            assert_eq!(a["openid"], Attr::S(openid.clone()), "{key:?}");
            assert_eq!(a["subscribed"], Attr::Bool(*subscribed), "{key:?}");
        }
    }
}
