//! The live connections of a stream, by client-chosen id (`webrtc_id`, `websocket_id`
//! or `streamSid`): how hooks reach a session, and candidates that came early.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::runtime::Value;

/// A message to a running session.
#[derive(Debug)]
pub enum Command {
    /// New input values (full list, validated) for the next handler call.
    SetInputs(Vec<Value>),
    /// An ICE candidate the client trickled.
    Candidate(String),
    /// Close the connection.
    Close,
    /// The host is shutting down: tell the client (`end_stream`) and close.
    Shutdown,
}

/// One emission of outputs: output name → JSON value.
pub type Outputs = Arc<serde_json::Map<String, serde_json::Value>>;

/// How to reach a running session.
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    /// Commands to the session.
    pub commands: mpsc::Sender<Command>,
    /// Outputs as they are emitted; closed when the connection ends.
    pub outputs: broadcast::Sender<Outputs>,
    /// The input values last sent to the handler (starting at the defaults).
    pub inputs: Arc<Mutex<Vec<Value>>>,
}

/// Early candidates kept per unknown id, and for how long.
const EARLY_CANDIDATES: usize = 32;
const EARLY_TTL: Duration = Duration::from_secs(30);
const EARLY_IDS: usize = 1024;

#[derive(Default)]
struct Inner {
    live: HashMap<String, ConnectionHandle>,
    early: HashMap<String, (Instant, Vec<String>)>,
}

/// The connections of one stream.
#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<Inner>>,
}

/// The id is already in use.
#[derive(Debug, thiserror::Error)]
#[error("connection already exists")]
pub struct AlreadyExists;

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `id` is live.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().live.contains_key(id)
    }

    /// The handle of a live connection.
    pub fn get(&self, id: &str) -> Option<ConnectionHandle> {
        self.lock().live.get(id).cloned()
    }

    /// Ids of the live connections.
    pub fn ids(&self) -> Vec<String> {
        self.lock().live.keys().cloned().collect()
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether there are no live connections.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Register a new connection, returning the candidates that arrived before it.
    pub fn insert(&self, id: &str, handle: ConnectionHandle) -> Result<Vec<String>, AlreadyExists> {
        let mut inner = self.lock();
        if inner.live.contains_key(id) {
            return Err(AlreadyExists);
        }
        inner.live.insert(id.to_string(), handle);
        Ok(inner.early.remove(id).map(|(_, c)| c).unwrap_or_default())
    }

    /// Register a new connection for as long as the returned guard lives (every exit
    /// path of its session drops it), with the candidates that arrived before it.
    pub(crate) fn register(
        &self,
        id: &str,
        handle: ConnectionHandle,
    ) -> Result<(Registration, Vec<String>), AlreadyExists> {
        let early = self.insert(id, handle)?;
        let guard = Registration {
            connections: self.clone(),
            id: id.to_string(),
        };
        Ok((guard, early))
    }

    /// Forget a connection (its session ended).
    pub fn remove(&self, id: &str) {
        self.lock().live.remove(id);
    }

    /// Keep a candidate for an id whose offer has not arrived yet.
    pub fn buffer_candidate(&self, id: &str, candidate: String) {
        let mut inner = self.lock();
        let now = Instant::now();
        inner
            .early
            .retain(|_, (at, _)| now.duration_since(*at) < EARLY_TTL);
        if inner.early.len() >= EARLY_IDS && !inner.early.contains_key(id) {
            return;
        }
        let (_, list) = inner
            .early
            .entry(id.to_string())
            .or_insert_with(|| (now, Vec::new()));
        if list.len() < EARLY_CANDIDATES {
            list.push(candidate);
        }
    }
}

/// A connection's entry in [`Connections`]: removed when dropped, on every exit path
/// of the session, panics included.
pub(crate) struct Registration {
    connections: Connections,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.remove(&self.id);
    }
}
