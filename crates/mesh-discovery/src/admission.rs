//! Admission of connections before a pod has registered: a cap on how many may be waiting at
//! once, a deadline for the whole handshake (HTTP request, WebSocket upgrade, `register`), and an
//! accept loop that backs off when `accept()` fails (out of file descriptors) instead of spinning.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};

/// What a connection waiting for its registration holds: cleared by [`Admission::admit`].
#[derive(Debug)]
struct Pending {
    admitted: AtomicBool,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

/// A connection's admission ticket, given to the WebSocket handler through `ConnectInfo`.
#[derive(Clone, Debug)]
pub(crate) struct Admission(Arc<Pending>);

impl Admission {
    /// The pod registered: no deadline any more, and its place among the waiting is free.
    pub(crate) fn admit(&self) {
        self.0.admitted.store(true, Ordering::Release);
        drop(
            self.0
                .permit
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
    }
}

impl Connected<IncomingStream<'_, Admitting>> for Admission {
    fn connect_info(stream: IncomingStream<'_, Admitting>) -> Self {
        Admission(stream.io().pending.clone())
    }
}

/// Counters of what admission refused, for the metrics and the logs.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// Connections closed at once: too many were waiting for their registration.
    pub(crate) over_capacity: AtomicU64,
    /// Connections cut at the handshake deadline.
    pub(crate) timed_out: AtomicU64,
    /// `accept()` failures (each followed by a pause).
    pub(crate) accept_errors: AtomicU64,
}

/// A listener whose connections must register within `deadline`, at most `max_pending` waiting.
pub(crate) struct Admitting {
    listener: TcpListener,
    pending: Arc<Semaphore>,
    deadline: Duration,
    refusals: Arc<Refusals>,
    /// The pause after a failed `accept()`, doubling up to 1 s while failures go on.
    backoff: Duration,
}

impl Admitting {
    pub(crate) fn new(
        listener: TcpListener,
        max_pending: usize,
        deadline: Duration,
        refusals: Arc<Refusals>,
    ) -> Self {
        Admitting {
            listener,
            pending: Arc::new(Semaphore::new(max_pending.max(1))),
            deadline,
            refusals,
            backoff: Duration::ZERO,
        }
    }
}

/// Errors that concern one connection only, not the listener (hyper's list).
fn connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl Listener for Admitting {
    type Io = AdmittedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (AdmittedIo, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    self.backoff = Duration::ZERO;
                    let Ok(permit) = self.pending.clone().try_acquire_owned() else {
                        let n = self.refusals.over_capacity.fetch_add(1, Ordering::Relaxed);
                        if n.is_power_of_two() {
                            tracing::warn!(
                                refused = n + 1,
                                "too many connections waiting to register: closing new ones"
                            );
                        }
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let pending = Arc::new(Pending {
                        admitted: AtomicBool::new(false),
                        permit: Mutex::new(Some(permit)),
                    });
                    let io = AdmittedIo {
                        stream,
                        pending,
                        timer: Box::pin(tokio::time::sleep(self.deadline)),
                        refusals: self.refusals.clone(),
                        expired: false,
                    };
                    return (io, addr);
                }
                Err(e) if connection_error(&e) => {}
                Err(e) => {
                    // EMFILE and the like: the listener would fail again at once; pause so that
                    // connections can close instead of spinning on accept()
                    self.backoff =
                        (self.backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    let n = self.refusals.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if n.is_power_of_two() {
                        tracing::error!(errors = n + 1, pause = ?self.backoff, "accept failed: {e}");
                    }
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection that fails its reads once the handshake deadline passes unless it was admitted
/// (the upgraded WebSocket reads through it too, so a pod that never registers is cut as well).
pub(crate) struct AdmittedIo {
    stream: TcpStream,
    pending: Arc<Pending>,
    timer: Pin<Box<Sleep>>,
    refusals: Arc<Refusals>,
    expired: bool,
}

impl AdmittedIo {
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.pending.admitted.load(Ordering::Acquire) {
            return Ok(());
        }
        if !self.expired && self.timer.as_mut().poll(cx).is_ready() {
            self.expired = true;
            self.refusals.timed_out.fetch_add(1, Ordering::Relaxed);
            // its place among the waiting is free at once, even before hyper drops the socket
            drop(
                self.pending
                    .permit
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(),
            );
        }
        if self.expired {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no registration before the handshake deadline",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for AdmittedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_deadline(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AdmittedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
