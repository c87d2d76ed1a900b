//! Tenants granting their own streams outbound HTTP through the admin API: secrets
//! (`PUT /api/secrets/{name}`) and grants (`PUT /api/streams/{s}/outbound`) within
//! the operator's `outbound_ceiling`, through a real `wasmrtc serve` with tenants, the
//! `assistant` guest uploaded over the API and a chat-completions service on
//! 127.0.0.1 (which the operator's `[outbound] allow_networks` lets handlers reach).
//! The refusals, the secret's path (to the service, never to the guest or the API),
//! a restart, a rollback and the per-tenant in-flight cap across two streams.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::watch;
use wasmrtc::tenancy::token_sha256;
use wasmrtc_tests::admin;
use wasmrtc_tests::peer::{self, Media, PeerOptions, TestPeer};
use wasmrtc_tests::{HostProcess, guests, metrics_text, metrics_until, start_host_with_config};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN_A: &str = "token-a";
const TOKEN_B: &str = "token-b";
const KEY: &str = "sk-tenant-a-0123456789";
const NEW_KEY: &str = "sk-tenant-a-rotated-987";
const B_KEY: &str = "sk-tenant-b-secret";

/// What the service saw and how many requests it holds.
#[derive(Default)]
struct Service {
    /// (authorization header, body) of each request.
    seen: Mutex<Vec<(Option<String>, String)>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

struct Running {
    port: u16,
    state: Arc<Service>,
    release: watch::Sender<bool>,
}

impl Running {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<(Option<String>, String)> {
        self.state.seen.lock().unwrap().clone()
    }
}

/// A chat-completions service in OpenAI's shape answering `Echo: <question>`; the
/// model `hold` waits until the test releases it.
async fn service() -> Running {
    let state = Arc::new(Service::default());
    let (release, held) = watch::channel(false);
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state((state.clone(), held));
    let (addr, _server) = peer::serve_router(app).await;
    Running {
        port: addr.port(),
        state,
        release,
    }
}

async fn complete(
    State((state, mut held)): State<(Arc<Service>, watch::Receiver<bool>)>,
    headers: HeaderMap,
    body: String,
) -> Json<Value> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state
        .seen
        .lock()
        .unwrap()
        .push((authorization, body.clone()));
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_in_flight.fetch_max(now, Ordering::SeqCst);
    if request["model"] == "hold" {
        let _ = held.wait_for(|released| *released).await;
    }
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let content = request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("Echo: {content}")},
            "finish_reason": "stop"
        }]
    }))
}

