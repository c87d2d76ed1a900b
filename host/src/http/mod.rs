//! HTTP routes of a stream, speaking FastRTC's protocol: signaling, input and output hooks.

mod app;
mod hooks;
mod ice;
mod offer;
pub mod openapi;
pub mod per_ip;
mod reply;
pub mod server;
mod telephone;
mod twilio_signature;
mod ui;
mod websocket;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use app::app;
pub use twilio_signature::{BadAuthToken, TwilioAuthToken};

use crate::Stream;

/// Largest JSON body accepted by a stream's routes (an SDP offer is a few KiB).
pub const MAX_BODY: usize = 256 * 1024;

/// The routes of one stream, relative to its prefix.
pub(crate) fn stream_routes(stream: Stream) -> Router {
    Router::new()
        .route("/webrtc/offer", post(offer::offer))
        .route("/input_hook", post(hooks::input_hook))
        .route("/outputs", get(hooks::outputs))
        .route("/websocket/offer", get(websocket::offer))
        .route(
            "/telephone/incoming",
            post(telephone::incoming).get(telephone::incoming),
        )
        .route("/telephone/handler", get(telephone::handler))
        .route("/", get(ui::page))
        .route("/spec", get(ui::spec))
        .route(
            "/dev/status",
            get(
                |axum::extract::State(s): axum::extract::State<Stream>| async move {
                    (
                        [(axum::http::header::CACHE_CONTROL, "no-store")],
                        axum::Json(s.dev_status()),
                    )
                },
            ),
        )
        .route("/rtc_configuration", get(ice::rtc_configuration))
        .route("/ui/{file}", get(ui::asset))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(stream)
}
