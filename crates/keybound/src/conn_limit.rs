//! A bound on open connections (`max_connections`): each accepted connection holds a permit
//! until it closes; a connection accepted while none is free is closed at once, before any
//! byte is read or a TLS handshake begins. Together with `header_read_timeout` this keeps a
//! flood of idle or half-sent connections from exhausting the process's file descriptors and
//! memory, while connections already being served continue: hyper closes a connection whose
//! request headers (or, idle after a response, whose next request) do not arrive in time, and
//! this acceptor closes one that sends nothing at all within it — hyper's protocol detection
//! waits for a first byte without a deadline, so 4,096 silent connections held every permit
//! and the server refused everyone else.

use std::future::{ready, Future as _, Ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An acceptor that admits at most `max` connections at a time, each of which must send its
/// first byte within `first_byte`.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    first_byte: Duration,
}

impl ConnectionLimit {
    /// At most `max` open connections; closed when silent for `first_byte` after accepting.
    pub fn new(max: usize, first_byte: Duration) -> Self {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
            first_byte,
        }
    }
}

impl<I, S> Accept<I, S> for ConnectionLimit {
    type Stream = Limited<I>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::debug!("connection refused: max_connections reached");
            // dropping `stream` closes the connection
            return ready(Err(io::Error::other("max_connections reached")));
        };
        ready(Ok((
            Limited {
                inner: stream,
                _permit: permit,
                first_byte: Some(Box::pin(tokio::time::sleep(self.first_byte))),
            },
            service,
        )))
    }
}

/// A connection holding its permit until it is dropped.
#[derive(Debug)]
pub struct Limited<I> {
    inner: I,
    _permit: OwnedSemaphorePermit,
    /// until the first byte has arrived: when the connection is given up without one
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Limited<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &read {
            Poll::Ready(_) if buf.filled().len() > before => self.first_byte = None,
            Poll::Pending => {
                if let Some(deadline) = &mut self.first_byte {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "nothing sent within header_read_timeout",
                        )));
                    }
                }
            }
            Poll::Ready(_) => {}
        }
        read
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Limited<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
