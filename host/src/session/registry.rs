//! The live connections of a stream, by client-chosen id (`webrtc_id`, `websocket_id`
//! or `streamSid`): how hooks reach a session, and candidates that came early.

//!
//! On shutdown the host reaches every live connection through here: a stream's
//! `Connections` are hooked to the host's [`Lifecycle`] ([`Connections::with_lifecycle`]),
//! which on [`Lifecycle::shutdown`] sends [`Command::Shutdown`] to each connection
//! registered, and to each one registered afterwards as it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::HookError;
use crate::lifecycle::{Lifecycle, OnShutdown};
use crate::runtime::{StreamSpec, Value, spec};

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
    /// The input values last sent to the handler (starting at the defaults). Held
    /// across the send of an update, so updates reach the session in the order they
    /// were merged.
    pub inputs: Arc<tokio::sync::Mutex<Vec<Value>>>,
    /// The spec the connection's handler instance was made with: its inputs are
    /// checked against this, not the stream's current one (a hot swap changes that).
    pub spec: Arc<StreamSpec>,
    /// Candidates the client has sent this connection (early ones included), at most
    /// [`MAX_CANDIDATES`].
    pub candidates: Arc<AtomicUsize>,
}

impl ConnectionHandle {
    /// A handle for a new connection whose instance has `spec`, with inputs at their
    /// defaults, and the receiving end of its commands.
    pub fn new(spec: &StreamSpec) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        let (outputs, _) = broadcast::channel(64);
        let handle = Self {
            commands: tx,
            outputs,
            inputs: Arc::new(tokio::sync::Mutex::new(spec::default_values(spec))),
            spec: Arc::new(spec.clone()),
            candidates: Arc::new(AtomicUsize::new(0)),
        };
        (handle, rx)
    }

    /// Count one more trickled candidate: `false` once the connection has had
    /// [`MAX_CANDIDATES`].
    pub fn count_candidate(&self) -> bool {
        self.candidates
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_CANDIDATES).then_some(n + 1)
            })
            .is_ok()
    }

    /// Set named inputs (others keep their values), checked against the connection's
    /// own spec, and send the session the full list. Concurrent updates are applied
    /// one at a time, each merged and sent before the next: the last merged is the
    /// last the session gets. An update whose send does not complete (the connection
    /// ended, or the caller gave up) leaves the values as they were.
    pub async fn set_input(
        &self,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), HookError> {
        let updates = parse_inputs(&self.spec, values)?;
        let mut current = self.inputs.lock().await;
        let mut next = current.clone();
        for (i, v) in updates {
            if let Some(slot) = next.get_mut(i) {
                *slot = v;
            }
        }
        self.commands
            .send(Command::SetInputs(next.clone()))
            .await
            .map_err(|_| HookError::UnknownConnection)?;
        *current = next;
        Ok(())
    }
}

/// Named JSON values checked against `spec`'s inputs: (index of the input, value).
pub(crate) fn parse_inputs(
    spec: &StreamSpec,
    values: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(usize, Value)>, HookError> {
    let mut updates = Vec::with_capacity(values.len());
    for (name, json) in values {
        let Some((index, input)) = spec
            .inputs
            .iter()
            .enumerate()
            .find(|(_, i)| &i.name == name)
        else {
            return Err(HookError::UnknownInput(name.clone()));
        };
        let value = spec::value_from_json(input, json).map_err(|reason| HookError::Invalid {
            name: name.clone(),
            reason,
        })?;
        updates.push((index, value));
    }
    Ok(updates)
}

/// Tell a session the host is shutting down, without waiting: a full queue gets the
/// command from a task of its own.
fn tell_shutdown(commands: &mpsc::Sender<Command>) {
    match commands.try_send(Command::Shutdown) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(cmd)) => {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let commands = commands.clone();
                rt.spawn(async move {
                    let _ = commands.send(cmd).await;
                });
            }
        }
    }
}

/// Longest connection id (`webrtc_id`, `websocket_id`, `streamSid`) a client may choose.
pub const MAX_ID_BYTES: usize = 256;
/// Longest trickled candidate line.
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Most candidates one connection may trickle (those sent before its offer included).
pub const MAX_CANDIDATES: usize = 32;
/// Early candidates are kept this long for an offer that has not come yet.
const EARLY_TTL: Duration = Duration::from_secs(30);
/// Most ids with early candidates per stream.
const EARLY_IDS: usize = 1024;
/// Most bytes of early candidates per stream (ids and lines).
pub const EARLY_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Inner {
    live: HashMap<String, ConnectionHandle>,
    early: HashMap<String, (Instant, Vec<String>)>,
    /// Bytes held in `early`.
    early_bytes: usize,
}

