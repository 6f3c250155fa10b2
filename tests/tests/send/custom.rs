//! Customer-service messages: the 48-hour window, every msgtype delivered as sent, and bad
//! ones refused before WeChat.

use crate::world;
use serde_json::{Value, json};

#[tokio::test]
async fn customer_service_messages_and_the_48_hour_window() {
    let w = world().await;
    let now = w.world.emulator.emu.now();
    w.user(&w.oa, "talker", json!({"last_interaction": now - 60}))
        .await;
    w.user(
        &w.oa,
        "silent",
        json!({"last_interaction": now - 49 * 3600}),
    )
    .await;
    let text = |to: &str| json!({"type": "custom", "to": {"openid": to}, "msgtype": "text", "text": {"content": "您好，订单已发货"}});
    let (status, body) = w.send(&w.oa, text("talker")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("sent")),
        "{body}"
    );
    assert!(body["wechat_msgid"].is_null());
    let (status, body) = w.send(&w.oa, text("silent")).await;
    assert_eq!(status, 403);
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["wechat_errcode"].as_i64()
        ),
        (Some("outside_service_window"), Some(45015))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("48 hours")
    );
    for (msgtype, object) in [
        ("image", json!({"media_id": "MEDIA"})),
        (
            "news",
            json!({"articles": [{"title": "上新", "url": "https://shop.example.com/n", "picurl": "https://shop.example.com/p.jpg"}]}),
        ),
        (
            "miniprogrampage",
            json!({"title": "看看", "appid": w.mp, "pagepath": "pages/index", "thumb_media_id": "THUMB"}),
        ),
    ] {
        let mut body = json!({"type": "custom", "to": {"openid": "talker"}, "msgtype": msgtype});
        body[msgtype] = object;
        let (status, resp) = w.send(&w.oa, body).await;
        assert_eq!(status, 200, "{msgtype}: {resp}");
    }
    assert_eq!(w.delivered(&w.oa).await.len(), 4);
}

