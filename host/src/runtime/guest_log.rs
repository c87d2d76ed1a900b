//! Guest stdout/stderr: split into lines, bounded, rate-limited, and forwarded to
//! `tracing` with the stream and connection as fields.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept; the rest of a longer line is cut.
const MAX_LINE: usize = 1024;
/// Lines kept to explain a failure.
const RECENT_LINES: usize = 3;
/// Largest write accepted at once (the guest loops for more).
const WRITE_PERMIT: usize = 64 * 1024;

/// One output stream (stdout or stderr) of one connection's instance.
///
/// Cloning shares the state: WASI asks for a fresh stream handle each time the
/// guest opens stdout, and all of them feed the same line buffer and budget.
#[derive(Clone)]
pub(crate) struct GuestLog {
    inner: Arc<Mutex<LogState>>,
}

struct LogState {
    stream: Arc<str>,
    connection: Arc<str>,
    name: &'static str,
    line: Vec<u8>,
    /// The last few complete lines, oldest first.
    recent: std::collections::VecDeque<String>,
    /// Token bucket: lines that may be forwarded now.
    tokens: f64,
    rate: f64,
    refilled: Instant,
    dropped: u64,
}

impl GuestLog {
    pub(crate) fn new(
        stream: &str,
        connection: &str,
        name: &'static str,
        lines_per_second: u32,
    ) -> Self {
        let rate = f64::from(lines_per_second.max(1));
        Self {
            inner: Arc::new(Mutex::new(LogState {
                stream: stream.into(),
                connection: connection.into(),
                name,
                line: Vec::new(),
                recent: std::collections::VecDeque::new(),
                tokens: rate,
                rate,
                refilled: Instant::now(),
                dropped: 0,
            })),
        }
    }

    /// What the guest last said that explains a failure: its last lines, without
    /// Rust's "note: run with `RUST_BACKTRACE=1`" hint, e.g. a panic message.
    pub(crate) fn last_words(&self) -> Option<String> {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let pending = String::from_utf8_lossy(&state.line).into_owned();
        let words: Vec<&str> = state
            .recent
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(pending.as_str()))
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.write(bytes);
    }
}

impl LogState {
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            self.append(&bytes[..pos]);
            self.finish_line();
            bytes = &bytes[pos + 1..];
        }
        self.append(bytes);
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn finish_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if self.dropped > 0 {
                tracing::warn!(stream = %self.stream, connection = %self.connection,
                    "guest {} rate-limited: {} lines dropped", self.name, self.dropped);
                self.dropped = 0;
            }
            tracing::info!(stream = %self.stream, connection = %self.connection,
                guest = self.name, "{text}");
        } else {
            self.dropped += 1;
        }
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(text);
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
