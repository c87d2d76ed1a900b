//! `POST {prefix}/input_hook` and `GET {prefix}/outputs?webrtc_id=…` (SSE).

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::reply;
use crate::{HookError, Stream};

/// Validate named inputs and apply them to a connection before its next call.
pub(crate) async fn input_hook(State(stream): State<Stream>, body: Bytes) -> Response {
    let mut body = match reply::json_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = match reply::required_str(&body, "webrtc_id") {
        Ok(id) => id.to_string(),
        Err(r) => return r,
    };
    body.remove("webrtc_id");
    match stream.set_input(&id, &body).await {
        Ok(()) => reply::success(),
        Err(HookError::UnknownConnection) => reply::failed_with(
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "no live connection has this webrtc_id",
        ),
        Err(HookError::UnknownInput(name)) => reply::unprocessable(
            "extra_forbidden",
            &[&name],
            &format!("the stream has no input named `{name}`"),
        ),
        Err(HookError::Invalid { name, reason }) => {
            reply::unprocessable("value_error", &[&name], &reason)
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct OutputsQuery {
    webrtc_id: Option<String>,
}

/// Stream a connection's outputs as server-sent events until it ends.
pub(crate) async fn outputs(
    State(stream): State<Stream>,
    Query(q): Query<OutputsQuery>,
) -> Response {
    let Some(id) = q.webrtc_id else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing query parameter webrtc_id",
        )
            .into_response();
    };
    match stream.output_stream(&id) {
        Ok(outputs) => {
            let events = outputs.map(|o| {
                Ok::<_, Infallible>(
                    Event::default()
                        .event("output")
                        .data(serde_json::Value::Object((*o).clone()).to_string()),
                )
            });
            Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
        Err(_) => reply::failed_with(
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "no live connection has this webrtc_id",
        ),
    }
}