/// The connections of one stream.
#[derive(Clone, Default)]
pub struct Connections {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    /// The host's, when hooked to it: told connections are sent [`Command::Shutdown`].
    lifecycle: Option<Lifecycle>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl OnShutdown for Shared {
    fn shutdown(&self) {
        let live: Vec<mpsc::Sender<Command>> = self
            .lock()
            .live
            .values()
            .map(|h| h.commands.clone())
            .collect();
        for commands in &live {
            tell_shutdown(commands);
        }
    }
}

/// Why a connection was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The id is already in use.
    #[error("connection already exists")]
    AlreadyExists,
    /// The id is longer than [`MAX_ID_BYTES`].
    #[error("connection id longer than {MAX_ID_BYTES} bytes")]
    IdTooLong,
}

impl RegisterError {
    /// The client-facing error code (`meta.error`).
    pub fn code(&self) -> &'static str {
        match self {
            RegisterError::AlreadyExists => "connection_already_exists",
            RegisterError::IdTooLong => "id_too_long",
        }
    }
}

/// Why an early candidate was not kept.
#[derive(Debug, thiserror::Error)]
pub enum EarlyError {
    /// The id already has [`MAX_CANDIDATES`] waiting.
    #[error("too many candidates for this connection")]
    TooMany,
    /// The stream holds [`EARLY_BYTES`] or `EARLY_IDS` ids of early candidates.
    #[error("too many candidates are waiting for their offers")]
    Full,
}

impl Connections {
    /// Connections that `lifecycle` reaches on shutdown: each live one, and each
    /// registered afterwards, is sent [`Command::Shutdown`].
    pub fn with_lifecycle(lifecycle: &Lifecycle) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::default(),
            lifecycle: Some(lifecycle.clone()),
        });
        let hook: Arc<dyn OnShutdown> = shared.clone();
        lifecycle.on_shutdown(Arc::downgrade(&hook));
        Self { shared }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock()
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
    /// While the host is draining, the connection is sent [`Command::Shutdown`] at once.
    pub fn insert(&self, id: &str, handle: ConnectionHandle) -> Result<Vec<String>, RegisterError> {
        if id.len() > MAX_ID_BYTES {
            return Err(RegisterError::IdTooLong);
        }
        let commands = handle.commands.clone();
        let candidates = handle.candidates.clone();
        let early = {
            let mut inner = self.lock();
            if inner.live.contains_key(id) {
                return Err(RegisterError::AlreadyExists);
            }
            inner.live.insert(id.to_string(), handle);
            let early = inner.early.remove(id).map(|(_, c)| c).unwrap_or_default();
            inner.early_bytes -= early_size(id, &early);
            early
        };
        candidates.store(early.len(), Ordering::Relaxed);
        // Checked after the insert: either the shutdown's walk saw this connection,
        // or draining was already set when the walk had started and is seen here.
        if self
            .shared
            .lifecycle
            .as_ref()
            .is_some_and(Lifecycle::is_draining)
        {
            tell_shutdown(&commands);
        }
        Ok(early)
    }

    /// Register a new connection for as long as the returned guard lives (every exit
    /// path of its session drops it), with the candidates that arrived before it.
    pub(crate) fn register(
        &self,
        id: &str,
        handle: ConnectionHandle,
    ) -> Result<(Registration, Vec<String>), RegisterError> {
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

    /// Keep a candidate for an id whose offer has not arrived yet (ids and lines are
    /// bounded by the caller: [`MAX_ID_BYTES`], [`MAX_CANDIDATE_BYTES`]).
    pub fn buffer_candidate(&self, id: &str, candidate: String) -> Result<(), EarlyError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let now = Instant::now();
        let mut freed = 0;
        inner.early.retain(|id, (at, list)| {
            let keep = now.duration_since(*at) < EARLY_TTL;
            if !keep {
                freed += early_size(id, list);
            }
            keep
        });
        inner.early_bytes -= freed;
        let known = inner.early.get(id);
        if known.is_some_and(|(_, list)| list.len() >= MAX_CANDIDATES) {
            return Err(EarlyError::TooMany);
        }
        let cost = candidate.len() + if known.is_none() { id.len() } else { 0 };
        if (known.is_none() && inner.early.len() >= EARLY_IDS)
            || inner.early_bytes + cost > EARLY_BYTES
        {
            return Err(EarlyError::Full);
        }
        inner.early_bytes += cost;
        inner
            .early
            .entry(id.to_string())
            .or_insert_with(|| (now, Vec::new()))
            .1
            .push(candidate);
        Ok(())
    }
}

