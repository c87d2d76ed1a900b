//! `WS {prefix}/websocket/offer`: FastRTC's WebSocket audio transport, and the axum
//! adapter shared with the telephone's socket. The protocol itself is the session's
//! (`session::WsSession`); this only moves frames.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};

use super::reply;
use crate::Stream;
use crate::session::{Flavour, FormatRequest, MAX_MESSAGE, WsIn, WsOut, WsSession};

/// Frames larger than this are cut off by the WebSocket library itself (with an error
/// frame, best effort); between [`MAX_MESSAGE`] and this the session refuses them cleanly.
const TRANSPORT_MAX: usize = 2 * MAX_MESSAGE;

/// Upgrade to FastRTC's WebSocket audio protocol. `?format=pcm16&sample_rate=16000`
/// opts into raw PCM (the `start` message may say the same).
pub(crate) async fn offer(
    State(stream): State<Stream>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    if stream.inner.transport.lifecycle.is_draining() {
        return shutting_down();
    }
    let request = FormatRequest {
        format: query.get("format").cloned(),
        sample_rate: query.get("sample_rate").cloned(),
    };
    upgrade(ws, stream, Flavour::WebSocket, request)
}

/// HTTP 503 `server_shutting_down`: the host is draining and takes no new connection
/// (WebRTC offers, WebSocket upgrades, calls).
pub(crate) fn shutting_down() -> Response {
    reply::failed_with(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "server_shutting_down",
        "the server is shutting down and takes no new connections; try again later",
    )
}

/// Accept the upgrade and run a session of `flavour` on the socket, tracked by the
/// host's lifecycle (shutdown waits for it).
pub(crate) fn upgrade(
    ws: WebSocketUpgrade,
    stream: Stream,
    flavour: Flavour,
    request: FormatRequest,
) -> Response {
    let lifecycle = stream.inner.transport.lifecycle.clone();
    ws.max_message_size(TRANSPORT_MAX)
        .max_frame_size(TRANSPORT_MAX)
        .on_upgrade(move |socket| lifecycle.track(serve(socket, stream, flavour, request)))
}

async fn serve(socket: WebSocket, stream: Stream, flavour: Flavour, request: FormatRequest) {
    let (sink, source) = socket.split();
    let incoming = source.filter_map(|r| {
        std::future::ready(match r {
            Ok(Message::Text(t)) => Some(WsIn::Text(t.as_str().to_owned())),
            Ok(Message::Binary(b)) => Some(WsIn::Binary(b.len())),
            // Pings are answered by the library; a close ends the stream after it.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => None,
            Err(e) => Some(WsIn::Error(e.to_string())),
        })
    });
    let outgoing = sink.with(|out: WsOut| {
        std::future::ready(Ok::<_, axum::Error>(match out {
            WsOut::Text(t) => Message::Text(t.into()),
            WsOut::Close { code, reason } => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        }))
    });
    WsSession::new(
        stream,
        flavour,
        request,
        Box::pin(incoming),
        Box::pin(outgoing),
    )
    .run()
    .await;
}
