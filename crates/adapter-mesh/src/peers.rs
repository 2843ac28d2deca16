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
        Error as WsError, Message,
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};

use crate::{
    budget::{Budgeted, PRE_AUTH_BYTES},
    transport::Inner,
};

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
    // the reader's own way to the writer: a Close reply or a 1009
    let own = tx.clone();
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
                    // after the peer's own Close this is refused (SendAfterClosing); closing the
                    // sink then sends the reply tungstenite queued
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.close().await;
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
    // whether our Close is queued (dropped, a Close answered, a frame too big): the writer gets
    // a moment to send it
    let mut closing = false;
    loop {
        let message = tokio::select! {
            // a dropped peer is not read from any more, even with frames waiting
            biased;
            () = stop.notified() => {
                closing = true;
                break;
            }
            message = stream.next() => message,
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(WsError::Capacity(e))) => {
                tracing::warn!(peer = %uid, "a frame over max_frame_size ({e}): closing");
                inner.dropped("frame-too-big");
                let _ = own.send(Out::Close(1009, "message-too-big"));
                closing = true;
                break;
            }
            Some(Err(_)) | None => break,
        };
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Close(frame) => {
                closed = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                // answered (tungstenite queued the reply; this sends it)
                let _ = own.send(Out::Close(1000, ""));
                closing = true;
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
    drop(own);
    if closing {
        // our Close is queued: let the writer send it, but not wait on a peer that stalls; its
        // queued frames are released with the writer
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

/// Upgrades an accepted connection, validates its Hello (protocol.md §8.4) and runs it. The whole
/// handshake has `hello_timeout`; until the Hello is accepted the peer may send at most
/// [`PRE_AUTH_BYTES`](crate::budget::PRE_AUTH_BYTES) and holds `permit` (a place among the
/// connections waiting for their Hello).
pub(crate) async fn accept(
    inner: Arc<Inner>,
    stream: tokio::net::TcpStream,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let deadline = tokio::time::Instant::now() + inner.options.hello_timeout;
    let (stream, budget) = Budgeted::new(stream, PRE_AUTH_BYTES);
    let config = WebSocketConfig::default()
        .max_frame_size(Some(inner.options.max_frame_size))
        .max_message_size(Some(inner.options.max_frame_size));
    let upgraded = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::accept_async_with_config(stream, Some(config)),
    )
    .await;
    let Ok(Ok(mut ws)) = upgraded else {
        return; // not a WebSocket, or not in time: the socket is just closed
    };
    let close = |code: CloseCode, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    // a peer that does not read is not waited for
    let goodbye = async |ws: &mut WebSocketStream<_>, message| {
        let _ = tokio::time::timeout(crate::transport::CLOSE_GRACE, ws.send(message)).await;
    };
    let first = match tokio::time::timeout_at(deadline, ws.next()).await {
        Ok(first) => first,
        Err(_) => {
            goodbye(&mut ws, close(CloseCode::Protocol, "hello-timeout")).await;
            return;
        }
    };
    let hello = match first {
        Some(Ok(Message::Binary(b))) if b.len() >= 2 => {
            mesh::decode_frame(&b, &Limits::DEFAULT).ok()
        }
        Some(Err(_)) => {
            tracing::warn!("a connection sent more than a Hello before its Hello: closed");
            inner.dropped("hello-too-big");
            goodbye(&mut ws, close(CloseCode::Size, "message-too-big")).await;
            return;
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
            budget.lift();
            drop(permit);
            let replace = uid < inner.uid;
            run(inner, uid, address, ws, replace).await;
        }
        None => {
            tracing::warn!("a peer's Hello was refused");
            goodbye(&mut ws, close(CloseCode::Protocol, "hello-invalid")).await;
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
    let config = WebSocketConfig::default()
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