/// What an id's early candidates count against [`EARLY_BYTES`].
fn early_size(id: &str, list: &[String]) -> usize {
    if list.is_empty() {
        0
    } else {
        id.len() + list.iter().map(String::len).sum::<usize>()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Control, InputSpec, Modality, Mode, PixelFormat, Slider};

    fn slider(name: &str, max: f64) -> InputSpec {
        InputSpec {
            name: name.into(),
            label: name.into(),
            control: Control::Slider(Slider {
                min: 0.0,
                max,
                step: 0.1,
                default: 0.0,
            }),
        }
    }

    fn spec(inputs: Vec<InputSpec>) -> StreamSpec {
        StreamSpec {
            modality: Modality::Audio,
            mode: Mode::SendReceive,
            inputs,
            outputs: Vec::new(),
            input_sample_rate: 16_000,
            output_sample_rate: 24_000,
            video_format: PixelFormat::Bgr24,
            fps: 30,
        }
    }

    fn values(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().cloned().unwrap()
    }

    fn number(v: &Value) -> f64 {
        match v {
            Value::Number(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }

    #[tokio::test]
    async fn inputs_are_checked_against_the_connections_own_spec() {
        // The connection started on version 1 (`gain` up to 2); the stream has since
        // been swapped to a version 2 with a wider `gain` and a `mode`: neither counts.
        let v1 = spec(vec![slider("gain", 2.0)]);
        let (handle, mut rx) = ConnectionHandle::new(&v1);
        let _v2 = spec(vec![slider("gain", 10.0), slider("mode", 1.0)]);
        let err = handle
            .set_input(&values(serde_json::json!({"gain": 5.0})))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Invalid { ref name, .. } if name == "gain"));
        let err = handle
            .set_input(&values(serde_json::json!({"mode": 0.5})))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::UnknownInput(ref n) if n == "mode"));
        assert!(rx.try_recv().is_err(), "a refused update sends nothing");
        handle
            .set_input(&values(serde_json::json!({"gain": 1.5})))
            .await
            .unwrap();
        match rx.try_recv() {
            Ok(Command::SetInputs(list)) => assert_eq!(list.len(), 1),
            other => panic!("expected the inputs, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_updates_the_last_merged_is_the_last_delivered() {
        for _ in 0..50 {
            let (handle, mut rx) =
                ConnectionHandle::new(&spec(vec![slider("a", 1000.0), slider("b", 1000.0)]));
            let tasks: Vec<_> = (1..=40)
                .map(|i| {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        let name = if i % 2 == 0 { "a" } else { "b" };
                        let body = values(serde_json::json!({ name: f64::from(i) }));
                        handle.set_input(&body).await.unwrap();
                    })
                })
                .collect();
            let mut received = Vec::new();
            while received.len() < tasks.len() {
                match rx.recv().await {
                    Some(Command::SetInputs(list)) => received.push(list),
                    other => panic!("unexpected {other:?}"),
                }
            }
            for t in tasks {
                t.await.unwrap();
            }
            let last: Vec<f64> = received.last().unwrap().iter().map(number).collect();
            let state: Vec<f64> = handle.inputs.lock().await.iter().map(number).collect();
            assert_eq!(last, state, "the session's last list is the final state");
            // Each list is the one before it with one input changed: sent in merge order.
            for pair in received.windows(2) {
                let changed = pair[0]
                    .iter()
                    .zip(&pair[1])
                    .filter(|(x, y)| number(x) != number(y))
                    .count();
                assert_eq!(changed, 1, "{pair:?}");
            }
        }
    }

    #[tokio::test]
    async fn an_update_that_is_not_delivered_changes_nothing() {
        let (handle, _rx) = ConnectionHandle::new(&spec(vec![slider("a", 10.0)]));
        while handle.commands.try_send(Command::Close).is_ok() {}
        let update = values(serde_json::json!({"a": 3.0}));
        let sent = tokio::time::timeout(Duration::from_millis(20), handle.set_input(&update)).await;
        assert!(sent.is_err(), "the session's queue is full");
        assert_eq!(number(&handle.inputs.lock().await[0]), 0.0);
    }

    #[tokio::test]
    async fn shutdown_reaches_live_and_late_connections() {
        let life = Lifecycle::new();
        let connections = Connections::with_lifecycle(&life);
        let unhooked = Connections::default();
        let s = spec(Vec::new());
        let (live, mut live_rx) = ConnectionHandle::new(&s);
        let (other, mut other_rx) = ConnectionHandle::new(&s);
        connections.insert("live", live).unwrap();
        unhooked.insert("other", other).unwrap();
        life.shutdown();
        assert!(matches!(live_rx.try_recv(), Ok(Command::Shutdown)));
        assert!(other_rx.try_recv().is_err(), "not hooked to the lifecycle");
        let (late, mut late_rx) = ConnectionHandle::new(&s);
        connections.insert("late", late).unwrap();
        assert!(matches!(late_rx.try_recv(), Ok(Command::Shutdown)));
        // A full queue still gets it, from a task.
        let (full, mut full_rx) = ConnectionHandle::new(&s);
        while full.commands.try_send(Command::Close).is_ok() {}
        connections.insert("full", full).unwrap();
        let mut last = None;
        while let Ok(Some(cmd)) = tokio::time::timeout(Duration::from_secs(1), full_rx.recv()).await
        {
            last = Some(cmd);
        }
        assert!(matches!(last, Some(Command::Shutdown)));
    }
}
