//! HTTP routes of a stream, speaking FastRTC's protocol: signaling, input and output hooks.

mod hooks;
mod offer;
mod reply;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::Stream;

/// Largest JSON body accepted by a stream's routes (an SDP offer is a few KiB).
pub const MAX_BODY: usize = 256 * 1024;

/// The routes of one stream, relative to its prefix.
pub(crate) fn stream_routes(stream: Stream) -> Router {
    Router::new()
        .route("/webrtc/offer", post(offer::offer))
        .route("/input_hook", post(hooks::input_hook))
        .route("/outputs", get(hooks::outputs))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(stream)
}
