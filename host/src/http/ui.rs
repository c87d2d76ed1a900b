//! The built-in web UI of a stream: `GET {prefix}/` (the page), `GET {prefix}/spec`
//! (what the page needs to know) and `GET {prefix}/ui/…` (its assets).
//!
//! The assets are embedded in the binary; the page uses relative URLs only, so it
//! works under any prefix.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use crate::Stream;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const STYLE_CSS: &str = include_str!("../../ui/style.css");
const ICON_SVG: &str = include_str!("../../ui/icon.svg");

/// The assets under `{prefix}/ui/`: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", APP_JS),
    ("style.css", "text/css; charset=utf-8", STYLE_CSS),
    ("icon.svg", "image/svg+xml", ICON_SVG),
];

fn text(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The page. Under a prefix (`/streams/x`), the address without a trailing slash is
/// redirected to the one with it, so that the page's relative URLs resolve inside it.
pub(crate) async fn page(OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    if !path.ends_with('/') {
        let target = match uri.query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        return Redirect::permanent(&target).into_response();
    }
    text("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET {prefix}/ui/{file}`.
pub(crate) async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => text(content_type, body),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// `GET {prefix}/spec`: the stream's name, spec and limits, as the page needs them.
pub(crate) async fn spec(State(stream): State<Stream>) -> Response {
    let config = stream.config();
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        axum::Json(json!({
            "name": stream.name(),
            "spec": stream.spec(),
            "concurrency_limit": config.concurrency_limit,
            "time_limit": config.time_limit.map(|t| t.as_secs_f64()),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// GET `path` from `app` over a real socket; the raw response.
    async fn get_raw(app: Router, path: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    fn routes() -> Router {
        Router::new()
            .route("/", get(super::page))
            .route("/ui/{file}", get(super::asset))
    }

    #[tokio::test]
    async fn page_and_assets_at_the_root() {
        let page = get_raw(routes(), "/").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("text/html"));
        assert!(page.contains("ui/app.js"));
        let js = get_raw(routes(), "/ui/app.js").await;
        assert!(js.starts_with("HTTP/1.1 200") && js.contains("text/javascript"));
        let css = get_raw(routes(), "/ui/style.css").await;
        assert!(css.starts_with("HTTP/1.1 200") && css.contains("text/css"));
        let missing = get_raw(routes(), "/ui/nope.js").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    }

    /// Mounted with `nest_service` (`nest` would not match `/streams/x/`), the page is
    /// at `/streams/x/` and `/streams/x` redirects there.
    #[tokio::test]
    async fn under_a_prefix_the_page_gets_its_trailing_slash() {
        let app = Router::new().nest_service("/streams/x", routes());
        let r = get_raw(app.clone(), "/streams/x?a=1").await;
        assert!(r.starts_with("HTTP/1.1 308"), "{r}");
        assert!(r.to_ascii_lowercase().contains("location: /streams/x/?a=1"));
        let page = get_raw(app.clone(), "/streams/x/").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        let js = get_raw(app, "/streams/x/ui/app.js").await;
        assert!(js.starts_with("HTTP/1.1 200"), "{js}");
    }
}
