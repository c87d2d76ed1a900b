//! `GET /metrics`: Prometheus text exposition of the hosting, per tenant and stream.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `wasmrtc_connections_active` | gauge | tenant, stream |
//! | `wasmrtc_connections_by_version` | gauge | tenant, stream, version |
//! | `wasmrtc_active_version` | gauge | tenant, stream |
//! | `wasmrtc_admissions_refused_total` | counter | tenant, stream |
//! | `wasmrtc_handler_calls_total` | counter | tenant, stream |
//! | `wasmrtc_handler_failures_total` | counter | tenant, stream, cause |
//! | `wasmrtc_handler_call_seconds` | histogram | tenant, stream |
//! | `wasmrtc_instance_memory_bytes` | gauge | tenant, stream |
//! | `wasmrtc_instance_memory_peak_bytes` | gauge | tenant, stream |
//! | `wasmrtc_tenant_connections_active` / `_limit` | gauge | tenant |
//! | `wasmrtc_tenant_admissions_refused_total` | counter | tenant |
//! | `wasmrtc_uploads_total` | counter | tenant, result (`accepted`, `rejected`) |
//! | `wasmrtc_frames_dropped_total` | counter | kind (`video`, `audio`, `video_decode`, `video_encode`) |
//! | `wasmrtc_client_refused_total` | counter | reason (`http_connections`, `candidates`, `video_size`, `ice_tcp`, `ip_connections`, `ip_rate`, `twilio_signature`, `stun_integrity`) |
//! | `wasmrtc_ice_outcomes_total` | counter | outcome (`host`, `srflx`, `prflx`, `relay`, `timeout`) |
//! | `wasmrtc_ice_tcp_connections_total` | counter | |
//! | `wasmrtc_turn_credentials_total` | counter | |
//! | `wasmrtc_outbound_requests_total` | counter | stream, host (grant entry or `denied`), outcome |
//!
//! Streams of the configuration file appear with `tenant=""`. Counters of a stream
//! start at zero when the host starts. With `metrics_token_sha256` in the host's
//! configuration the endpoint asks for `Authorization: Bearer <token>` (401 without
//! it); otherwise anyone who reaches it reads every tenant's stream names.

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::api::{ApiError, bearer_token};
use super::registry::{Registry, Totals};
use super::tenants::TokenHash;
use crate::Stream;
use crate::runtime::CALL_SECONDS_BUCKETS;

/// What `/metrics` reads: the hosted streams (when the host has tenants), the
/// streams served from files, and the token a scraper must present.
#[derive(Clone)]
struct Scrape {
    registry: Option<Registry>,
    statics: Vec<(String, Stream)>,
    token: Option<TokenHash>,
}

/// The `/metrics` route of a host with tenants (the token is the one
/// [`Registry::protect_metrics`] set).
pub fn routes(registry: Registry, statics: Vec<(String, Stream)>) -> Router {
    scrape_routes(Scrape {
        registry: Some(registry),
        statics,
        token: None,
    })
}

/// The `/metrics` route of a host serving streams from files only.
pub fn static_routes(statics: Vec<(String, Stream)>, token: Option<TokenHash>) -> Router {
    scrape_routes(Scrape {
        registry: None,
        statics,
        token,
    })
}

fn scrape_routes(scrape: Scrape) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(scrape)
}

async fn metrics(State(scrape): State<Scrape>, headers: HeaderMap) -> Response {
    let expected = scrape.token.or_else(|| {
        scrape
            .registry
            .as_ref()
            .and_then(|r| r.metrics_token().copied())
    });
    if let Some(expected) = expected {
        let allowed = bearer_token(&headers)
            .map_err(str::to_string)
            .and_then(|token| {
                if expected.matches(token) {
                    Ok(())
                } else {
                    Err("invalid token".to_string())
                }
            });
        if let Err(why) = allowed {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why).into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(scrape.registry.as_ref(), &scrape.statics),
    )
        .into_response()
}

/// A label value, escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Row {
    tenant: String,
    stream: String,
    active: usize,
    refused: u64,
    version: Option<u64>,
    by_version: Vec<(u64, usize)>,
    totals: Totals,
}

