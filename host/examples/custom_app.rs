//! FastRTC's "mount on your own app" story in Rust: an axum app that mounts the
//! `brightness` stream (video send, an output per frame batch) next to its own
//! page, its own input hook and its own server-sent-events route.
//!
//! ```sh
//! cargo run --release -p wasmrtc --example custom_app -- \
//!     examples-guests/target/wasm32-wasip2/release/brightness.wasm 127.0.0.1:8080
//! ```

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use wasmrtc::runtime::{Runtime, RuntimeConfig};
use wasmrtc::{Stream, StreamConfig, Transport};

const INDEX: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>My app</title></head>
<body>
  <h1>My app with a wasmrtc stream</h1>
  <p>WebRTC signaling is at <code>/stream/webrtc/offer</code>; brightness updates at
  <code>/updates?webrtc_id=…</code>.</p>
</body></html>"#;

#[derive(serde::Deserialize)]
struct InputData {
    webrtc_id: String,
    #[serde(flatten)]
    values: serde_json::Map<String, serde_json::Value>,
}

/// The app's own input hook: forwards to `Stream::set_input` (FastRTC's `set_input`).
async fn input_hook(
    State(stream): State<Stream>,
    Json(data): Json<InputData>,
) -> impl IntoResponse {
    match stream.set_input(&data.webrtc_id, &data.values).await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Updates {
    webrtc_id: String,
}

/// The app's own SSE route over `Stream::output_stream` (FastRTC's `output_stream`).
async fn updates(State(stream): State<Stream>, Query(q): Query<Updates>) -> impl IntoResponse {
    match stream.output_stream(&q.webrtc_id) {
        Ok(outputs) => {
            let events = outputs.map(|o| {
                let brightness = o.get("brightness").cloned().unwrap_or_default();
                Ok::<_, Infallible>(Event::default().data(brightness.to_string()))
            });
            Sse::new(events).into_response()
        }
        Err(e) => (axum::http::StatusCode::NOT_FOUND, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let handler = args
        .next()
        .unwrap_or_else(|| "examples-guests/target/wasm32-wasip2/release/brightness.wasm".into());
    let listen: std::net::SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;

    let runtime = Runtime::new(RuntimeConfig::default())?;
    let component = runtime.load_file("brightness", &handler).await?;
    let http = tokio::net::TcpListener::bind(listen).await?;
    let transport = Transport::bind(http.local_addr()?, None)?;
    let stream = Stream::new(
        component,
        transport,
        StreamConfig {
            concurrency_limit: Some(4),
            ..StreamConfig::default()
        },
    );

    let app = Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/input_hook", post(input_hook))
        .route("/updates", get(updates))
        .with_state(stream.clone());
    let app = stream.mount(app, "/stream");

    eprintln!("custom_app: serving on http://{}", http.local_addr()?);
    axum::serve(http, app).await?;
    Ok(())
}
