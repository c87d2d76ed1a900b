//! Graceful shutdown: the real `wasmrtc serve` process, with a WebRTC, a WebSocket and
//! a telephone connection live, is sent SIGTERM; every client is told (`end_stream`,
//! then the data channel's or the socket's close) and the process exits with success
//! within 5 s. In process (where the moment the drain starts is known), a draining
//! host refuses new connections with 503.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmrtc::{Stream, StreamConfig, Transport};
use wasmrtc_tests::peer::{self, Media, PeerOptions, TestPeer, poll_until};
use wasmrtc_tests::{HostProcess, guests, start_host, test_runtime};

use super::websocket::{Client, Got, Inbox, twilio_start};

/// Longest wait for anything but the exit.
const WAIT: Duration = Duration::from_secs(20);
/// The host must be gone this long after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(5);
/// What the host tells clients when it shuts down.
const REASON: &str = "server shutting down";

/// Start `wasmrtc serve HANDLER` on a free port.
fn start(handler: &str) -> HostProcess {
    start_host(["serve", handler, "--listen", "127.0.0.1:0"])
}

/// Whether `id` is a live connection of the stream at `base` (its input hook knows it).
async fn is_live(base: &str, id: &str) -> bool {
    matches!(peer::post_input(base, id, &json!({})).await, Ok((200, _)))
}

async fn wait_live(base: &str, id: &str) {
    let deadline = Instant::now() + WAIT;
    while !is_live(base, id).await {
        assert!(Instant::now() < deadline, "{id} never became live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The close frame a client got, once its connection ended.
async fn wait_close(inbox: &Inbox) -> Option<(u16, String)> {
    let closed = |i: &Inbox| {
        i.all()
            .iter()
            .any(|g| matches!(g, Got::Close(_) | Got::Ended))
    };
    assert!(
        inbox.wait(WAIT, closed).await,
        "not closed: {:?}",
        inbox.all()
    );
    inbox.all().into_iter().find_map(|g| match g {
        Got::Close(c) => c,
        _ => None,
    })
}

fn is_end_stream(v: &Value) -> bool {
    v["type"] == "end_stream" && v["data"] == REASON
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_every_client_and_exits_in_time() {
    let mut host = start(guests::ECHO);
    let base = host.base.clone();
    let ws_base = base.replacen("http://", "ws://", 1);

    let rtc = TestPeer::connect(&base, PeerOptions::new(Media::SendRecv, Media::None))
        .await
        .unwrap_or_else(|e| panic!("connect over WebRTC: {e:#}"));
    let mut ws = Client::connect(&format!("{ws_base}/websocket/offer")).await;
    ws.send_json(json!({"event": "start", "websocket_id": "ws-shutdown"}))
        .await;
    let mut phone = Client::connect(&format!("{ws_base}/telephone/handler")).await;
    phone
        .send_json(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        .await;
    phone.send_json(twilio_start("MZshutdown")).await;
    for id in [rtc.webrtc_id(), "ws-shutdown", "MZshutdown"] {
        wait_live(&base, id).await;
    }

    let pid = host.child.id().to_string();
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");

    // The process exits, with success, within the bound.
    let mut exit = None;
    while exit.is_none() && sent.elapsed() < EXIT_BOUND {
        exit = host.child.try_wait().expect("poll the host");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = exit.unwrap_or_else(|| panic!("the host still runs {EXIT_BOUND:?} after SIGTERM"));
    assert!(exit.success(), "the host exited with {exit}");

    // WebRTC: `end_stream` on the data channel, then the connection closes.
    let end = rtc
        .wait_message(WAIT, is_end_stream)
        .await
        .unwrap_or_else(|| panic!("no end_stream over WebRTC: {:?}", rtc.messages()));
    assert_eq!(end["data"], REASON);

    // FastRTC WebSocket: `end_stream`, then a close frame (1001, going away).
    let close = wait_close(&ws.inbox).await;
    let texts = ws.inbox.json();
    let end_at = texts.iter().position(is_end_stream);
    assert!(
        end_at.is_some(),
        "no end_stream over the WebSocket: {texts:?}"
    );
    assert_eq!(
        close,
        Some((1001, REASON.to_string())),
        "{:?}",
        ws.inbox.all()
    );

    // Telephone: a close frame too.
    let close = wait_close(&phone.inbox).await;
    assert_eq!(
        close,
        Some((1001, REASON.to_string())),
        "{:?}",
        phone.inbox.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_host_refuses_new_connections_with_503() {
    let component = test_runtime()
        .load_file("echo", guests::ECHO)
        .await
        .expect("load the guest");
    let transport = Transport::bind("127.0.0.1:0".parse().unwrap(), None).expect("bind UDP");
    let stream = Stream::new(component, transport.clone(), StreamConfig::default());
    let (addr, _server) = peer::serve(stream.clone()).await;
    let base = format!("http://{addr}");
    let live = TestPeer::connect(&base, PeerOptions::new(Media::SendRecv, Media::None))
        .await
        .expect("connect before the shutdown");
    let lifecycle = transport.lifecycle().clone();
    assert!(!lifecycle.is_draining());
    lifecycle.shutdown();

    let offer = json!({"sdp": "v=0", "type": "offer", "webrtc_id": "late"});
    let (status, reply) = peer::post_offer(&base, &offer)
        .await
        .expect("post the offer");
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["status"], "failed");
    assert_eq!(reply["meta"]["error"], "server_shutting_down", "{reply}");
    assert!(reply["meta"]["message"].is_string(), "{reply}");

    let ws_base = base.replacen("http://", "ws://", 1);
    for path in ["/websocket/offer", "/telephone/handler"] {
        let refused = tokio_tungstenite::connect_async(format!("{ws_base}{path}")).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 503, "{path}")
            }
            other => panic!("{path}: expected a 503, got {other:?}"),
        }
    }
    let incoming = reqwest::Client::new()
        .post(format!("{base}/telephone/incoming"))
        .send()
        .await
        .expect("post telephone/incoming");
    assert_eq!(incoming.status(), 503);

    // The connection already up was told, and every task ends.
    assert!(
        live.wait_message(WAIT, is_end_stream).await.is_some(),
        "{:?}",
        live.messages()
    );
    assert!(
        lifecycle.wait(WAIT).await,
        "{} task(s) left",
        lifecycle.active()
    );
    assert!(poll_until(WAIT, || stream.connection_ids().is_empty()).await);
}