/// The exposition text.
pub fn render(registry: Option<&Registry>, statics: &[(String, Stream)]) -> String {
    let mut rows: Vec<Row> = statics
        .iter()
        .map(|(_, s)| {
            let totals = s.component().stats().snapshot();
            Row {
                tenant: String::new(),
                stream: s.name().to_string(),
                active: s.active_connections(),
                refused: s.admission().refused(),
                version: None,
                by_version: Vec::new(),
                totals,
            }
        })
        .collect();
    let hosted = registry.map(|r| r.list(None)).unwrap_or_default();
    rows.extend(hosted.iter().map(|l| {
        Row {
            tenant: l.tenant().name().to_string(),
            stream: l.name().to_string(),
            active: l.active_connections(),
            refused: l.admissions_refused(),
            version: l.active_version(),
            by_version: l
                .connections_by_version()
                .iter()
                .map(|(v, ids)| (*v, ids.len()))
                .collect(),
            totals: l.totals(),
        }
    }));

    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for line in lines {
            let _ = writeln!(out, "{name}{line}");
        }
    };
    let labels = |r: &Row| {
        format!(
            "tenant=\"{}\",stream=\"{}\"",
            esc(&r.tenant),
            esc(&r.stream)
        )
    };

    family(
        "wasmrtc_connections_active",
        "gauge",
        "Connections admitted now.",
        rows.iter()
            .map(|r| format!("{{{}}} {}", labels(r), r.active))
            .collect(),
    );
    family(
        "wasmrtc_connections_by_version",
        "gauge",
        "Live handler instances by the stream version they run.",
        rows.iter()
            .flat_map(|r| {
                r.by_version
                    .iter()
                    .map(move |(v, n)| format!("{{{},version=\"{v}\"}} {n}", labels(r)))
            })
            .collect(),
    );
    family(
        "wasmrtc_active_version",
        "gauge",
        "The version new connections get.",
        rows.iter()
            .filter_map(|r| r.version.map(|v| format!("{{{}}} {v}", labels(r))))
            .collect(),
    );
    family(
        "wasmrtc_admissions_refused_total",
        "counter",
        "Connections refused by a concurrency limit (the stream's or its tenant's).",
        rows.iter()
            .map(|r| format!("{{{}}} {}", labels(r), r.refused))
            .collect(),
    );
    family(
        "wasmrtc_handler_calls_total",
        "counter",
        "Calls into handler instances.",
        rows.iter()
            .map(|r| format!("{{{}}} {}", labels(r), r.totals.calls))
            .collect(),
    );
    family(
        "wasmrtc_handler_failures_total",
        "counter",
        "Handler instances ended by a failure, by cause.",
        rows.iter()
            .flat_map(|r| {
                r.totals.by_cause().map(move |(cause, n)| {
                    format!("{{{},cause=\"{}\"}} {n}", labels(r), cause.as_str())
                })
            })
            .collect(),
    );
    family(
        "wasmrtc_handler_call_seconds",
        "histogram",
        "Duration of calls into handler instances (the guest's CPU time unless the host was short of it).",
        rows.iter()
            .flat_map(|r| {
                let l = labels(r);
                let t = &r.totals;
                let mut cumulative = 0;
                let mut lines: Vec<String> = CALL_SECONDS_BUCKETS
                    .iter()
                    .zip(t.call_buckets)
                    .map(|(le, n)| {
                        cumulative += n;
                        format!("_bucket{{{l},le=\"{le}\"}} {cumulative}")
                    })
                    .collect();
                lines.push(format!("_bucket{{{l},le=\"+Inf\"}} {}", t.calls_timed()));
                lines.push(format!("_sum{{{l}}} {}", t.call_seconds));
                lines.push(format!("_count{{{l}}} {}", t.calls_timed()));
                lines
            })
            .collect(),
    );
    family(
        "wasmrtc_instance_memory_bytes",
        "gauge",
        "Linear memory of the live handler instances, summed.",
        rows.iter()
            .map(|r| format!("{{{}}} {}", labels(r), r.totals.memory_bytes))
            .collect(),
    );
    family(
        "wasmrtc_instance_memory_peak_bytes",
        "gauge",
        "The most linear memory one handler instance has had since start-up.",
        rows.iter()
            .map(|r| format!("{{{}}} {}", labels(r), r.totals.memory_peak))
            .collect(),
    );
    let tenants: Vec<_> = registry
        .map(|r| r.tenants().iter().cloned().collect())
        .unwrap_or_default();
    family(
        "wasmrtc_tenant_connections_active",
        "gauge",
        "Connections admitted now across the tenant's streams.",
        tenants
            .iter()
            .map(|t| format!("{{tenant=\"{}\"}} {}", esc(t.name()), t.admission.active()))
            .collect(),
    );
    family(
        "wasmrtc_tenant_connections_limit",
        "gauge",
        "The tenant's max_connections.",
        tenants
            .iter()
            .map(|t| {
                format!(
                    "{{tenant=\"{}\"}} {}",
                    esc(t.name()),
                    t.config.max_connections
                )
            })
            .collect(),
    );
    family(
        "wasmrtc_tenant_admissions_refused_total",
        "counter",
        "Connections refused because the tenant's max_connections was reached.",
        tenants
            .iter()
            .map(|t| format!("{{tenant=\"{}\"}} {}", esc(t.name()), t.admission.refused()))
            .collect(),
    );
    let uploads = registry.map(Registry::uploads).unwrap_or_default();
    family(
        "wasmrtc_uploads_total",
        "counter",
        "Component uploads, accepted or rejected.",
        tenants
            .iter()
            .flat_map(|t| {
                let uploads = &uploads;
                ["accepted", "rejected"].into_iter().map(move |result| {
                    let n = uploads
                        .get(&(t.name().to_string(), result))
                        .copied()
                        .unwrap_or(0);
                    format!("{{tenant=\"{}\",result=\"{result}\"}} {n}", esc(t.name()))
                })
            })
            .collect(),
    );
    use crate::session::stats::{Counter, counted};
    // One row per process-wide counter, labelled `{label="name"}`.
    let counters = |label: &str, rows: &[(&str, Counter)]| -> Vec<String> {
        rows.iter()
            .map(|&(name, c)| format!("{{{label}=\"{name}\"}} {}", counted(c)))
            .collect()
    };
    family(
        "wasmrtc_frames_dropped_total",
        "counter",
        "Media frames dropped on the host: `video` (replaced by a newer frame before a slow handler saw it), `audio` (the handler too far behind), `video_decode` and `video_encode` (the codec pool behind).",
        counters(
            "kind",
            &[
                ("video", Counter::VideoDropped),
                ("audio", Counter::AudioDropped),
                ("video_decode", Counter::VideoDecodeDropped),
                ("video_encode", Counter::VideoEncodeDropped),
            ],
        ),
    );
    family(
        "wasmrtc_client_refused_total",
        "counter",
        "Client input refused at a bound: `http_connections` (the listener's connection cap), `candidates` (a candidate too long, too many, or the early buffer full), `video_size` (a picture over the maximum size), `ice_tcp` (an ICE-TCP connection over the cap, without a STUN first frame for a live peer, or with an oversized frame), `ip_connections` (an address over its open connections), `ip_rate` (an address over its request rate: 429), `twilio_signature` (a telephone request without a valid signature), `stun_integrity` (a STUN request naming a live peer whose MESSAGE-INTEGRITY does not verify: no route learned).",
        counters(
            "reason",
            &[
                ("http_connections", Counter::HttpConnectionsRefused),
                ("candidates", Counter::CandidatesRefused),
                ("video_size", Counter::VideoTooLarge),
                ("ice_tcp", Counter::IceTcpRefused),
                ("ip_connections", Counter::IpConnectionsRefused),
                ("ip_rate", Counter::IpRateRefused),
                ("twilio_signature", Counter::TwilioSignatureRefused),
                ("stun_integrity", Counter::StunUnverified),
            ],
        ),
    );
    family(
        "wasmrtc_ice_outcomes_total",
        "counter",
        "How WebRTC connections came up, by the client's candidate type (`host`, `srflx` through a NAT, `prflx` learned from its checks, `relay` through TURN), or `timeout`: not up within the connect timeout.",
        counters(
            "outcome",
            &[
                ("host", Counter::IceHost),
                ("srflx", Counter::IceServerReflexive),
                ("prflx", Counter::IcePeerReflexive),
                ("relay", Counter::IceRelay),
                ("timeout", Counter::IceTimeout),
            ],
        ),
    );
    family(
        "wasmrtc_ice_tcp_connections_total",
        "counter",
        "WebRTC connections that came up over ICE-TCP on the media port (their network blocked UDP).",
        vec![format!(" {}", counted(Counter::IceOverTcp))],
    );
    family(
        "wasmrtc_turn_credentials_total",
        "counter",
        "TURN credentials minted for clients from the shared secret (`GET {prefix}/rtc_configuration`).",
        vec![format!(" {}", counted(Counter::TurnCredentials))],
    );
    family(
        "wasmrtc_outbound_requests_total",
        "counter",
        "Handlers' outbound requests by stream, grant entry (`denied` when none matched) and outcome: `ok` (a response arrived), `denied`, `address_refused`, `limited`, `timeout`, `too_large` (also counted when a body is cut), `failed`.",
        crate::runtime::outbound::metrics::snapshot()
            .into_iter()
            .map(|(stream, host, outcome, n)| {
                format!(
                    "{{stream=\"{}\",host=\"{}\",outcome=\"{outcome}\"}} {n}",
                    esc(&stream),
                    esc(&host)
                )
            })
            .collect(),
    );
    out
}
