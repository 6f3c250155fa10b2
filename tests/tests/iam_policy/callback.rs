//! The callback function: URL verification, a new follower, a known follower, a delivery
//! report, a subscription grant, and a retried push (nonce and event already seen).

use crate::Stack;
use crate::policy::{check, check_resources, policy};
use crate::recorder::recorder;
use wxpush_shared::callback::service::CallbackService;
use wxpush_shared::clock::now_unix;
use wxpush_shared::runtime::CallbackDeps;
use wxpush_shared::store::{Attr, ItemKey, Op, attrs};
use wxpush_tests::signed_query;

fn xml(from: &str, time: i64, body: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName><CreateTime>{time}</CreateTime>{body}</xml>"
    )
}

/// The pushes WeChat sends, in order: a new follower, a known follower, a delivery report
/// (the official account's), a grant (the mini program's).
fn pushes(now: i64) -> [String; 4] {
    [
        xml(
            "o-new",
            now,
            "<MsgType>event</MsgType><Event>subscribe</Event><EventKey></EventKey>",
        ),
        xml(
            "o-iam",
            now,
            "<MsgType>event</MsgType><Event>subscribe</Event><EventKey></EventKey>",
        ),
        xml(
            "o-iam",
            now + 1,
            "<MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>1</MsgID><Status>success</Status>",
        ),
        xml(
            "m-iam",
            now,
            "<MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>SUB1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent>",
        ),
    ]
}

/// A follower whose unionid wxpush knows (its mapping comes from the account record).
async fn known_follower(s: &Stack, now: i64) {
    s.world
        .state_store()
        .record(
            &[Op::Set {
                key: ItemKey::account(&s.oa, "o-iam"),
                attrs: attrs([
                    ("unionid", Attr::S("u-iam".into())),
                    ("subscribed", Attr::Bool(true)),
                ]),
            }],
            now,
        )
        .await
        .unwrap();
}

pub async fn calls_what_its_policy_allows(s: &Stack) {
    let rec = recorder().await;
    let deps = CallbackDeps::build(&rec.sdk().await, &s.env);
    assert!(deps.forwarding);
    let callback = CallbackService::new(deps.secrets, deps.state_store, deps.queue)
        .with_forwarding(deps.forwarding);
    let now = now_unix();
    let q = |extra: &[(&str, &str)]| {
        signed_query("cbtoken", &now.to_string(), &wxpush_tests::nonce(), extra)
    };
    callback
        .verify_url(&s.oa, &q(&[("echostr", "hi")]), now)
        .await
        .unwrap();
    known_follower(s, now).await;
    for (i, body) in pushes(now).iter().enumerate() {
        let appid = if i == 3 { &s.mp } else { &s.oa };
        let query = q(&[]);
        callback
            .receive(appid, &query, body.as_bytes(), now)
            .await
            .unwrap();
        if i == 0 {
            // WeChat's retry: the same signed query and body.
            callback
                .receive(appid, &query, body.as_bytes(), now)
                .await
                .unwrap();
        }
    }
    // The callback reads only its four parameters by name (never an AppSecret), and queues
    // only to the jobs queue.
    check_resources(
        "callback",
        &rec.resources(),
        &s.world.prefix,
        Some(&[
            "kind",
            "callback_token",
            "encoding_aes_key",
            "callback_mode",
        ]),
        &s.queue_url,
        None,
        None,
    );
    check(
        "CallbackFunction",
        &policy("CallbackFunction", "\n  SendFunction:"),
        &rec.uses(),
        // kms: moto's SSM decrypts without KMS, and the data-key grants apply only with a
        // customer key (KmsKeyArn).
        &["kms:Decrypt", "kms:GenerateDataKey"],
    );
}
