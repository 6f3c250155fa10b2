//! The console's routes on `wxpush serve --sandbox` over HTTP: only this machine (a loopback
//! peer and a local `Host`), the security headers on every answer, the files it is made of,
//! and its state route (the bearer key; each app's token state, never the token).

use serde_json::Value;
use wxpush_cli::local_server::demo_apps;
use wxpush_tests::{LocalClient, local_server};

const KEY: &str = "console-key";
const OA: &str = "wxd0000000000000a1";

fn csp(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_page_and_its_files_carry_a_strict_policy() {
    let server = local_server(demo_apps(), KEY).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = server.url();
    for (path, kind) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/main.js", "text/javascript; charset=utf-8"),
        ("/console/dom.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let resp = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], kind, "{path}");
        let policy = csp(&resp);
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    let page = http
        .get(format!("{url}/console/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<script type="module" src="main.js"></script>"#));
    let resp = http.get(format!("{url}/console")).send().await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "/console/");
    let resp = http
        .get(format!("{url}/console/secrets.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(!csp(&resp).is_empty(), "errors carry the policy too");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn only_this_machine_reaches_the_console() {
    let server = local_server(demo_apps(), KEY).await;
    let http = reqwest::Client::new();
    let url = format!("{}/console/", server.url());
    // A page on another name that rebinds its DNS to 127.0.0.1 sends its own name.
    for host in ["evil.example", "evil.example:3000", "127.0.0.1.nip.io"] {
        let resp = http.get(&url).header("host", host).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{host}");
        assert!(!csp(&resp).is_empty());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden_host", "{host}");
    }
    for host in ["localhost:1", "127.0.0.1", "[::1]:3000"] {
        let resp = http.get(&url).header("host", host).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn a_peer_beyond_loopback_is_refused() {
    use wxpush_cli::local_server::{DataLocation, ServeConfig, start};
    let Some(ip) = this_machines_address() else {
        panic!("this test needs an address other than loopback on this machine");
    };
    let server = start(ServeConfig {
        host: "0.0.0.0".into(),
        port: 0,
        apps: demo_apps(),
        sandbox: true,
        data: DataLocation::Memory,
        api_key: KEY.into(),
        wechat: Default::default(),
        refresh_every: std::time::Duration::from_secs(3600),
        refresh_window: std::time::Duration::from_secs(900),
        sync: Default::default(),
        batches: Default::default(),
        forward: None,
        sweep_every: std::time::Duration::from_secs(3600),
        callback_guard: Default::default(),
    })
    .await
    .unwrap();
    let port = server.addr.port();
    let http = reqwest::Client::new();
    // The same server, the same Host: from loopback it answers, from this machine's other
    // address (not loopback) it refuses.
    let near = http
        .get(format!("http://127.0.0.1:{port}/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(near.status(), 200);
    let far = http
        .get(format!("http://{ip}:{port}/console/"))
        .header("host", format!("127.0.0.1:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(far.status(), 403);
    // The sandbox controls the console reads (the phones: every user's chat) likewise.
    for (base, expected) in [("127.0.0.1".to_string(), 200), (ip.to_string(), 403)] {
        let resp = http
            .get(format!("http://{base}:{port}/sandbox/phones"))
            .header("host", format!("127.0.0.1:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "/sandbox/phones from {base}");
    }
}

/// An address of this machine that is not loopback (the one its default route would use).
fn this_machines_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn the_state_route_needs_the_key_and_never_shows_a_token() {
    let server = local_server(demo_apps(), KEY).await;
    let http = reqwest::Client::new();
    let state = format!("{}/console/state", server.url());
    let resp = http.get(&state).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http.get(&state).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), 401);

    let client = LocalClient::new(&server, KEY);
    let (status, before) = client.get("/console/state").await;
    assert_eq!(status, 200);
    assert_eq!(before["sandbox"], true);
    assert_eq!(before["apps"][0]["appid"], OA);
    assert_eq!(before["apps"][0]["token"]["state"], "none");
    assert_eq!(before["apps"][1]["linked_official_account"], OA);

    let (_, token) = client.get(&format!("/v1/apps/{OA}/token")).await;
    let token = token["access_token"].as_str().unwrap().to_string();
    let (_, after) = client.get("/console/state").await;
    let oa = &after["apps"][0];
    assert_eq!(oa["token"]["state"], "valid", "{oa}");
    let left = oa["token"]["expires_in"].as_i64().unwrap();
    assert!((7000..=7200).contains(&left), "{left}");
    assert_eq!(oa["follower_sync"], Value::Null);
    let text = after.to_string();
    assert!(!text.contains(&token), "the token reached the console");
    for secret in server.emulator.as_ref().unwrap().secrets() {
        assert!(!text.contains(&secret), "a secret reached the console");
    }
}
