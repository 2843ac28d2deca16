//! A byte budget on what an accepted connection may send before its Hello is accepted: the
//! HTTP upgrade request and the Hello are a few hundred bytes, and the 64 MiB frame limit of an
//! authenticated peer must not apply to a stranger (8 strangers sending 60 MiB frames would pin
//! half a gigabyte).

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes an accepted connection may send before its Hello is accepted.
pub(crate) const PRE_AUTH_BYTES: usize = 64 * 1024;

/// What is left of a connection's budget; [`Budget::lift`] removes it once the peer is known.
#[derive(Clone, Debug)]
pub(crate) struct Budget(Arc<AtomicUsize>);

impl Budget {
    /// No limit from now on.
    pub(crate) fn lift(&self) {
        self.0.store(usize::MAX, Ordering::Release);
    }
}

/// A stream whose reads stop with an error once the budget is spent.
#[derive(Debug)]
pub(crate) struct Budgeted<S> {
    inner: S,
    left: Budget,
}

impl<S> Budgeted<S> {
    pub(crate) fn new(inner: S, bytes: usize) -> (Self, Budget) {
        let left = Budget(Arc::new(AtomicUsize::new(bytes)));
        (
            Budgeted {
                inner,
                left: left.clone(),
            },
            left,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let left = self.left.0.load(Ordering::Acquire);
        if left == usize::MAX {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if left == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more than a Hello before the Hello was accepted",
            )));
        }
        // read at most what is left, through a small buffer of our own
        let mut chunk = [0u8; 4096];
        let n = left.min(buf.remaining()).min(chunk.len());
        let mut limited = ReadBuf::new(&mut chunk[..n]);
        match Pin::new(&mut self.inner).poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {
                let got = limited.filled();
                buf.put_slice(got);
                // lifted meanwhile: stays lifted
                let _ = self
                    .left
                    .0
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                        (l != usize::MAX).then(|| l.saturating_sub(got.len()))
                    });
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
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
}
