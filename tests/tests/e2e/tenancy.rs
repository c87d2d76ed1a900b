//! Multi-tenant hosting (`wasmrtc::tenancy`): the admin API, hot swap under live
//! WebRTC connections, refused uploads, tenant isolation, metrics, the CLI, and a host
//! killed with SIGKILL mid-upload and restarted.
//!
//! Tenants `a` (token `token-a`) and `b` (token `token-b`); tenant streams are served
//! at `/t/{tenant}/{stream}/…`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmrtc::Transport;
use wasmrtc::tenancy::{Registry, SqliteStore, TenantConfig, Tenants, TokenHash, token_sha256};
use wasmrtc_tests::admin::{self, http, read};
use wasmrtc_tests::peer::{self, Media, PeerOptions, TestPeer};
use wasmrtc_tests::{HostProcess, guests, test_runtime, wasmrtc_bin};

const WAIT: Duration = Duration::from_secs(20);
const RATE: usize = peer::AUDIO_RATE as usize;
const TOKEN_A: &str = "token-a";
const TOKEN_B: &str = "token-b";

fn temp_dir(tag: &str) -> PathBuf {
    wasmrtc_tests::scratch_dir("tenancy", tag)
}

fn tenants() -> Vec<TenantConfig> {
    let mut a = TenantConfig::new("a", TOKEN_A);
    a.max_component_mb = 1;
    let mut b = TenantConfig::new("b", TOKEN_B);
    b.max_streams = 2;
    b.max_connections = 1;
    b.memory_mb = 32;
    vec![a, b]
}

/// An in-process host with tenants `a` and `b` on 127.0.0.1.
struct Host {
    base: String,
    dir: PathBuf,
    registry: Registry,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn host(tag: &str) -> Host {
    let dir = temp_dir(tag);
    let store = SqliteStore::open(&dir).expect("open the store");
    let transport =
        Transport::bind("127.0.0.1:0".parse().unwrap(), None).expect("bind the UDP socket");
    let registry = Registry::open(
        test_runtime(),
        transport,
        Tenants::new(tenants()).unwrap(),
        Arc::new(store),
    )
    .await
    .expect("open the registry");
    let (addr, _server) = peer::serve_router(registry.router(&[])).await;
    Host {
        base: format!("http://{addr}"),
        dir,
        registry,
    }
}

/// One admin call: (status, JSON reply or `Null`).
async fn api(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, reply, _) = admin::call(base, token, method, path, body).await;
    (status, reply)
}

/// The admin API as one tenant: each call's (status, JSON reply or `Null`).
#[derive(Clone, Copy)]
struct Tenant<'a> {
    base: &'a str,
    token: &'a str,
}

fn tenant<'a>(base: &'a str, token: &'a str) -> Tenant<'a> {
    Tenant { base, token }
}

impl Tenant<'_> {
    async fn call(self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        api(self.base, method, path, Some(self.token), body).await
    }

    /// `GET /api/streams`: the tenant's streams.
    async fn list(self) -> (u16, Value) {
        self.call("GET", "/api/streams", None).await
    }

    /// `POST /api/streams` for a stream named `name`, with `limits` besides.
    async fn create(self, name: &str, limits: Value) -> (u16, Value) {
        let mut body = json!({"name": name});
        for (k, v) in limits.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        self.call("POST", "/api/streams", Some(body)).await
    }

    /// `{method} /api/streams/{stream}{rest}`.
    async fn on(self, method: &str, stream: &str, rest: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, &format!("/api/streams/{stream}{rest}"), body)
            .await
    }

    async fn stream(self, stream: &str) -> (u16, Value) {
        self.on("GET", stream, "", None).await
    }

    async fn delete(self, stream: &str) -> (u16, Value) {
        self.on("DELETE", stream, "", None).await
    }

    async fn connections(self, stream: &str) -> (u16, Value) {
        self.on("GET", stream, "/connections", None).await
    }

    async fn rollback(self, stream: &str) -> (u16, Value) {
        self.on("POST", stream, "/rollback", None).await
    }

    async fn activate(self, stream: &str, version: u64) -> (u16, Value) {
        let body = json!({"version": version});
        self.on("POST", stream, "/activate", Some(body)).await
    }

    async fn set_limits(self, stream: &str, limits: Value) -> (u16, Value) {
        self.on("PUT", stream, "/limits", Some(limits)).await
    }

    /// Upload `bytes` as a new version of `stream`.
    async fn upload(self, stream: &str, bytes: Vec<u8>) -> (u16, Value) {
        admin::upload(self.base, self.token, stream, bytes).await
    }

    /// Create `stream` with `limits` and upload `component` as its version 1.
    async fn create_with(self, stream: &str, component: &str, limits: Value) {
        let (status, reply) = self.create(stream, limits).await;
        assert_eq!(status, 201, "create {stream}: {reply}");
        let (status, reply) = self.upload(stream, read(component)).await;
        assert_eq!(status, 201, "upload {stream}: {reply}");
        assert_eq!(reply["version"], 1, "{reply}");
    }
}

