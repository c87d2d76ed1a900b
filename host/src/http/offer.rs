//! `POST {prefix}/webrtc/offer`: SDP offers and trickled ICE candidates.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Instant;

use super::reply;
use crate::Stream;
use crate::runtime::Modality;
use crate::session::stats::{self, Counter};
use crate::session::{Command, Core, CoreConfig, HandlerTask, OPUS_RATE, WebRtcSession};
use crate::session::{EarlyError, MAX_CANDIDATE_BYTES, MAX_CANDIDATES, MAX_ID_BYTES};
use crate::stream::Refusal;
use crate::transport::{Peer, TrackKinds};

/// Handle an offer (`"type": "offer"`) or a candidate (`"type": "ice-candidate"`).
pub(crate) async fn offer(State(stream): State<Stream>, body: Bytes) -> Response {
    let body = match reply::json_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = match reply::required_str(&body, "webrtc_id") {
        Ok(id) => id.to_string(),
        Err(r) => return r,
    };
    if id.len() > MAX_ID_BYTES {
        return id_too_long();
    }
    let kind = match reply::required_str(&body, "type") {
        Ok(t) => t.to_string(),
        Err(r) => return r,
    };
    if kind == "ice-candidate" || body.get("candidate").is_some_and(|c| !c.is_null()) {
        return candidate(&stream, &id, body.get("candidate"));
    }
    if kind != "offer" {
        return reply::unprocessable(
            "value_error",
            &["type"],
            "expected \"offer\" or \"ice-candidate\"",
        );
    }
    if stream.inner.transport.lifecycle.is_draining() {
        return super::websocket::shutting_down();
    }
    let sdp = match reply::required_str(&body, "sdp") {
        Ok(s) => s,
        Err(r) => return r,
    };
    accept(&stream, &id, sdp).await
}

fn candidate(stream: &Stream, id: &str, candidate: Option<&serde_json::Value>) -> Response {
    let line = match candidate
        .and_then(|c| c.get("candidate"))
        .map(|c| c.as_str())
    {
        Some(Some(line)) => line.to_string(),
        _ => return reply::failed("invalid_candidate_format"),
    };
    if line.trim().is_empty() {
        // End of candidates.
        return reply::success();
    }
    if line.len() > MAX_CANDIDATE_BYTES {
        stats::count(Counter::CandidatesRefused);
        return reply::failed_with(
            StatusCode::PAYLOAD_TOO_LARGE,
            "candidate_too_long",
            &format!("a candidate line is at most {MAX_CANDIDATE_BYTES} bytes"),
        );
    }
    if str0m::Candidate::from_sdp_string(line.trim().trim_start_matches("a=")).is_err() {
        return reply::failed("invalid_candidate_format");
    }
    match stream.inner.connections.get(id) {
        Some(handle) if !handle.count_candidate() => too_many_candidates(),
        Some(handle) => match handle.commands.try_send(Command::Candidate(line)) {
            Ok(()) => reply::success(),
            Err(_) => reply::failed("connection_closed"),
        },
        None => match stream.inner.connections.buffer_candidate(id, line) {
            Ok(()) => reply::success(),
            Err(EarlyError::TooMany) => too_many_candidates(),
            Err(e @ EarlyError::Full) => {
                stats::count(Counter::CandidatesRefused);
                reply::failed_with(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "candidate_buffer_full",
                    &format!("{e}: send the offer first"),
                )
            }
        },
    }
}

fn too_many_candidates() -> Response {
    stats::count(Counter::CandidatesRefused);
    reply::failed_with(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_candidates",
        &format!("a connection may send at most {MAX_CANDIDATES} candidates"),
    )
}

/// A client-chosen connection id past [`MAX_ID_BYTES`].
pub(crate) fn id_too_long() -> Response {
    reply::failed_with(
        StatusCode::BAD_REQUEST,
        "id_too_long",
        &format!("a connection id is at most {MAX_ID_BYTES} bytes"),
    )
}

async fn accept(stream: &Stream, id: &str, sdp: &str) -> Response {
    let inner = &stream.inner;
    if inner.connections.contains(id) {
        return reply::failed("connection_already_exists");
    }
    let component = stream.component();
    let spec = component.spec().clone();
    let kinds = TrackKinds::of_sdp(sdp);
    let unwanted = match spec.modality {
        Modality::Audio if kinds.video => Some("video"),
        Modality::Video if kinds.audio => Some("audio"),
        _ => None,
    };
    if let Some(kind) = unwanted {
        return reply::failed_with(
            StatusCode::BAD_REQUEST,
            "invalid_track_kind",
            &format!(
                "this stream takes no {kind} track (its modality is {:?})",
                spec.modality
            ),
        );
    }
    let slot = match stream.admit() {
        Ok(s) => s,
        Err(Refusal::Failing(left)) => {
            return reply::failed_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "handler_unavailable",
                &crate::runtime::breaker::refusal_message(left),
            );
        }
        Err(Refusal::Limit(e)) => {
            return Json(json!({"status": "failed", "meta": {"error": "concurrency_limit_reached", "limit": e.limit}}))
                .into_response();
        }
    };
    // Registered before anything else can fail: the guard removes the entry on every
    // path, and hooks reach the connection while it starts.
    let (handle, commands) = stream.new_handle(&spec);
    let outputs = handle.outputs.clone();
    let (registration, early) = match inner.connections.register(id, handle) {
        Ok(r) => r,
        Err(e) => return reply::failed(e.code()),
    };
    let (mut peer, answer) = match Peer::accept(
        &inner.transport.mux,
        &inner.transport.advertised,
        inner.transport.ice_tcp.is_some(),
        sdp,
    ) {
        Ok(p) => p,
        Err(e) => {
            return reply::failed_with(StatusCode::BAD_REQUEST, "invalid_sdp", &e.to_string());
        }
    };
    for c in early {
        let _ = peer.add_remote_candidate(&c);
    }
    let instance = match component.instantiate(id).await {
        Ok(i) => i,
        // The host's instance pool (or the tenant's share of it) is full: not the
        // handler's failure, and the client may retry.
        Err(e) if e.is_host_full() => {
            tracing::warn!(stream = %inner.name, connection = %id, "{e}");
            return reply::failed_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "host_full",
                &e.to_string(),
            );
        }
        Err(e) => {
            tracing::warn!(stream = %inner.name, connection = %id, "handler failed to start: {e}");
            return reply::failed_with(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler_error",
                &e.to_string(),
            );
        }
    };
    let config = CoreConfig {
        spec: spec.clone(),
        turn_taking: component.turn_taking().copied(),
        playback_rate: OPUS_RATE,
        time_limit: inner.config.time_limit,
        connect_timeout: inner.config.connect_timeout,
        replies: component.has_replies(),
    };
    let core = match Core::new(id, config, Instant::now()) {
        Ok(c) => c,
        Err(e) => {
            return reply::failed_with(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler_error",
                &e.to_string(),
            );
        }
    };
    let session = WebRtcSession {
        id: id.to_string(),
        stream: inner.name.clone(),
        peer,
        core,
        handler: HandlerTask::spawn(instance, spec.clone(), outputs, slot, stream.reload_for(id)),
        spec,
        commands,
        lifecycle: inner.transport.lifecycle.clone(),
        vp8_cpu_used: inner.transport.vp8_cpu_used,
        max_picture: inner.transport.max_picture,
        registration,
    };
    inner.transport.lifecycle.spawn(session.run());
    Json(json!({"sdp": answer, "type": "answer"})).into_response()
}
