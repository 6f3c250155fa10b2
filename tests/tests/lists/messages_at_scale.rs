//! The message list with 100 000 messages in the embedded store (`WXPUSH_LIST_TEST_SIZE=N`
//! to resize): any page, the first or one deep down, reads only its own rows.

use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_send::SendService;
use wxpush_shared::AppKind;
use wxpush_shared::listing::{self, ListQuery};
use wxpush_shared::store::{EmbeddedStateStore, StateStore};
use wxpush_tests::{
    EmulatorServer, embedded_token_manager, emulated, memory_db, random_appid, seed_messages,
    seeded_message_id,
};

fn size() -> usize {
    std::env::var("WXPUSH_LIST_TEST_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_page_of_100_000_messages_reads_only_its_rows() {
    let count = size();
    let appid = random_appid();
    let emulator =
        EmulatorServer::start(vec![emulated(&appid, "s", AppKind::OfficialAccount)]).await;
    let db = memory_db();
    let store = EmbeddedStateStore::new(db.clone());
    let started = Instant::now();
    let start_ms = 1_700_000_000_000;
    seed_messages(&store, &appid, count, start_ms)
        .await
        .expect("seeding");
    println!("seeded {count} messages in {:?}", started.elapsed());
    let store: Arc<dyn StateStore> = Arc::new(store);
    let svc = SendService::new(
        embedded_token_manager(&emulator, &appid, "s", db),
        store,
        Duration::from_secs(1),
    );
    let page = |cursor: Option<String>| {
        let svc = &svc;
        let appid = &appid;
        async move {
            let query = ListQuery::parse(cursor.as_deref(), Some("100")).unwrap();
            let started = Instant::now();
            let page = svc.sender.messages(appid, &query).await.unwrap();
            (page, started.elapsed())
        }
    };
    let (first, first_took) = page(None).await;
    let list = first["messages"].as_array().unwrap();
    assert_eq!(list.len(), 100);
    let newest = seeded_message_id(start_ms + count as i64 - 1, count - 1);
    assert_eq!(list[0]["id"], newest.as_str());
    assert_eq!(list[0]["status"], "sent");
    // Deep down: the cursor of the message half-way through.
    let half = count / 2;
    let half_ms = start_ms + half as i64;
    let cursor = listing::sort_key(half_ms, &seeded_message_id(half_ms, half));
    let (deep, deep_took) = page(Some(cursor)).await;
    let expected = seeded_message_id(half_ms - 1, half - 1);
    assert_eq!(deep["messages"][0]["id"], expected.as_str());
    assert_eq!(deep["messages"].as_array().unwrap().len(), 100);
    println!("first page of 100 in {first_took:?}, a page half-way down in {deep_took:?}");
    // Generous for a debug build on a busy 2-core machine; a list that scanned every
    // message would take seconds here.
    for took in [first_took, deep_took] {
        assert!(took < Duration::from_millis(750), "a page took {took:?}");
    }
}
