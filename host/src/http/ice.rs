//! `GET {prefix}/rtc_configuration`: the `RTCConfiguration` a client passes to
//! `new RTCPeerConnection(…)` to reach the host from behind NAT, in FastRTC's
//! `rtc_configuration` shape (`{"iceServers": [{"urls", "username", "credential"}]}`).
//!
//! TURN credentials minted from a shared secret are fresh on every request, so the
//! answer is `Cache-Control: no-store`; the secret itself never leaves the host.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::Stream;
use crate::session::stats::{Counter, count};

/// `GET {prefix}/rtc_configuration`.
pub(crate) async fn rtc_configuration(State(stream): State<Stream>) -> Response {
    let servers = stream.ice_servers();
    if servers.mints_credentials() {
        count(Counter::TurnCredentials);
    }
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(servers.configuration(SystemTime::now())),
    )
        .into_response()
}