async fn get(url: &str) -> reqwest::Response {
    http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The default of the `gain` slider new connections get (1.0 for v1, 2.0 for v2).
async fn served_default(base: &str, tenant: &str, stream: &str) -> f64 {
    let reply = get(&format!("{base}/t/{tenant}/{stream}/spec")).await;
    assert_eq!(reply.status(), 200, "GET /t/{tenant}/{stream}/spec");
    let spec: Value = reply.json().await.unwrap();
    spec.pointer("/spec/inputs/0/control/Slider/default")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no gain default in {spec}"))
}

async fn connect(url: &str) -> TestPeer {
    peer::connect(url, Media::SendRecv, Media::None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_keeps_open_connections_on_their_version() {
    let host = host("swap").await;
    let base = &host.base;
    let a = tenant(base, TOKEN_A);
    a.create_with("gain", guests::GAIN, json!({})).await;
    let url = format!("{base}/t/a/gain");

    // Two connections on version 1 (factor 1).
    let old = [connect(&url).await, connect(&url).await];
    let mut before = Vec::new();
    for p in &old {
        before.push(p.level_after(0, WAIT).await);
    }
    eprintln!("v1 levels: {before:?}");
    assert!(before.iter().all(|l| *l > 2000.0), "v1 levels {before:?}");

    // Version 2 (factor 2) while they flow.
    let swap_started = Instant::now();
    let received_at_swap: Vec<usize> = old.iter().map(TestPeer::audio_len).collect();
    let (status, reply) = a.upload("gain", read(guests::GAIN_V2)).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(
        (reply["version"].clone(), reply["active"].clone()),
        (json!(2), json!(true))
    );
    assert_eq!(served_default(base, "a", "gain").await, 2.0);

    // A new connection gets version 2: twice the level.
    let new = connect(&url).await;
    let doubled = new.level_after(0, WAIT).await;

    // The old ones kept version 1's level, without a gap.
    for (i, p) in old.iter().enumerate() {
        let after = p.level_after(p.audio_len(), WAIT).await;
        let ratio = after / before[i];
        eprintln!(
            "old connection {i}: {:.0} -> {after:.0} after the swap",
            before[i]
        );
        assert!(
            (0.85..1.15).contains(&ratio),
            "old connection {i}: level ratio {ratio:.3}"
        );
        let got = p.audio_len() - received_at_swap[i];
        let expected = swap_started.elapsed().as_secs_f64() * RATE as f64;
        assert!(
            got as f64 > 0.8 * expected,
            "old connection {i}: {got} samples since the swap, {expected:.0} expected"
        );
    }
    let ratio = doubled / before[0];
    eprintln!("new connection on v2: {doubled:.0} (ratio {ratio:.3})");
    assert!((1.7..2.3).contains(&ratio), "v2 level ratio {ratio:.3}");

    let (status, conns) = a.connections("gain").await;
    assert_eq!(status, 200);
    assert_eq!(conns["by_version"], json!({"1": 2, "2": 1}), "{conns}");
    assert_eq!(conns["active_version"], 2);
    let ids: Vec<&str> = conns["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["version"] == 1)
        .filter_map(|c| c["id"].as_str())
        .collect();
    for p in &old {
        assert!(
            ids.contains(&p.webrtc_id()),
            "{} not on v1: {conns}",
            p.webrtc_id()
        );
    }

    // Rollback: new connections get version 1 again; the others are untouched.
    let (status, reply) = a.rollback("gain").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["from"].clone(), reply["active_version"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(served_default(base, "a", "gain").await, 1.0);
    let back = connect(&url).await;
    let level = back.level_after(0, WAIT).await;
    let ratio = level / before[0];
    eprintln!("after rollback: {level:.0} (ratio {ratio:.3})");
    assert!(
        (0.85..1.15).contains(&ratio),
        "level after rollback: ratio {ratio:.3}"
    );
    let again = new.level_after(new.audio_len(), WAIT).await;
    assert!(
        (again / doubled - 1.0).abs() < 0.15,
        "the v2 connection changed: {again:.0}"
    );

    let (_, conns) = a.connections("gain").await;
    assert_eq!(conns["by_version"], json!({"1": 3, "2": 1}), "{conns}");
    // Nothing further back than version 1.
    let (status, reply) = a.rollback("gain").await;
    assert_eq!(status, 409, "{reply}");

    // Explicit activation works too.
    let (status, reply) = a.activate("gain", 2).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(served_default(base, "a", "gain").await, 2.0);
    let (status, _) = a.activate("gain", 7).await;
    assert_eq!(status, 404);

    for mut p in old.into_iter().chain([new, back]) {
        p.close().await;
    }
}

/// Send a raw HTTP request (headers, then `body`), optionally half-closing after it;
/// the response text.
async fn raw_request(base: &str, head: &str, body: &[u8], half_close: bool) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and stop reading) before the body is all sent.
    let _ = s.write_all(body).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn upload_head(stream: &str, token: &str, length: usize) -> String {
    format!(
        "POST /api/streams/{stream}/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/wasm\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_with_a_reason_and_change_nothing() {
    let host = host("bad").await;
    let base = &host.base;
    let a = tenant(base, TOKEN_A);
    a.create_with("gain", guests::GAIN, json!({})).await;

    let mut truncated = read(guests::GAIN);
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "garbage",
            b"GIF89a not wasm at all".to_vec(),
            422,
            "not a WebAssembly file",
        ),
        ("empty", Vec::new(), 422, "not a WebAssembly file"),
        (
            "core module",
            wat::parse_str("(module)").unwrap(),
            422,
            "core WebAssembly module",
        ),
        (
            "forbidden import",
            read(guests::HOSTILE_IMPORT),
            422,
            "fixture:evil/raw-socket",
        ),
        (
            "bad spec",
            read(guests::BAD_SPEC),
            422,
            "spec is not acceptable",
        ),
        ("truncated component", truncated, 422, "invalid component"),
        (
            "wasi:http without a grant",
            read(guests::ASSISTANT),
            422,
            "has no outbound grant",
        ),
    ];
    for (what, bytes, status, reason) in cases {
        let (got, reply) = a.upload("gain", bytes).await;
        eprintln!("{what}: {got} {reply}");
        assert_eq!(got, status, "{what}: {reply}");
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(reason),
            "{what}: {message:?} lacks {reason:?}"
        );
    }

    // Oversized, announced: refused from Content-Length before the body is read (a
    // client still writing the body may see the connection close instead of the
    // answer, so this case sends the head alone). Tenant a may upload 1 MiB.
    let reply = raw_request(base, &upload_head("gain", TOKEN_A, 64 << 20), &[], false).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("too_large"), "{reply}");
    assert!(reply.contains("limit of 1048576 bytes"), "{reply}");
    // Oversized, chunked (no Content-Length): refused once the quota is passed.
    let head = format!(
        "POST /api/streams/gain/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Type: application/wasm\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut chunked = Vec::new();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 << 10).as_bytes());
        chunked.extend(std::iter::repeat_n(0u8, 64 << 10));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let reply = raw_request(base, &head, &chunked, false).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // A body cut short: the client announces the whole component and hangs up halfway.
    let gain = read(guests::GAIN_V2);
    let reply = raw_request(
        base,
        &upload_head("gain", TOKEN_A, gain.len()),
        &gain[..gain.len() / 2],
        true,
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("cut short"), "{reply}");
    // Not application/wasm.
    let reply = http()
        .post(format!("{base}/api/streams/gain/versions"))
        .bearer_auth(TOKEN_A)
        .header("content-type", "application/octet-stream")
        .body(read(guests::GAIN_V2))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 415);

    // Nothing changed: still one version, version 1 active and served.
    let (status, stream) = a.stream("gain").await;
    assert_eq!(status, 200);
    assert_eq!(stream["active_version"], 1, "{stream}");
    assert_eq!(stream["versions"].as_array().unwrap().len(), 1, "{stream}");
    assert_eq!(served_default(base, "a", "gain").await, 1.0);
    let files = std::fs::read_dir(host.dir.join("components"))
        .unwrap()
        .count();
    assert_eq!(files, 1, "only version 1's component is stored");

    let metrics = wasmrtc_tests::metrics_text(base).await;
    assert!(
        metrics.contains("wasmrtc_uploads_total{tenant=\"a\",result=\"rejected\"} 11"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wasmrtc_uploads_total{tenant=\"a\",result=\"accepted\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_and_touch_only_their_own_streams() {
    let host = host("isolation").await;
    let base = &host.base;
    let (a, b) = (tenant(base, TOKEN_A), tenant(base, TOKEN_B));
    a.create_with("gain", guests::GAIN, json!({})).await;

    // Tenant b: a's stream does not exist for it.
    for (method, path, body) in [
        ("GET", "/api/streams/gain", None),
        ("DELETE", "/api/streams/gain", None),
        ("GET", "/api/streams/gain/versions", None),
        ("GET", "/api/streams/gain/connections", None),
        ("POST", "/api/streams/gain/rollback", None),
        (
            "POST",
            "/api/streams/gain/activate",
            Some(json!({"version": 1})),
        ),
        (
            "PUT",
            "/api/streams/gain/limits",
            Some(json!({"concurrency_limit": 1})),
        ),
    ] {
        let (status, reply) = b.call(method, path, body).await;
        assert_eq!(status, 404, "{method} {path} as b: {reply}");
    }
    let (status, reply) = b.upload("gain", read(guests::GAIN_V2)).await;
    assert_eq!(status, 404, "{reply}");
    let (status, listing) = b.list().await;
    assert_eq!(status, 200);
    assert_eq!(listing["tenant"], "b");
    assert_eq!(listing["streams"], json!([]), "{listing}");
    // Nor at b's media URL.
    let (status, _) = peer::post_offer(
        &format!("{base}/t/b/gain"),
        &json!({"type": "offer", "sdp": "v=0", "webrtc_id": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(status, 404);

    // FastRTC's WebSocket transport reaches a's stream through the dispatch too, and
    // shows up among its connections; b's URL upgrades nothing.
    let ws_base = base.replace("http://", "ws://");
    let refused =
        tokio_tungstenite::connect_async(format!("{ws_base}/t/b/gain/websocket/offer")).await;
    assert!(refused.is_err(), "b has no stream `gain`");
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_base}/t/a/gain/websocket/offer"))
            .await
            .expect("WebSocket upgrade through /t/a/gain");
    let start = json!({"event": "start", "websocket_id": "ws-tenant"}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(start.into()))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, conns) = a.connections("gain").await;
        if conns["connections"] == json!([{"id": "ws-tenant", "version": 1}]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no WebSocket connection: {conns}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(ws);
    // The page, with and without the trailing slash.
    let page = get(&format!("{base}/t/a/gain")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));

    // Missing, wrong or malformed tokens.
    for token in [None, Some("token-c"), Some("")] {
        let (status, reply) = api(base, "GET", "/api/streams", token, None).await;
        assert_eq!(status, 401, "token {token:?}: {reply}");
        let (status, _) = api(base, "GET", "/api/streams/gain", token, None).await;
        assert_eq!(status, 401);
    }
    let reply = http()
        .get(format!("{base}/api/streams"))
        .header("authorization", format!("Basic {TOKEN_A}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    assert!(reply.headers().contains_key("www-authenticate"));
    let (status, _) = tenant(base, "token-c")
        .upload("gain", read(guests::GAIN_V2))
        .await;
    assert_eq!(status, 401);

    // b may have a `gain` of its own, independent of a's.
    let (status, reply) = b.create("gain", json!({})).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["url"], "/t/b/gain/");
    let reply = get(&format!("{base}/t/b/gain/spec")).await;
    assert_eq!(reply.status(), 503, "no version yet");
    let (status, reply) = b.upload("gain", read(guests::GAIN_V2)).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(served_default(base, "b", "gain").await, 2.0);
    assert_eq!(served_default(base, "a", "gain").await, 1.0);

    // Quotas and limits.
    let (status, _) = b.create("two", json!({})).await;
    assert_eq!(status, 201);
    let (status, reply) = b.create("three", json!({})).await;
    assert_eq!(status, 403, "b may have 2 streams: {reply}");
    let (status, reply) = b.set_limits("gain", json!({"memory_mb": 64})).await;
    assert_eq!(status, 422, "above b's memory quota: {reply}");
    let limits = json!({"memory_mb": 16, "cpu_ms_per_call": 10, "concurrency_limit": 1});
    let (status, reply) = b.set_limits("gain", limits).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = b.set_limits("gain", json!({"bogus": 1})).await;
    assert_eq!(status, 422, "{reply}");
    let (status, reply) = a.create("../x", json!({})).await;
    assert_eq!(status, 422, "{reply}");
    let (status, _) = a.create("gain", json!({})).await;
    assert_eq!(status, 409);

    // Deleting b's stream leaves a's.
    let (status, _) = b.delete("gain").await;
    assert_eq!(status, 204);
    let reply = get(&format!("{base}/t/b/gain/spec")).await;
    assert_eq!(reply.status(), 404);
    assert_eq!(served_default(base, "a", "gain").await, 1.0);
}

fn metric(text: &str, line_start: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_refusals_and_failures() {
    let host = host("metrics").await;
    let base = &host.base;
    let (a, b) = (tenant(base, TOKEN_A), tenant(base, TOKEN_B));
    a.create_with("gain", guests::GAIN, json!({"concurrency_limit": 1}))
        .await;
    a.create_with("trap", guests::HOSTILE_TRAP, json!({})).await;
    // Tenant b may hold one connection across its streams.
    b.create_with("x", guests::GAIN, json!({})).await;
    b.create_with("y", guests::GAIN, json!({})).await;

    let mut held = connect(&format!("{base}/t/a/gain")).await;
    let bogus = |id: &str| json!({"type": "offer", "sdp": "v=0", "webrtc_id": id});
    let (_, reply) = peer::post_offer(&format!("{base}/t/a/gain"), &bogus("r1"))
        .await
        .unwrap();
    assert_eq!(
        reply["meta"]["error"], "concurrency_limit_reached",
        "{reply}"
    );

    let mut b_held = connect(&format!("{base}/t/b/x")).await;
    let (_, reply) = peer::post_offer(&format!("{base}/t/b/y"), &bogus("r2"))
        .await
        .unwrap();
    assert_eq!(
        reply["meta"]["error"], "concurrency_limit_reached",
        "tenant quota: {reply}"
    );

    // The trap handler fails on its first frame (the connection may or may not get up).
    let _trapped = TestPeer::connect(
        &format!("{base}/t/a/trap"),
        PeerOptions::new(Media::SendRecv, Media::None),
    )
    .await;
    let trap = "wasmrtc_handler_failures_total{tenant=\"a\",stream=\"trap\",cause=\"trap\"}";
    let deadline = Instant::now() + WAIT;
    loop {
        let text = wasmrtc_tests::metrics_text(base).await;
        if metric(&text, trap).is_some_and(|n| n >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "no trap counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let text = wasmrtc_tests::metrics_text(base).await;
    eprintln!("{text}");
    for (line, value) in [
        (
            "wasmrtc_connections_active{tenant=\"a\",stream=\"gain\"}",
            1,
        ),
        (
            "wasmrtc_admissions_refused_total{tenant=\"a\",stream=\"gain\"}",
            1,
        ),
        (
            "wasmrtc_connections_by_version{tenant=\"a\",stream=\"gain\",version=\"1\"}",
            1,
        ),
        ("wasmrtc_active_version{tenant=\"a\",stream=\"gain\"}", 1),
        ("wasmrtc_connections_active{tenant=\"b\",stream=\"x\"}", 1),
        (
            "wasmrtc_admissions_refused_total{tenant=\"b\",stream=\"y\"}",
            1,
        ),
        ("wasmrtc_tenant_connections_active{tenant=\"b\"}", 1),
        ("wasmrtc_tenant_admissions_refused_total{tenant=\"b\"}", 1),
        ("wasmrtc_tenant_connections_limit{tenant=\"b\"}", 1),
        ("wasmrtc_uploads_total{tenant=\"a\",result=\"accepted\"}", 2),
        (
            "wasmrtc_handler_failures_total{tenant=\"a\",stream=\"gain\",cause=\"cpu-budget\"}",
            0,
        ),
    ] {
        assert_eq!(metric(&text, line), Some(value), "{line}");
    }
    assert!(
        metric(
            &text,
            "wasmrtc_handler_calls_total{tenant=\"a\",stream=\"gain\"}"
        )
        .is_some_and(|n| n > 10),
        "calls are counted"
    );
    let gain = |name: &str| metric(&text, &format!("{name}{{tenant=\"a\",stream=\"gain\"}}"));
    let timed = gain("wasmrtc_handler_call_seconds_count");
    assert!(timed.is_some_and(|n| n > 10), "call durations are counted");
    assert_eq!(
        metric(
            &text,
            "wasmrtc_handler_call_seconds_bucket{tenant=\"a\",stream=\"gain\",le=\"+Inf\"}"
        ),
        timed,
        "the last bucket holds every call"
    );
    // The held connection's instance: at least its first 64 KiB page, at most its cap.
    let memory = gain("wasmrtc_instance_memory_bytes").expect("instance memory");
    assert!((64 << 10..=256 << 20).contains(&memory), "{memory}");
    let peak = gain("wasmrtc_instance_memory_peak_bytes").expect("peak memory");
    assert!(peak >= memory, "peak {peak} < live {memory}");
    assert!(text.contains("# TYPE wasmrtc_handler_call_seconds histogram"));
    assert!(text.contains("# TYPE wasmrtc_handler_failures_total counter"));
    held.close().await;
    b_held.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_ask_for_a_token() {
    let host = host("metrics-token").await;
    let url = format!("{}/metrics", host.base);
    assert_eq!(get(&url).await.status(), 200);
    host.registry
        .protect_metrics(TokenHash::parse(&token_sha256("scraper")).unwrap());
    let anonymous = get(&url).await;
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{body}");
    for wrong in [TOKEN_A, "scrape"] {
        let r = http().get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(r.status(), 401, "token {wrong}");
    }
    let r = http()
        .get(&url)
        .bearer_auth("scraper")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("wasmrtc_uploads_total"));
}

// ---- the real binary: CLI, restart, SIGKILL mid-upload ----

fn start(config: &Path) -> HostProcess {
    wasmrtc_tests::start_host_with_config(config)
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(wasmrtc_bin())
        .args(args)
        .env_remove("WASMRTC_TOKEN")
        .env_remove("WASMRTC_SERVER")
        .output()
        .expect("run wasmrtc");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("$ wasmrtc {}\n{stdout}{stderr}", args.join(" "));
    (out.status.success(), stdout, stderr)
}

/// Every tenant's streams and active versions, as the API shows them.
async fn snapshot(base: &str) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for token in [TOKEN_A, TOKEN_B] {
        let (status, listing) = tenant(base, token).list().await;
        assert_eq!(status, 200, "{listing}");
        for s in listing["streams"].as_array().unwrap() {
            all.push((
                format!("{token}/{}", s["name"]),
                s["active_version"].clone(),
            ));
        }
    }
    all
}

/// Upload `component` to tenant a's `gain` on `host`, sending the head and the first
/// `sent` bytes; `wait`, then SIGKILL the host (and reap it) with the request open.
async fn kill_mid_upload(host: HostProcess, component: &[u8], sent: usize, wait: Duration) {
    let addr = host.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(upload_head("gain", TOKEN_A, component.len()).as_bytes())
        .await
        .unwrap();
    s.write_all(&component[..sent]).await.unwrap();
    tokio::time::sleep(wait).await;
    drop(host); // SIGKILL (Child::kill) and reap
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_a_host_killed_mid_upload_restarts_on_the_last_good_version() {
    let dir = temp_dir("restart");
    let config = dir.join("wasmrtc.toml");
    let mut text = String::from("listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n");
    for t in tenants() {
        text += &format!(
            "\n[[tenant]]\nname = \"{}\"\ntoken_sha256 = \"{}\"\nmax_streams = {}\nmax_component_mb = {}\n",
            t.name, t.token_sha256, t.max_streams, t.max_component_mb
        );
    }
    std::fs::write(&config, text).unwrap();

    let host = start(&config);
    let base = host.base.clone();
    let server = ["--server", base.as_str()];
    let as_a = |args: &[&str]| {
        let mut all: Vec<&str> = vec![args[0]];
        all.extend(server);
        all.extend(["--token", TOKEN_A]);
        all.extend(&args[1..]);
        cli(&all)
    };

    // deploy (creating the stream), deploy v2, list, roll back.
    let (ok, out, _) = as_a(&["deploy", "gain", guests::GAIN]);
    assert!(ok && out.contains("as version 1"), "{out}");
    assert!(out.contains("/t/a/gain/"), "{out}");
    let (ok, out, _) = as_a(&["deploy", "gain", guests::GAIN_V2]);
    assert!(ok && out.contains("as version 2"), "{out}");
    assert_eq!(served_default(&base, "a", "gain").await, 2.0);
    let (ok, out, _) = as_a(&["streams"]);
    assert!(ok && out.contains("gain") && out.contains("v2"), "{out}");
    let (ok, out, _) = as_a(&["rollback", "gain"]);
    assert!(ok && out.contains("from version 2 to version 1"), "{out}");
    assert_eq!(served_default(&base, "a", "gain").await, 1.0);
    // b has a stream too.
    tenant(&base, TOKEN_B)
        .create_with("echo", guests::ECHO, json!({}))
        .await;

    // Readable errors.
    let (ok, _, err) = as_a(&["deploy", "gain", "/nonexistent/handler.wasm"]);
    assert!(
        !ok && err.contains("cannot read /nonexistent/handler.wasm"),
        "{err}"
    );
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm").unwrap();
    let (ok, _, err) = as_a(&["deploy", "gain", garbage.to_str().unwrap()]);
    assert!(
        !ok && err.contains("not a WebAssembly file") && err.contains("422"),
        "{err}"
    );
    let (ok, _, err) = cli(&["streams", "--server", &base, "--token", "wrong"]);
    assert!(!ok && err.contains("refused the token"), "{err}");
    let (ok, _, err) = cli(&["streams", "--server", "http://127.0.0.1:9", "--token", "t"]);
    assert!(
        !ok && err.contains("cannot reach http://127.0.0.1:9"),
        "{err}"
    );
    let (ok, _, err) = as_a(&["rollback", "nope"]);
    assert!(
        !ok && err.contains("no stream `nope`") && err.contains("404"),
        "{err}"
    );

    let before = snapshot(&base).await;
    assert_eq!(before.len(), 2, "{before:?}");

    // SIGKILL while an upload is half sent.
    let v2 = read(guests::GAIN_V2);
    kill_mid_upload(host, &v2, v2.len() / 2, Duration::from_millis(200)).await;

    let host = start(&config);
    let base = host.base.clone();
    assert_eq!(
        snapshot(&base).await,
        before,
        "streams and active versions after restart"
    );
    let (_, stream) = tenant(&base, TOKEN_A).stream("gain").await;
    assert_eq!(stream["versions"].as_array().unwrap().len(), 2, "{stream}");
    assert_eq!(served_default(&base, "a", "gain").await, 1.0);
    let tmp = std::fs::read_dir(dir.join("data").join("tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "half-written files are cleared");

    // SIGKILL while a whole upload is being checked and stored: afterwards the active
    // version is either the last good one or the new one, complete, never a broken one.
    kill_mid_upload(host, &v2, v2.len(), Duration::from_millis(30)).await;

    let host = start(&config);
    let base = host.base.clone();
    let (_, stream) = tenant(&base, TOKEN_A).stream("gain").await;
    let active = stream["active_version"].as_u64().unwrap();
    let versions = stream["versions"].as_array().unwrap().len();
    eprintln!("after the second kill: version {active} of {versions} active");
    match active {
        1 => assert_eq!(served_default(&base, "a", "gain").await, 1.0),
        3 => assert_eq!(served_default(&base, "a", "gain").await, 2.0),
        other => panic!("version {other} active: {stream}"),
    }
    assert_eq!(stream["error"], Value::Null, "{stream}");

    // The restarted host serves media too.
    let mut client = connect(&format!("{base}/t/a/gain")).await;
    assert!(client.level_after(0, WAIT).await > 2000.0);
    client.close().await;
    drop(host);
    let _ = std::fs::remove_dir_all(dir);
}

/// `GET /t/a/{stream}/rtc_configuration`: the `RTCConfiguration` the stream's clients get.
async fn rtc_configuration(base: &str, stream: &str) -> Value {
    let reply = get(&format!("{base}/t/a/{stream}/rtc_configuration")).await;
    assert_eq!(reply.status(), 200, "rtc_configuration of {stream}");
    reply.json().await.expect("rtc_configuration JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_set_their_streams_ice_servers_through_the_api_and_never_see_the_secret_again() {
    const SECRET: &str = "tenant-turn-secret-7f3a";
    let host = host("ice").await;
    let base = host.base.as_str();
    let (a, b) = (tenant(base, TOKEN_A), tenant(base, TOKEN_B));
    let (status, reply) = a.create("gain", json!({})).await;
    assert_eq!(status, 201, "{reply}");

    // Set before the stream is served: the first version serves them.
    let ice = json!({
        "servers": [{"urls": ["stun:stun.example.com:3478"]}],
        "turn_urls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"],
        "turn_secret": SECRET,
        "turn_ttl": 600,
    });
    let (status, reply) = a.on("PUT", "gain", "/ice", Some(ice.clone())).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ice"]["turn_secret_set"], true, "{reply}");
    let (status, reply) = a.upload("gain", read(guests::GAIN)).await;
    assert_eq!(status, 201, "{reply}");

    let check_minted = |config: &Value| {
        let servers = config["iceServers"].as_array().expect("iceServers");
        assert_eq!(servers.len(), 2, "{config}");
        assert_eq!(servers[0], json!({"urls": ["stun:stun.example.com:3478"]}));
        let turn = &servers[1];
        assert_eq!(turn["urls"], ice["turn_urls"], "{config}");
        let username = turn["username"].as_str().expect("a minted username");
        let expiry: u64 = username.split(':').next().unwrap().parse().expect("expiry");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            (now + 590..=now + 610).contains(&expiry),
            "ttl 600: {username}"
        );
        assert_eq!(
            turn["credential"].as_str(),
            Some(super::ice::expected_credential(SECRET, username).as_str()),
            "coturn's use-auth-secret credential"
        );
    };
    let config = rtc_configuration(base, "gain").await;
    check_minted(&config);

    // The secret never comes back: not from the ice route, the stream, or /metrics.
    for path in ["/ice", ""] {
        let (status, reply) = a.on("GET", "gain", path, None).await;
        assert_eq!(status, 200);
        assert!(!reply.to_string().contains(SECRET), "GET {path}: {reply}");
        assert_eq!(reply["ice"]["turn_ttl"], 600, "GET {path}: {reply}");
    }
    let metrics = wasmrtc_tests::metrics_text(base).await;
    assert!(!metrics.contains(SECRET));

    // Mistakes are refused (422, as bad limits are) with the key named, and change
    // nothing.
    let too_many: Vec<Value> = (0..17)
        .map(|i| json!({"urls": [format!("stun:stun{i}.example.com")]}))
        .collect();
    for (body, want, names) in [
        (
            json!({"turn_urls": ["turn:t.example.com"]}),
            422,
            "turn_secret",
        ),
        (
            json!({"servers": [{"urls": ["http://t.example.com"]}]}),
            422,
            "http://t.example.com",
        ),
        (json!({"servers": too_many}), 422, "16"),
        (
            json!({"transport_policy": "sometimes"}),
            422,
            "transport_policy",
        ),
        (
            json!({"turn_urls": ["turn:t.example.com"], "turn_secret": SECRET, "turn_ttl": 5}),
            422,
            "60",
        ),
        (json!({"tcp": false}), 422, "tcp"),
        (json!([1, 2]), 422, "JSON object"),
    ] {
        let (status, reply) = a.on("PUT", "gain", "/ice", Some(body.clone())).await;
        assert_eq!(status, want, "{body}: {reply}");
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(names),
            "{body}: {message:?} should name {names}"
        );
    }
    check_minted(&rtc_configuration(base, "gain").await);

    // Another tenant cannot see or touch them.
    let (status, _) = b.on("PUT", "gain", "/ice", Some(json!({}))).await;
    assert_eq!(status, 404);
    let (status, _) = b.on("GET", "gain", "/ice", None).await;
    assert_eq!(status, 404);

    // They outlive a restart of the host.
    let dir = host.dir.clone();
    let registry = Registry::open(
        test_runtime(),
        Transport::bind("127.0.0.1:0".parse().unwrap(), None).unwrap(),
        Tenants::new(tenants()).unwrap(),
        Arc::new(SqliteStore::open(&dir).unwrap()),
    )
    .await
    .expect("reopen the registry");
    let (addr, _server) = peer::serve_router(registry.router(&[])).await;
    let restarted = format!("http://{addr}");
    check_minted(&rtc_configuration(&restarted, "gain").await);

    // Relay only, then cleared: back to the host's (none here).
    let relay = json!({"servers": [{"urls": ["turn:turn.example.com"], "username": "u", "credential": "c"}], "transport_policy": "relay"});
    let (status, reply) = a.on("PUT", "gain", "/ice", Some(relay)).await;
    assert_eq!(status, 200, "{reply}");
    let config = rtc_configuration(base, "gain").await;
    assert_eq!(config["iceTransportPolicy"], "relay", "{config}");
    let (status, reply) = a.on("DELETE", "gain", "/ice", None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ice"], Value::Null);
    let config = rtc_configuration(base, "gain").await;
    assert_eq!(config, json!({"iceServers": []}));
}