/// A host with tenants `a` (ceiling: `ceiling`; 3 secrets of at most 64 bytes; 2
/// outbound requests at once) and `b` (any loopback port).
fn config(dir: &Path, ceiling: &str) -> PathBuf {
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
         [outbound]\nallow_networks = [\"127.0.0.1/32\"]\nmax_violations = 100\n\
         [[tenant]]\nname = \"a\"\ntoken_sha256 = \"{}\"\noutbound_ceiling = [\"{ceiling}\"]\n\
         max_secrets = 3\nmax_secret_bytes = 64\nmax_outbound_in_flight = 2\n\
         [[tenant]]\nname = \"b\"\ntoken_sha256 = \"{}\"\noutbound_ceiling = [\"http://127.0.0.1:*\"]\n",
        token_sha256(TOKEN_A),
        token_sha256(TOKEN_B)
    );
    let path = dir.join("wasmrtc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One admin call as `token`: (status, JSON reply or `Null`, raw text).
async fn api(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    admin::call(base, Some(token), method, path, body).await
}

async fn upload(base: &str, token: &str, stream: &str, path: &str) -> (u16, Value) {
    admin::upload(base, token, stream, admin::read(path)).await
}

/// The grant of the assistant: `service`, its key from `secret`, the model `model`.
fn grant(service: &str, secret: &str, model: &str) -> Value {
    json!({
        "allowed_hosts": [{"url": service, "headers": {"authorization": format!("Bearer {{{{secret.{secret}}}}}")}}],
        "variables": {"API_BASE": service, "MODEL": model},
    })
}

/// A connection to tenant `a`'s `stream`, its data channel open.
async fn connect(host: &HostProcess, stream: &str) -> TestPeer {
    let url = format!("{}/t/a/{stream}", host.base);
    let peer = TestPeer::connect(&url, PeerOptions::new(Media::SendRecv, Media::None))
        .await
        .unwrap_or_else(|e| panic!("connect to {stream}: {e:#}"));
    assert!(
        peer.wait_channel_open(WAIT).await,
        "{stream}: no data channel"
    );
    peer
}

/// Ask `question` by text and return the `reply` output.
async fn ask(peer: &TestPeer, question: &str) -> String {
    let mut outputs = peer.outputs().await.expect("outputs");
    peer.send_text(question).await.unwrap();
    let reply = outputs
        .next(WAIT)
        .await
        .unwrap_or_else(|| panic!("no reply to {question:?}: {:?}", peer.messages()))
        .to_string();
    eprintln!("{question}: {reply}");
    reply
}

/// Refusals a grant or secret request must get: (status, words the message has).
async fn refused(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
    want: (u16, &str),
) {
    let (status, reply, _) = api(base, token, method, path, Some(body.clone())).await;
    let message = reply["message"].as_str().unwrap_or_default();
    eprintln!("{method} {path} {body}: {status} {message}");
    assert_eq!(status, want.0, "{body}: {reply}");
    assert!(
        message.contains(want.1),
        "{body}: {message:?} lacks {:?}",
        want.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_grants_its_stream_a_service_with_its_own_secret_within_the_ceiling() {
    let llm = service().await;
    let elsewhere = service().await;
    let s1 = llm.url();
    let dir = wasmrtc_tests::scratch_dir("outbound-api", "grant");
    let config = config(&dir, &s1);
    let host = start_host_with_config(&config);
    let base = host.base.clone();
    let a = |m: &'static str, p: String, b: Option<Value>| {
        let base = base.clone();
        async move { api(&base, TOKEN_A, m, &p, b).await }
    };

    let (status, reply, _) = a(
        "POST",
        "/api/streams".into(),
        Some(json!({"name": "agent"})),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    // Without a grant the assistant is refused, naming what to do.
    let (status, reply) = upload(&base, TOKEN_A, "agent", guests::ASSISTANT).await;
    assert_eq!(status, 422, "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("has no outbound grant")
            && message.contains("/api/streams/agent/outbound"),
        "{message}"
    );

    // Secrets: set, replaced, bounded, listed by name only.
    let (status, reply, _) = a(
        "PUT",
        "/api/secrets/llm".into(),
        Some(json!({"value": "first"})),
    )
    .await;
    assert_eq!(
        (status, reply["created"].clone()),
        (201, json!(true)),
        "{reply}"
    );
    let (status, reply, _) = a(
        "PUT",
        "/api/secrets/llm".into(),
        Some(json!({"value": KEY})),
    )
    .await;
    assert_eq!(
        (status, reply["created"].clone()),
        (200, json!(false)),
        "{reply}"
    );
    let (status, reply, _) = api(
        &base,
        TOKEN_B,
        "PUT",
        "/api/secrets/bkey",
        Some(json!({"value": B_KEY})),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    for (name, body, want) in [
        (
            "big",
            json!({"value": "k".repeat(65)}),
            (422, "max_secret_bytes of 64"),
        ),
        (
            "nl",
            json!({"value": "sk-1\nHost: evil"}),
            (422, "one line"),
        ),
        ("empty", json!({"value": ""}), (422, "empty")),
        ("raw", json!("sk-1"), (422, "JSON object")),
        ("shape", json!({"secret": "sk-1"}), (422, "{\"value\"")),
        ("bad%20name", json!({"value": "v"}), (422, "secret name")),
    ] {
        refused(
            &base,
            TOKEN_A,
            "PUT",
            &format!("/api/secrets/{name}"),
            body,
            want,
        )
        .await;
    }
    for name in ["two", "three"] {
        let (status, reply, _) = a(
            "PUT",
            format!("/api/secrets/{name}"),
            Some(json!({"value": "v"})),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
    }
    refused(
        &base,
        TOKEN_A,
        "PUT",
        "/api/secrets/four",
        json!({"value": "v"}),
        (403, "quota of 3 secrets"),
    )
    .await;
    // Replacing one at the quota is fine.
    let (status, _, _) = a(
        "PUT",
        "/api/secrets/three".into(),
        Some(json!({"value": "w"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = a("DELETE", "/api/secrets/three".into(), None).await;
    assert_eq!(status, 204);
    let (status, reply, _) = a("DELETE", "/api/secrets/three".into(), None).await;
    assert_eq!(status, 404, "{reply}");
    let (status, list, text) = a("GET", "/api/secrets".into(), None).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["llm", "two"], "{list}");
    assert!(
        !text.contains(KEY) && !text.contains("first"),
        "a value is listed: {text}"
    );
    let (_, list_b, text_b) = api(&base, TOKEN_B, "GET", "/api/secrets", None).await;
    assert_eq!(list_b["secrets"][0]["name"], "bkey", "{list_b}");
    assert!(
        !text_b.contains(B_KEY) && !text_b.contains("llm"),
        "{text_b}"
    );

    // Grants: outside the ceiling, unknown secrets and another tenant's are refused.
    let path = "/api/streams/agent/outbound";
    let too_many: Vec<String> = (0..65).map(|_| s1.clone()).collect();
    for (body, want) in [
        (grant(&elsewhere.url(), "llm", "m"), (422, elsewhere.url())),
        (
            json!({"allowed_hosts": [s1, "https://api.openai.com"]}),
            (
                422,
                "`https://api.openai.com`: outside the tenant's outbound_ceiling".to_string(),
            ),
        ),
        (
            grant(&s1, "nope", "m"),
            (
                422,
                "`{{secret.nope}}`, which tenant `a` does not hold".into(),
            ),
        ),
        (
            grant(&s1, "bkey", "m"),
            (
                422,
                "`{{secret.bkey}}`, which tenant `a` does not hold".into(),
            ),
        ),
        (
            json!({"allowed_hosts": too_many}),
            (422, "at most 64 hosts".into()),
        ),
        (
            json!({"allowed_hosts": ["http://127.0.0.1:*"]}),
            (422, "http://127.0.0.1:*".into()),
        ),
        (json!({"hosts": [s1]}), (422, "bad outbound grant".into())),
    ] {
        refused(&base, TOKEN_A, "PUT", path, body, (want.0, want.1.as_str())).await;
    }
    let (_, view, _) = a("GET", path.into(), None).await;
    assert_eq!(
        view["outbound"],
        Value::Null,
        "a refused grant was kept: {view}"
    );
    // Another tenant cannot see or set it.
    let (status, _, _) = api(&base, TOKEN_B, "PUT", path, Some(grant(&s1, "bkey", "m"))).await;
    assert_eq!(status, 404);

    let (status, reply, _) = a("PUT", path.into(), Some(grant(&s1, "llm", "m-agent"))).await;
    assert_eq!(status, 200, "{reply}");
    let (status, view, text) = a("GET", "/api/streams/agent".into(), None).await;
    assert_eq!(status, 200);
    assert_eq!(view["outbound"], grant(&s1, "llm", "m-agent"), "{view}");
    assert!(!text.contains(KEY), "{text}");

    // The assistant, uploaded now, reaches the service with the key the host adds.
    let (status, reply) = upload(&base, TOKEN_A, "agent", guests::ASSISTANT).await;
    assert_eq!(status, 201, "{reply}");
    let peer = connect(&host, "agent").await;
    let reply = ask(&peer, "hello").await;
    assert!(reply.contains("Echo: hello"), "{reply}");
    let seen = llm.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    // What the guest wrote (the body) and everything it got back hold no key.
    assert!(
        seen[0].1.contains("m-agent") && !seen[0].1.contains(KEY),
        "{}",
        seen[0].1
    );
    let messages = format!("{:?}", peer.messages());
    assert!(
        !reply.contains(KEY) && !messages.contains(KEY),
        "{messages}"
    );

    // In use: the secret cannot be deleted, the grant not removed under the assistant.
    refused(
        &base,
        TOKEN_A,
        "DELETE",
        "/api/secrets/llm",
        json!(null),
        (409, "stream `agent`"),
    )
    .await;
    refused(
        &base,
        TOKEN_A,
        "DELETE",
        path,
        json!(null),
        (409, "imports `wasi:http/"),
    )
    .await;
    let (_, list, _) = a("GET", "/api/secrets".into(), None).await;
    assert_eq!(list["secrets"][0]["used_by"], json!(["agent"]), "{list}");

    // A new value reaches new connections; the open one keeps the grant it started with.
    let (status, _, _) = a(
        "PUT",
        "/api/secrets/llm".into(),
        Some(json!({"value": NEW_KEY})),
    )
    .await;
    assert_eq!(status, 200);
    let rotated = connect(&host, "agent").await;
    assert!(ask(&rotated, "rotated").await.contains("Echo: rotated"));
    assert!(ask(&peer, "still").await.contains("Echo: still"));
    let seen = llm.seen();
    assert_eq!(
        seen[1].0.as_deref(),
        Some(format!("Bearer {NEW_KEY}").as_str())
    );
    assert_eq!(seen[2].0.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    drop((peer, rotated));

    // Uploading and rolling back never touch the grant.
    let (status, reply) = upload(&base, TOKEN_A, "agent", guests::GAIN).await;
    assert_eq!(status, 201, "{reply}");
    let (status, reply, _) = a("POST", "/api/streams/agent/rollback".into(), None).await;
    assert_eq!(
        (status, reply["active_version"].clone()),
        (200, json!(1)),
        "{reply}"
    );
    let (_, view, _) = a("GET", path.into(), None).await;
    assert_eq!(view["outbound"], grant(&s1, "llm", "m-agent"), "{view}");

    let text = metrics_until(&base, |m| m.contains("stream=\"a/agent\"")).await;
    let row = format!(
        "wasmrtc_outbound_requests_total{{stream=\"a/agent\",host=\"{s1}\",outcome=\"ok\"}} 3"
    );
    assert!(text.contains(&row), "no {row} in\n{text}");
    assert!(
        !text.contains(KEY) && !text.contains(NEW_KEY),
        "a key is in /metrics"
    );

    // The database holding the secrets is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("data/wasmrtc.sqlite3"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the database has mode {mode:o}");
    }

    // After a restart: the same grant, the rotated key, the rolled-back version.
    drop(host);
    let host = start_host_with_config(&config);
    let (_, view, _) = api(&host.base, TOKEN_A, "GET", "/api/streams/agent", None).await;
    assert_eq!(view["outbound"], grant(&s1, "llm", "m-agent"), "{view}");
    assert_eq!(view["active_version"], 1, "{view}");
    let peer = connect(&host, "agent").await;
    assert!(ask(&peer, "restarted").await.contains("Echo: restarted"));
    let seen = llm.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        seen[3].0.as_deref(),
        Some(format!("Bearer {NEW_KEY}").as_str())
    );
    assert!(
        elsewhere.seen().is_empty(),
        "a service outside the grant was reached"
    );
    drop(peer);

    // A grant of no host refuses every request; then the grant can go with the assistant.
    let (status, reply, _) = api(
        &host.base,
        TOKEN_A,
        "PUT",
        path,
        Some(json!({"allowed_hosts": [], "variables": {"API_BASE": s1, "MODEL": "m"}})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let peer = connect(&host, "agent").await;
    let reply = ask(&peer, "denied").await;
    assert!(reply.contains("error: HttpRequestDenied"), "{reply}");
    assert_eq!(llm.seen().len(), 4, "a request got past the empty grant");
    drop(peer);
    let (status, reply, _) = api(
        &host.base,
        TOKEN_A,
        "POST",
        "/api/streams/agent/activate",
        Some(json!({"version": 2})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply, _) = api(&host.base, TOKEN_A, "DELETE", path, None).await;
    assert_eq!(
        (status, reply["outbound"].clone()),
        (200, Value::Null),
        "{reply}"
    );
    let (status, reply, _) = api(
        &host.base,
        TOKEN_A,
        "POST",
        "/api/streams/agent/activate",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or_default()
            .contains("has no outbound grant"),
        "{reply}"
    );
    let (status, _, _) = api(&host.base, TOKEN_A, "DELETE", "/api/secrets/llm", None).await;
    assert_eq!(status, 204, "no grant uses it now");
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tenant_in_flight_cap_holds_across_its_streams() {
    let llm = service().await;
    let s1 = llm.url();
    let dir = wasmrtc_tests::scratch_dir("outbound-api", "cap");
    let host = start_host_with_config(&config(&dir, &s1));
    let base = host.base.clone();
    let (status, _, _) = api(
        &base,
        TOKEN_A,
        "PUT",
        "/api/secrets/llm",
        Some(json!({"value": KEY})),
    )
    .await;
    assert_eq!(status, 201);
    for stream in ["one", "two"] {
        let (status, reply, _) = api(
            &base,
            TOKEN_A,
            "POST",
            "/api/streams",
            Some(json!({"name": stream})),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let path = format!("/api/streams/{stream}/outbound");
        let (status, reply, _) = api(
            &base,
            TOKEN_A,
            "PUT",
            &path,
            Some(grant(&s1, "llm", "hold")),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        let (status, reply) = upload(&base, TOKEN_A, stream, guests::ASSISTANT).await;
        assert_eq!(status, 201, "{reply}");
    }
    let held_one = connect(&host, "one").await;
    let held_two = connect(&host, "two").await;
    let late_one = connect(&host, "one").await;
    let late_two = connect(&host, "two").await;

    // Two requests held by the service, one from each stream: the tenant's 2.
    let mut held_outputs = Vec::new();
    for peer in [&held_one, &held_two] {
        let outputs = peer.outputs().await.expect("outputs");
        peer.send_text("wait").await.unwrap();
        held_outputs.push(outputs);
    }
    let state = llm.state.clone();
    assert!(
        peer::poll_until(WAIT, || state.in_flight.load(Ordering::SeqCst) == 2).await,
        "the two requests did not arrive"
    );
    // A third and a fourth, on either stream, are refused by the host.
    for peer in [&late_one, &late_two] {
        let reply = ask(peer, "me too").await;
        assert!(reply.contains("error: ConnectionLimitReached"), "{reply}");
    }
    assert_eq!(llm.seen().len(), 2, "a request past the cap arrived");
    assert_eq!(state.most_in_flight.load(Ordering::SeqCst), 2);

    // Released, the held ones are answered and their permits come back.
    llm.release.send(true).unwrap();
    for mut outputs in held_outputs {
        let reply = outputs
            .next(WAIT)
            .await
            .expect("the held reply")
            .to_string();
        assert!(reply.contains("Echo: wait"), "{reply}");
    }
    assert!(ask(&late_two, "now").await.contains("Echo: now"));
    assert!(state.most_in_flight.load(Ordering::SeqCst) <= 2);

    let text = metrics_text(&base).await;
    for stream in ["a/one", "a/two"] {
        let row = format!(
            "wasmrtc_outbound_requests_total{{stream=\"{stream}\",host=\"{s1}\",outcome=\"limited\"}} 1"
        );
        assert!(text.contains(&row), "no {row} in\n{text}");
    }
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}
