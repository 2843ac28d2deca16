//! Peer connections: one WebSocket per pair of servers, opened by the smaller uid, Hello first,
//! then cluster messages as Mesh frames. Each peer has a writer with a byte budget.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_wire::{
    Limits,
    mesh::{self, Frame, Hello},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{Notify, mpsc, oneshot},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::transport::Inner;

pub(crate) enum Out {
    Frame(Bytes),
    Close(u16, &'static str),
}

/// A connected peer.
pub(crate) struct Peer {
    pub(crate) conn: u64,
    pub(crate) address: String,
    tx: mpsc::UnboundedSender<Out>,
    buffered: Arc<AtomicUsize>,
    /// Tells the connection's reader to stop: a dropped peer is not read from any more.
    stop: Arc<Notify>,
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

impl Peer {
    /// Queues a frame; false when the peer is over its budget (the caller drops it).
    pub(crate) fn send(&self, frame: &Bytes, threshold: usize) -> bool {
        let waiting = self.buffered.load(Ordering::Relaxed);
        if waiting > threshold {
            return false;
        }
        self.buffered.fetch_add(frame.len(), Ordering::Relaxed);
        self.tx.send(Out::Frame(frame.clone())).is_ok()
    }

    /// Sends a Close and stops reading from the peer at once (it may never answer).
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(Out::Close(code, reason));
        self.stop.notify_one();
    }
}

pub(crate) type Peers = HashMap<String, Peer>;

/// The Close frame a peer ended a connection with.
pub(crate) type Closed = Option<(u16, String)>;

/// Runs an established connection with peer `uid` until it closes; returns the peer's Close.
///
/// `replace`: an existing connection with the same peer is stale and gives way (an accepted
/// connection from the peer that dials us: it dials only when it has no connection, so ours is
/// a leftover, e.g. half-open after a network cut). Otherwise the new connection is the duplicate.
pub(crate) async fn run<S>(
    inner: Arc<Inner>,
    uid: String,
    address: String,
    ws: WebSocketStream<S>,
    replace: bool,
) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let buffered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(Notify::new());
    let duplicate = {
        let mut peers = inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        let mut duplicate = peers.contains_key(&uid);
        if duplicate && replace {
            if let Some(stale) = peers.remove(&uid) {
                tracing::debug!(peer = %uid, "a new connection replaces a stale one");
                stale.close(1000, "replaced");
            }
            duplicate = false;
        }
        if !duplicate {
            peers.insert(
                uid.clone(),
                Peer {
                    conn,
                    address,
                    tx,
                    buffered: buffered.clone(),
                    stop: stop.clone(),
                },
            );
        }
        duplicate
    };
    if duplicate {
        // the other side's connection won the race: a single socket per pair
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "duplicate".into(),
            })))
            .await;
        return None;
    }
    tracing::debug!(uid = %inner.uid, peer = %uid, "peer up");
    inner.observe();
    let writer_budget = buffered.clone();
    // dropped when the writer ends, whichever way
    let (written, all_written) = oneshot::channel::<()>();
    let writer = inner.spawn_writer(async move {
        let _written = written;
        while let Some(out) = rx.recv().await {
            match out {
                Out::Frame(b) => {
                    let len = b.len();
                    let sent = sink.send(Message::Binary(b)).await;
                    writer_budget.fetch_sub(len, Ordering::Relaxed);
                    if sent.is_err() {
                        break;
                    }
                }
                Out::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
    });
    let limits = Limits {
        max_size: inner.options.max_frame_size,
        ..Limits::DEFAULT
    };
    let mut closed = None;
    let mut dropped = false;
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = stop.notified() => {
                dropped = true;
                break;
            }
        };
        let Some(Ok(message)) = message else { break };
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Close(frame) => {
                closed = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            _ => continue,
        };
        inner.frame(false, bytes.len());
        match mesh::decode_frame(&bytes, &limits) {
            Ok(Frame::Mesh(m)) => inner.deliver(m),
            Ok(_) => {} // a second Hello or another kind: ignored, as in Node
            Err(e) => {
                tracing::debug!(peer = %uid, "dropped a malformed frame: {}", switchboard_adapter_core::report(&e))
            }
        }
    }
    if dropped {
        // our Close is queued: let the writer send it, but not wait on a peer that stalls
        let _ = tokio::time::timeout(crate::transport::CLOSE_GRACE, all_written).await;
    }
    if let Some(writer) = writer {
        writer.abort();
    }
    let mut peers = inner.peers.lock().unwrap_or_else(|e| e.into_inner());
    if peers.get(&uid).is_some_and(|p| p.conn == conn) {
        peers.remove(&uid);
    }
    drop(peers);
    tracing::debug!(uid = %inner.uid, peer = %uid, ?closed, "peer down");
    inner.peer_gone(&uid);
    closed
}

/// Validates an accepted connection's Hello (protocol.md §8.4) and runs it.
pub(crate) async fn accept<S>(inner: Arc<Inner>, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let close = |reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::Protocol,
            reason: reason.into(),
        }))
    };
    let first = tokio::time::timeout(inner.options.hello_timeout, ws.next()).await;
    let Ok(first) = first else {
        let _ = ws.send(close("hello-timeout")).await;
        return;
    };
    let hello = match first {
        Some(Ok(Message::Binary(b))) if b.len() >= 2 => {
            mesh::decode_frame(&b, &Limits::DEFAULT).ok()
        }
        _ => None,
    };
    let valid = match hello {
        Some(Frame::Hello(Hello {
            uid,
            address,
            token,
        })) => {
            let token_ok = match &inner.options.auth_token {
                Some(expected) => token
                    .as_deref()
                    .is_some_and(|t| switchboard_wire::ids::same_secret(t, expected)),
                None => true,
            };
            // a peer we hold a connection with may dial again only if dialling is its job
            let known = uid > inner.uid
                && inner
                    .peers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&uid);
            (token_ok && uid != inner.uid && !known).then_some((uid, address))
        }
        _ => None,
    };
    match valid {
        Some((uid, address)) => {
            let replace = uid < inner.uid;
            run(inner, uid, address, ws, replace).await;
        }
        None => {
            tracing::warn!("a peer's Hello was refused");
            let _ = ws.send(close("hello-invalid")).await;
        }
    }
}

/// Dials peer `uid` at `address`, sends our Hello and runs the connection; `Ok(Some(why))` when
/// the peer refused the Hello (close 1002).
pub(crate) async fn dial(
    inner: Arc<Inner>,
    uid: String,
    address: String,
) -> Result<Option<String>, String> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(Some(inner.options.max_frame_size))
        .max_message_size(Some(inner.options.max_frame_size));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&address, Some(config), true)
        .await
        .map_err(|e| e.to_string())?;
    let hello = Hello {
        uid: inner.uid.clone(),
        address: inner.address.clone(),
        token: inner.options.auth_token.clone(),
    };
    ws.send(Message::Binary(hello.to_frame().into()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(match run(inner, uid, address, ws, false).await {
        Some((1002, reason)) => Some(format!("close 1002 {reason}")),
        _ => None,
    })
}
