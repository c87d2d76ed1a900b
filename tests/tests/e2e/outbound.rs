//! Handlers calling services: the `assistant` guest asks an OpenAI-shaped
//! chat-completions service on loopback over `wasi:http`, through a real
//! `wasmrtc serve` whose configuration grants it. The grant, the host-held key, the
//! address check, the body caps and timeouts are attacked from the guest's side
//! while the host stays healthy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use wasmrtc_tests::peer::{self, Media, PeerOptions, TestPeer};
use wasmrtc_tests::{
    HostProcess, guests, metrics_text, metrics_until, serve_config_output, start_host_with_config,
    wasmrtc_bin,
};

const WAIT: Duration = Duration::from_secs(20);
const KEY: &str = "sk-test-0123456789";

/// One request the service saw.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    host: Option<String>,
    model: String,
    content: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A chat-completions service on 127.0.0.1 in OpenAI's shape. The model picks the
/// behaviour: any name answers `Echo: <question>`; `huge` declares a 2 MiB body,
/// `huge-chunked` streams 2 MiB without a length, `drip` sends a byte every 2 s.
async fn service() -> (u16, Log) {
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(log.clone());
    let (addr, _server) = peer::serve_router(app).await;
    (addr.port(), log)
}

async fn complete(State(log): State<Log>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let content = body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    log.lock().unwrap().push(Seen {
        authorization: text(header::AUTHORIZATION),
        host: text(header::HOST),
        model: model.clone(),
        content: content.clone(),
    });
    match model.as_str() {
        "huge" => (
            [(header::CONTENT_TYPE, "application/json")],
            vec![b' '; 2 << 20],
        )
            .into_response(),
        "huge-chunked" => {
            let chunks = futures::stream::iter(
                (0..32).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 << 10]))),
            );
            Body::from_stream(chunks).into_response()
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Json(json!({"choices": [{"message": {"role": "assistant", "content": format!("Late: {content}")}}]}))
                .into_response()
        }
        "drip" => {
            let drip = futures::stream::unfold(0u32, |n| async move {
                if n > 0 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                (n < 10).then(|| {
                    (
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")),
                        n + 1,
                    )
                })
            });
            Body::from_stream(drip).into_response()
        }
        _ => Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": format!("Echo: {content}") },
                "finish_reason": "stop"
            }]
        }))
        .into_response(),
    }
}

/// A stream of the assistant with `grant` (TOML for `allowed_hosts`) and its variables.
fn stream(name: &str, allowed_hosts: &str, api_base: &str, model: &str) -> String {
    format!(
        "[[stream]]\nname = \"{name}\"\ncomponent = \"{}\"\n[stream.outbound]\nallowed_hosts = {allowed_hosts}\nvariables = {{ API_BASE = \"{api_base}\", MODEL = \"{model}\" }}\n",
        guests::ASSISTANT
    )
}

/// A fresh directory for a host's configuration.
fn config_dir(tag: &str) -> PathBuf {
    wasmrtc_tests::scratch_dir("outbound", tag)
}

fn serve(dir: &Path, text: &str) -> HostProcess {
    let path = dir.join("wasmrtc.toml");
    std::fs::write(&path, text).unwrap();
    start_host_with_config(&path)
}

