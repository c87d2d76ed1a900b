//! The HTTP surface around streams: several streams in one app, `/openapi.json`,
//! the configuration file, and the `custom_app` example built and exercised.

use std::time::Duration;

use wasmrtc::{Stream, StreamConfig, Transport};
use wasmrtc_tests::{guests, peer, test_runtime};

async fn two_stream_app() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let rt = test_runtime();
    let transport = Transport::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let echo = rt.load_file("echo", guests::ECHO).await.unwrap();
    let flip = rt.load_file("flip", guests::FLIP).await.unwrap();
    let streams = vec![
        (
            "/audio".to_string(),
            Stream::new(echo, transport.clone(), StreamConfig::default()),
        ),
        (
            "/video".to_string(),
            Stream::new(flip, transport, StreamConfig::default()),
        ),
    ];
    peer::serve_router(wasmrtc::http::app(&streams)).await
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `POST url` with a JSON body: the status.
async fn post(url: &str, body: serde_json::Value) -> u16 {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn openapi_lists_every_mounted_route_with_its_prefix() {
    let (addr, server) = two_stream_app().await;
    let (status, body) = get(&format!("http://{addr}/openapi.json")).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for prefix in ["/audio", "/video"] {
        for route in [
            "/webrtc/offer",
            "/input_hook",
            "/outputs",
            "/websocket/offer",
            "/telephone/incoming",
        ] {
            assert!(
                paths.contains_key(&format!("{prefix}{route}")),
                "{prefix}{route} missing"
            );
        }
    }
    assert!(doc["paths"]["/audio/webrtc/offer"]["post"].is_object());
    // The index lists both streams, and each stream answers under its own prefix.
    let (_, index) = get(&format!("http://{addr}/")).await;
    assert!(
        index.contains("/audio/") && index.contains("/video/"),
        "{index}"
    );
    let (status, spec) = get(&format!("http://{addr}/video/spec")).await;
    assert_eq!(status, 200, "{spec}");
    let (status, stats) = get(&format!("http://{addr}/stats")).await;
    assert_eq!(status, 200);
    assert!(stats.contains("handler_ns"), "{stats}");
    server.abort();
}

#[test]
fn a_bad_configuration_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("wasmrtc-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // The error loading a file of `text`.
    let load_err = |name: &str, text: &str| {
        wasmrtc::config::load(&write(name, text))
            .unwrap_err()
            .to_string()
    };
    let err = load_err(
        "typo.toml",
        "[[stream]]\nname = \"echo\"\ncomponet = \"x.wasm\"\n",
    );
    assert!(
        err.contains("typo.toml") && err.contains("line 3") && err.contains("componet"),
        "{err}"
    );

    let err = load_err(
        "missing.toml",
        "\n[[stream]]\nname = \"echo\"\ncomponent = \"nope.wasm\"\n",
    );
    assert!(
        err.contains("line 4") && err.contains("`component`") && err.contains("nope.wasm"),
        "{err}"
    );

    let echo = std::fs::canonicalize(guests::ECHO).unwrap();
    let err = load_err(
        "twice.toml",
        &format!(
            "[[stream]]\nname = \"a\"\ncomponent = {echo:?}\n[[stream]]\nname = \"a\"\ncomponent = {echo:?}\n"
        ),
    );
    assert!(
        err.contains("line 5") && err.contains("declared twice"),
        "{err}"
    );

    let good = write(
        "good.toml",
        &format!(
            "[[stream]]\nname = \"a\"\ncomponent = {echo:?}\nconcurrency_limit = 2\n[[stream]]\nname = \"b\"\nprefix = \"/bee\"\ncomponent = {echo:?}\n"
        ),
    );
    let cfg = wasmrtc::config::load(&good).unwrap();
    let prefixes: Vec<String> = cfg.streams.iter().map(|s| s.prefix()).collect();
    assert_eq!(prefixes, ["/streams/a", "/bee"]);
    assert_eq!(cfg.streams[0].concurrency_limit, Some(2));
}

/// Kills the child process when dropped, so a failed test leaves nothing running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_custom_app_example_builds_and_serves_its_routes() {
    // Building it is part of the test: the example must compile.
    let bin = wasmrtc_tests::custom_app_example();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = Child(
        std::process::Command::new(bin)
            .args([guests::BRIGHTNESS, &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut page = None;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{base}/")).await {
            page = Some(r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.expect("the app answers").contains("My app"));
    let body = serde_json::json!({"webrtc_id": "nobody", "x": 1});
    assert_eq!(
        post(&format!("{base}/input_hook"), body).await,
        400,
        "its own input hook refuses an unknown id"
    );
    let (status, _) = get(&format!("{base}/updates?webrtc_id=nobody")).await;
    assert_eq!(status, 404, "its own SSE route refuses an unknown id");
    let body = serde_json::json!({"sdp": "v=0", "type": "offer"});
    assert_eq!(
        post(&format!("{base}/stream/webrtc/offer"), body).await,
        422,
        "the mounted stream's signaling answers under /stream"
    );
    let (status, spec) = get(&format!("{base}/stream/spec")).await;
    assert_eq!(status, 200);
    assert!(spec.contains("brightness"), "{spec}");
}

#[tokio::test]
async fn an_abandoned_offer_is_reaped_and_frees_its_slot() {
    let rt = test_runtime();
    let transport = Transport::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let echo = rt.load_file("echo", guests::ECHO).await.unwrap();
    let config = StreamConfig {
        concurrency_limit: Some(2),
        connect_timeout: Duration::from_millis(800),
        ..StreamConfig::default()
    };
    let stream = Stream::new(echo, transport, config);
    let (addr, server) = peer::serve(stream.clone()).await;
    let client = reqwest::Client::new();
    let offer = |id: &str| {
        client
            .post(format!("http://{addr}/webrtc/offer"))
            .json(&serde_json::json!({"sdp": peer::abandoned_offer(), "type": "offer", "webrtc_id": id}))
            .send()
    };
    // Two data-channel-only offers fill a limit of 2; the third is refused.
    for id in ["a", "b"] {
        let answer: serde_json::Value = offer(id).await.unwrap().json().await.unwrap();
        assert_eq!(answer["type"], "answer", "{answer}");
    }
    assert_eq!(stream.active_connections(), 2);
    let refused: serde_json::Value = offer("c").await.unwrap().json().await.unwrap();
    assert_eq!(
        refused,
        serde_json::json!({"status": "failed", "meta": {"error": "concurrency_limit_reached", "limit": 2}})
    );
    // Neither ever connects: the reaper frees both slots after the connect timeout.
    let freed = peer::poll_until(Duration::from_secs(10), || {
        stream.active_connections() == 0 && stream.connection_ids().is_empty()
    })
    .await;
    assert!(freed, "{} slots still held", stream.active_connections());
    let answer: serde_json::Value = offer("d").await.unwrap().json().await.unwrap();
    assert_eq!(
        answer["type"], "answer",
        "a new offer is admitted: {answer}"
    );
    server.abort();
}