/// Every customer-service msgtype of docs/wechat.md#customer-service-messages, one object each (the OA's, then the MP's).
fn custom_types(mp: &str) -> Vec<(&'static str, bool, Value)> {
    vec![
        ("text", false, json!({"content": "您好"})),
        ("image", false, json!({"media_id": "MEDIA_img-1"})),
        ("voice", false, json!({"media_id": "MEDIA_voice"})),
        (
            "video",
            false,
            json!({"media_id": "MEDIA_video", "thumb_media_id": "THUMB_1", "title": "开箱", "description": "新品开箱视频"}),
        ),
        (
            "music",
            false,
            json!({"title": "歌", "description": "一首歌", "musicurl": "https://m.example.com/a.mp3", "hqmusicurl": "https://m.example.com/a-hq.mp3", "thumb_media_id": "THUMB_2"}),
        ),
        (
            "news",
            false,
            json!({"articles": [{"title": "上新", "description": "秋季新品", "url": "https://shop.example.com/n", "picurl": "https://shop.example.com/p.jpg"}]}),
        ),
        ("mpnews", false, json!({"media_id": "MPNEWS_1"})),
        ("mpnewsarticle", false, json!({"article_id": "ARTICLE_1"})),
        (
            "msgmenu",
            false,
            json!({"head_content": "您对本次服务是否满意？", "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}], "tail_content": "欢迎再次光临"}),
        ),
        (
            "wxcard",
            false,
            json!({"card_id": "pDF3iY9tv9zCGCj4jTXFOo1DxHdo"}),
        ),
        (
            "miniprogrampage",
            false,
            json!({"title": "看看", "appid": mp, "pagepath": "pages/index", "thumb_media_id": "THUMB_3"}),
        ),
        (
            "link",
            true,
            json!({"title": "帮助", "description": "常见问题", "url": "https://help.example.com", "thumb_url": "https://help.example.com/t.png"}),
        ),
        ("text", true, json!({"content": "小程序客服"})),
        ("image", true, json!({"media_id": "MEDIA_mp"})),
        (
            "miniprogrampage",
            true,
            json!({"title": "订单", "pagepath": "pages/order", "thumb_media_id": "THUMB_4"}),
        ),
    ]
}

#[tokio::test]
async fn every_custom_type_is_delivered() {
    let w = world().await;
    let now = w.world.emulator.emu.now();
    for (i, (msgtype, from_mp, object)) in custom_types(&w.mp).into_iter().enumerate() {
        let app = if from_mp { &w.mp } else { &w.oa };
        // One user each: the 48-hour window allows 5 messages per interaction.
        let openid = format!("talker{i}");
        w.user(app, &openid, json!({"last_interaction": now - 60}))
            .await;
        let mut body = json!({"type": "custom", "to": {"openid": openid}, "msgtype": msgtype});
        body[msgtype] = object.clone();
        if msgtype == "text" && !from_mp {
            body["customservice"] = json!({"kf_account": "test1@kftest"});
        }
        let (status, resp) = w.send(app, body.clone()).await;
        assert_eq!(status, 200, "{msgtype}: {resp}");
        let delivered = w.delivered(app).await;
        let last = delivered.last().unwrap();
        assert_eq!(last["touser"], openid.as_str(), "{msgtype}");
        assert_eq!(last["body"]["msgtype"], msgtype);
        assert_eq!(last["body"][msgtype], object, "{msgtype}");
        assert_eq!(last["body"]["customservice"], body["customservice"]);
    }
    assert_eq!(w.delivered(&w.oa).await.len(), 11);
    assert_eq!(w.delivered(&w.mp).await.len(), 4);
}

/// Custom messages each wrong in one field: (app, msgtype, its object, the field refused).
fn bad_custom_messages<'a>(
    oa: &'a str,
    mp: &'a str,
) -> Vec<(&'a str, &'static str, Value, &'static str)> {
    vec![
        (oa, "fax", json!({}), "msgtype"),
        (oa, "voice", json!({}), "voice.media_id"),
        (
            oa,
            "voice",
            json!({"media_id": "has space"}),
            "voice.media_id",
        ),
        (
            oa,
            "video",
            json!({"media_id": "M"}),
            "video.thumb_media_id",
        ),
        (
            oa,
            "music",
            json!({"musicurl": "ftp://x", "hqmusicurl": "https://x.example.com/a", "thumb_media_id": "T"}),
            "music.musicurl",
        ),
        (oa, "mpnews", json!({"media_id": ""}), "mpnews.media_id"),
        (oa, "mpnewsarticle", json!({}), "mpnewsarticle.article_id"),
        (oa, "msgmenu", json!({"list": []}), "msgmenu.list"),
        (
            oa,
            "msgmenu",
            json!({"list": [{"id": "1"}]}),
            "msgmenu.list[0].content",
        ),
        (oa, "wxcard", json!({"cardid": "x"}), "wxcard.cardid"),
        (
            oa,
            "miniprogrampage",
            json!({"title": "t", "pagepath": "pages/a", "thumb_media_id": "T"}),
            "miniprogrampage.appid",
        ),
        (
            oa,
            "link",
            json!({"title": "t", "description": "d", "url": "https://a.example.com", "thumb_url": "https://a.example.com/t"}),
            "msgtype",
        ),
        (mp, "voice", json!({"media_id": "M"}), "msgtype"),
        (
            mp,
            "link",
            json!({"title": "t", "url": "https://a.example.com", "thumb_url": "https://a.example.com/t"}),
            "link.description",
        ),
        (
            oa,
            "text",
            json!({"content": "x".repeat(2049)}),
            "text.content",
        ),
    ]
}

#[tokio::test]
async fn bad_custom_messages_are_refused_before_wechat() {
    let w = world().await;
    let now = w.world.emulator.emu.now();
    w.user(&w.oa, "talker", json!({"last_interaction": now - 60}))
        .await;
    w.user(&w.mp, "talker", json!({"last_interaction": now - 60}))
        .await;
    let cases = bad_custom_messages(&w.oa, &w.mp);
    for (app, msgtype, object, field) in cases {
        let mut body = json!({"type": "custom", "to": {"openid": "talker"}, "msgtype": msgtype});
        if msgtype != "fax" {
            body[msgtype] = object;
        }
        let (status, resp) = w.send(app, body).await;
        assert_eq!(
            (status, resp["error"]["field"].as_str()),
            (422, Some(field)),
            "{msgtype}: {resp}"
        );
        if field == "msgtype" && msgtype == "fax" {
            let message = resp["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("mpnewsarticle") && message.contains("link"),
                "{message}"
            );
        }
    }
    let (status, resp) = w
        .send(
            &w.oa,
            json!({"type": "custom", "to": {"openid": "talker"}, "msgtype": "text", "text": {"content": "x"}, "customservice": {"kf_account": "nobody"}}),
        )
        .await;
    assert_eq!(
        (status, resp["error"]["field"].as_str()),
        (422, Some("customservice.kf_account"))
    );
    assert_eq!(w.calls("/cgi-bin/message/custom/send"), 0);
    assert!(w.delivered(&w.oa).await.is_empty());
}
