//! A whole host's router: every stream under its prefix, `/openapi.json`, and an
//! index of the streams when they do not sit at the root.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::Stream;
use crate::runtime::spec;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Mount `streams` (each with its prefix, `""` for the root) on one router.
pub fn app(streams: &[(String, Stream)]) -> Router {
    let mut router = Router::new();
    for (prefix, stream) in streams {
        router = stream.mount(router, prefix);
    }
    let docs = super::openapi::document(streams.iter().map(|(p, s)| (s.name(), p.as_str())));
    router = router.merge(super::openapi::route(docs));
    router = router.route(
        "/stats",
        get(|| async { axum::Json(crate::session::stats::snapshot()) }),
    );
    if !streams
        .iter()
        .any(|(p, _)| p.trim_end_matches('/').is_empty())
    {
        let items: String = streams
            .iter()
            .map(|(p, s)| {
                let spec = s.spec();
                format!(
                    "<li><a href=\"{}/\">{}</a> <small>{} · {}</small></li>",
                    escape(p.trim_end_matches('/')),
                    escape(s.name()),
                    spec::modality_name(spec.modality),
                    spec::mode_name(spec.mode)
                )
            })
            .collect();
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>wasmrtc streams</title><style>body{{font:16px system-ui;max-width:40rem;margin:3rem auto;padding:0 1rem;color-scheme:light dark}}li{{margin:.5rem 0}}</style></head><body><h1>Streams</h1><ul>{items}</ul><p><a href=\"/openapi.json\">OpenAPI</a></p></body></html>"
        );
        router = router.route("/", get(move || async move { Html(page) }));
    }
    router
}
