//! `GET /openapi.json`: the routes of every mounted stream, with their prefixes.

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Required,
    ResponseBuilder,
};

/// A route every stream mounts: method, path under the prefix, summary, body type.
struct RouteDoc {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    query: Option<&'static str>,
    response: &'static str,
}

const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: HttpMethod::Post,
        path: "/webrtc/offer",
        summary: "WebRTC signaling: an SDP offer {sdp, type: \"offer\", webrtc_id} or a trickled ICE candidate {candidate, webrtc_id, type: \"ice-candidate\"}",
        body: Some("application/json"),
        query: None,
        response: "application/json",
    },
    RouteDoc {
        method: HttpMethod::Post,
        path: "/input_hook",
        summary: "Set named inputs of a connection: {webrtc_id, <input name>: value, …}",
        body: Some("application/json"),
        query: None,
        response: "application/json",
    },
    RouteDoc {
        method: HttpMethod::Get,
        path: "/outputs",
        summary: "The outputs of a connection as server-sent events (event: output), until it ends",
        body: None,
        query: Some("webrtc_id"),
        response: "text/event-stream",
    },
    RouteDoc {
        method: HttpMethod::Get,
        path: "/websocket/offer",
        summary: "WebSocket audio stream (upgrade): start, media (base64 μ-law), ping, stop",
        body: None,
        query: None,
        response: "application/json",
    },
    RouteDoc {
        method: HttpMethod::Post,
        path: "/telephone/incoming",
        summary: "Twilio incoming call: TwiML connecting the call to /telephone/handler",
        body: None,
        query: None,
        response: "application/xml",
    },
    RouteDoc {
        method: HttpMethod::Get,
        path: "/telephone/handler",
        summary: "Twilio Media Streams WebSocket (upgrade)",
        body: None,
        query: None,
        response: "application/json",
    },
];

/// The OpenAPI document of streams mounted at these prefixes (`""` for the root).
pub fn document<'a>(prefixes: impl IntoIterator<Item = (&'a str, &'a str)>) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for (name, prefix) in prefixes {
        let prefix = prefix.trim_end_matches('/');
        for r in ROUTES {
            let mut op = OperationBuilder::new()
                .summary(Some(r.summary))
                .tag(name)
                .operation_id(Some(format!("{name}{}", r.path.replace('/', "_"))))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("success, or a FastRTC soft failure {status: \"failed\", meta: {error}}")
                        .content(r.response, ContentBuilder::new().build()),
                );
            if let Some(ct) = r.body {
                op = op
                    .request_body(Some(
                        RequestBodyBuilder::new()
                            .content(ct, ContentBuilder::new().build())
                            .required(Some(Required::True))
                            .build(),
                    ))
                    .response(
                        "422",
                        ResponseBuilder::new()
                            .description("malformed body; `detail` names the field"),
                    );
            }
            if let Some(q) = r.query {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(q)
                        .parameter_in(ParameterIn::Query)
                        .required(Required::True),
                );
            }
            paths = paths.path(
                format!("{prefix}{}", r.path),
                PathItem::new(r.method.clone(), op),
            );
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("wasmrtc")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("FastRTC-compatible streams whose handlers are sandboxed WebAssembly components"))
                .build(),
        )
        .paths(paths.build())
        .build()
}

/// A router serving `document` at `/openapi.json`.
pub fn route(document: OpenApi) -> Router {
    let json = serde_json::to_value(&document).unwrap_or_default();
    Router::new().route("/openapi.json", get(move || async move { Json(json) }))
}