/// Connect to `stream` on `host`, ask `question` by text, and return the `reply`
/// output (the service's text, or `error: <wasi:http error code>`).
async fn ask(host: &HostProcess, stream: &str, question: &str) -> (TestPeer, String) {
    let base = format!("{}/streams/{stream}", host.base);
    let peer = TestPeer::connect(&base, PeerOptions::new(Media::SendRecv, Media::None))
        .await
        .unwrap_or_else(|e| panic!("connect to {stream}: {e:#}"));
    let mut outputs = peer.outputs().await.expect("outputs");
    assert!(
        peer.wait_channel_open(WAIT).await,
        "{stream}: no data channel"
    );
    peer.send_text(question).await.unwrap();
    let reply = outputs
        .next(WAIT)
        .await
        .unwrap_or_else(|| panic!("{stream}: no reply output: {:?}", peer.messages()));
    let reply = reply.to_string();
    eprintln!("{stream}: {reply}");
    (peer, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn assistant_calls_a_granted_service_with_a_host_held_key_and_nothing_else() {
    let (p1, log1) = service().await;
    let (p2, log2) = service().await;
    let dir = config_dir("granted");
    std::fs::write(dir.join("llm.key"), format!("{KEY}\n")).unwrap();
    let s1 = format!("http://127.0.0.1:{p1}");
    let s2 = format!("http://127.0.0.1:{p2}");
    let keyed = format!(
        "[{{ url = \"{s1}\", headers = {{ authorization = \"Bearer {{{{secret.llm}}}}\" }} }}]"
    );
    let plain1 = format!("[\"{s1}\"]");
    let plain2 = format!("[\"{s2}\"]");
    let mut config = String::from(
        "listen = \"127.0.0.1:0\"\n[secrets]\nllm = { file = \"llm.key\" }\n[outbound]\nallow_networks = [\"127.0.0.1/32\"]\nmax_response_body = 65536\nbetween_bytes_timeout = 0.5\nmax_violations = 100\n",
    );
    config += &stream("agent", &keyed, &s1, "m-agent");
    config += &stream("other", &plain2, &s2, "m-other");
    // Granted the first service only, pointed at the second.
    config += &stream("stray", &plain1, &s2, "m-stray");
    config += &stream("huge", &keyed, &s1, "huge");
    config += &stream("chunked", &keyed, &s1, "huge-chunked");
    config += &stream("drip", &keyed, &s1, "drip");
    config += &stream("slow", &keyed, &s1, "slow");
    config += &format!(
        "[[stream]]\nname = \"echo\"\ncomponent = \"{}\"\n",
        guests::ECHO
    );
    let host = serve(&dir, &config);

    // The granted call: the answer comes back as output and a spoken (tone) reply.
    let (agent, reply) = ask(&host, "agent", "hello").await;
    assert!(reply.contains("Echo: hello"), "{reply}");
    assert!(
        agent
            .wait_message(WAIT, |m| m["data"] == "response_starting")
            .await
            .is_some(),
        "no reply announced: {:?}",
        agent.messages()
    );
    let from = agent.audio_len().saturating_sub(24_000);
    assert!(
        peer::poll_until(WAIT, || {
            agent.audio()[from..]
                .iter()
                .any(|s| s.unsigned_abs() > 2_000)
        })
        .await,
        "no reply audio"
    );
    {
        let seen = log1.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            seen[0].authorization.as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(
            seen[0].host.as_deref(),
            Some(format!("127.0.0.1:{p1}").as_str())
        );
        assert_eq!(
            (seen[0].model.as_str(), seen[0].content.as_str()),
            ("m-agent", "hello")
        );
    }

    // Another stream's grant names another host without a key: the key stays home.
    let (_other, reply) = ask(&host, "other", "hi").await;
    assert!(reply.contains("Echo: hi"), "{reply}");
    let seen = log2.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].authorization, None, "the key went to another host");

    // Not in the grant: refused by the host, nothing reaches the service.
    let (_stray, reply) = ask(&host, "stray", "let me out").await;
    assert!(reply.contains("error: HttpRequestDenied"), "{reply}");
    assert_eq!(
        log2.lock().unwrap().len(),
        1,
        "the ungranted request arrived"
    );

    // Bodies over the cap (declared or streamed) and a dripping service are cut.
    let (_huge, reply) = ask(&host, "huge", "big").await;
    assert!(reply.contains("error: HttpResponseBodySize"), "{reply}");
    // A body cut while it streams reaches the guest as its stream's error, whose
    // text (not an error code, in wasmtime-wasi-http 48) names the bound.
    let (_chunked, reply) = ask(&host, "chunked", "big").await;
    assert!(
        reply.contains("error: HTTP response body size exceeds limit: 65536"),
        "{reply}"
    );
    let (_drip, reply) = ask(&host, "drip", "slow").await;
    assert!(reply.contains("error: connection read timeout"), "{reply}");

    // A service 2 s to its first byte: the handler waits without holding anything,
    // and an echo connection on the same host keeps its audio rate meanwhile.
    let witness = TestPeer::connect(
        &format!("{}/streams/echo", host.base),
        PeerOptions::new(Media::SendRecv, Media::None),
    )
    .await
    .expect("connect the echo witness");
    assert!(
        witness.wait_audio(48_000, WAIT).await,
        "the witness gets its echo"
    );
    let (packets, since) = (witness.audio_packets(), std::time::Instant::now());
    let (_slow, reply) = ask(&host, "slow", "take your time").await;
    assert!(reply.contains("Late: take your time"), "{reply}");
    let secs = since.elapsed().as_secs_f64();
    let rate = (witness.audio_packets() - packets) as f64 / secs;
    eprintln!("witness while the service took 2 s: {rate:.1} audio packets/s over {secs:.1} s");
    assert!(rate >= 40.0, "the witness fell to {rate:.1} packets/s");

    // The first connection still works, and every outcome was counted.
    let mut outputs = agent.outputs().await.expect("outputs");
    agent.send_text("again").await.unwrap();
    let again = outputs
        .next(WAIT)
        .await
        .expect("a second answer")
        .to_string();
    assert!(again.contains("Echo: again"), "{again}");
    let text = metrics_text(&host.base).await;
    for (stream, host_label, outcome) in [
        ("agent", s1.as_str(), "ok"),
        ("other", s2.as_str(), "ok"),
        ("stray", "denied", "denied"),
        ("huge", s1.as_str(), "too_large"),
        ("chunked", s1.as_str(), "too_large"),
        ("drip", s1.as_str(), "timeout"),
    ] {
        let row = format!(
            "wasmrtc_outbound_requests_total{{stream=\"{stream}\",host=\"{host_label}\",outcome=\"{outcome}\"}}"
        );
        assert!(text.contains(&row), "no {row} in\n{text}");
    }
    assert!(!text.contains(KEY), "the key is in /metrics");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loopback_is_refused_unless_allowed_and_persistent_refusals_end_the_instance() {
    let (port, log) = service().await;
    let dir = config_dir("refused");
    let local = format!("http://127.0.0.1:{port}");
    let named = format!("http://localhost:{port}");
    let mut config = String::from("listen = \"127.0.0.1:0\"\n[outbound]\nmax_violations = 1\n");
    config += &stream("direct", &format!("[\"{local}\"]"), &local, "m");
    // A name the host resolves itself, to an address it refuses.
    config += &stream("named", &format!("[\"{named}\"]"), &named, "m");
    config += &stream("stray", "[\"https://api.example.com\"]", &local, "m");
    // Granted over https only, asked over http.
    let tls_only = format!("[\"https://127.0.0.1:{port}\"]");
    config += &stream("plain", &tls_only, &local, "m");
    let host = serve(&dir, &config);
    let (_plain, reply) = ask(&host, "plain", "hello").await;
    assert!(reply.contains("error: HttpRequestDenied"), "plain: {reply}");

    for name in ["direct", "named"] {
        let (_peer, reply) = ask(&host, name, "hello").await;
        assert!(
            reply.contains("error: DestinationIpProhibited"),
            "{name}: {reply}"
        );
    }
    assert!(log.lock().unwrap().is_empty(), "a refused request arrived");

    // Two refusals with max_violations = 1: the instance is ended.
    let (stray, reply) = ask(&host, "stray", "one").await;
    assert!(reply.contains("error: HttpRequestDenied"), "{reply}");
    stray.send_text("two").await.unwrap();
    let row =
        "wasmrtc_handler_failures_total{tenant=\"\",stream=\"stray\",cause=\"outbound-abuse\"} 1";
    let text = metrics_until(&host.base, |m| m.contains(row)).await;
    assert!(text.contains(row), "no {row} in\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_component_importing_wasi_http_needs_a_grant() {
    let dir = config_dir("ungranted");
    let path = dir.join("wasmrtc.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n[[stream]]\nname = \"bare\"\ncomponent = \"{}\"\n",
            guests::ASSISTANT
        ),
    )
    .unwrap();
    let out = serve_config_output(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served without a grant");
    assert!(
        stderr.contains("has no outbound grant") && stderr.contains("wasi:http/"),
        "{stderr}"
    );
    let check = Command::new(wasmrtc_bin())
        .args(["check", guests::ASSISTANT])
        .output()
        .expect("run wasmrtc check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("outbound: imports wasi:http/"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
