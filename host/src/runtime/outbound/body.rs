//! Bodies held to their caps: a request body the guest writes and a response body
//! it reads, each stopped with an error at its byte cap; the response also at its
//! between-bytes timeout. Both count into the connection's bytes-per-minute window
//! and keep the request's in-flight permits until they end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use wasmtime_wasi_http::Error;

use super::ConnectionBudget;

/// Which way a body goes (the error it gets at its cap).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// A body cut at `limit` bytes, and (when `idle` is set) after `idle` without data.
pub(crate) struct Capped<B> {
    inner: Pin<Box<B>>,
    direction: Direction,
    limit: u64,
    seen: u64,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    budget: Arc<ConnectionBudget>,
    /// (stream, grant entry) to count a cut body under.
    label: Option<(Arc<str>, String)>,
    /// Released when the body is dropped: the request is in flight until then.
    _permits: Vec<OwnedSemaphorePermit>,
}

impl<B> Capped<B> {
    pub(crate) fn new(
        inner: B,
        direction: Direction,
        limit: u64,
        idle: Option<Duration>,
        budget: Arc<ConnectionBudget>,
        permits: Vec<OwnedSemaphorePermit>,
        label: Option<(Arc<str>, String)>,
    ) -> Self {
        Self {
            inner: Box::pin(inner),
            direction,
            limit,
            seen: 0,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            budget,
            label,
            _permits: permits,
        }
    }

    /// End the body with `e`, counted under its grant entry.
    fn cut(&self, e: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some((stream, host)) = &self.label {
            super::metrics::count(stream, host, super::connector::classify(&e));
        }
        Poll::Ready(Some(Err(e)))
    }

    fn too_large(&self) -> Error {
        match self.direction {
            Direction::Request => Error::HttpRequestBodySize(Some(self.limit)),
            Direction::Response => Error::HttpResponseBodySize(Some(self.limit)),
        }
    }
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let polled = this.inner.as_mut().poll_frame(cx);
        let frame = match polled {
            Poll::Pending => {
                if let Some((_, sleep)) = &mut this.idle {
                    ready!(sleep.as_mut().poll(cx));
                    return this.cut(Error::ConnectionReadTimeout);
                }
                return Poll::Pending;
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some((idle, sleep)) = &mut this.idle {
            sleep.as_mut().reset(tokio::time::Instant::now() + *idle);
        }
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            this.seen += n;
            if this.seen > this.limit {
                return this.cut(this.too_large());
            }
            if !this.budget.spend(n) {
                return this.cut(Error::ConnectionLimitReached);
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
