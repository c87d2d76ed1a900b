//! Counts of outbound requests by stream, grant entry and outcome, for `/metrics`.
//!
//! Labels are bounded: streams are the host's, `host` is a grant pattern as written
//! (at most [`super::MAX_GRANT_ENTRIES`] per stream) or `denied`, and outcomes are
//! the fixed set of [`Outcome`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How one outbound request ended (as far as the host saw it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A response arrived (whatever its status).
    Ok,
    /// The destination is not in the stream's grant.
    Denied,
    /// The destination resolved only to addresses the host refuses.
    AddressRefused,
    /// An in-flight or bytes-per-minute bound was reached.
    Limited,
    /// A connect, first-byte or between-bytes timeout.
    Timeout,
    /// A request or response body over its cap.
    TooLarge,
    /// DNS, TCP, TLS or HTTP failed.
    Failed,
}

impl Outcome {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::AddressRefused => "address_refused",
            Self::Limited => "limited",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
            Self::Failed => "failed",
        }
    }
}

type Key = (Arc<str>, String, Outcome);

static COUNTS: Mutex<BTreeMap<Key, u64>> = Mutex::new(BTreeMap::new());

/// Count one request.
pub(crate) fn count(stream: &Arc<str>, host: &str, outcome: Outcome) {
    let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *counts
        .entry((stream.clone(), host.to_string(), outcome))
        .or_default() += 1;
}

/// Every count so far: (stream, host, outcome label, requests).
pub fn snapshot() -> Vec<(String, String, &'static str, u64)> {
    let counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    counts
        .iter()
        .map(|((s, h, o), n)| (s.to_string(), h.clone(), o.as_str(), *n))
        .collect()
}
