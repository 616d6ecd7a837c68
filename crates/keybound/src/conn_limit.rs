//! A bound on open connections (`max_connections`): each accepted connection holds a permit
//! until it closes; a connection accepted while none is free is closed at once, before any
//! byte is read or a TLS handshake begins. Together with `header_read_timeout` (which also
//! closes idle keep-alive connections) this keeps a flood of idle or half-sent connections from
//! exhausting the process's file descriptors and memory, while connections already being served
//! continue.

use std::future::{ready, Ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An acceptor that admits at most `max` connections at a time.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
}

impl ConnectionLimit {
    /// At most `max` open connections.
    pub fn new(max: usize) -> Self {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
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
}

impl<I: AsyncRead + Unpin> AsyncRead for Limited<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
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
