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
    sync::mpsc,
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

    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(Out::Close(code, reason));
    }
}

pub(crate) type Peers = HashMap<String, Peer>;

/// Runs an established connection with peer `uid` until it closes.
pub(crate) async fn run<S>(inner: Arc<Inner>, uid: String, address: String, ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let buffered = Arc::new(AtomicUsize::new(0));
    let duplicate = {
        let mut peers = inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        let duplicate = peers.contains_key(&uid);
        if !duplicate {
            peers.insert(
                uid.clone(),
                Peer {
                    conn,
                    address,
                    tx,
                    buffered: buffered.clone(),
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
        return;
    }
    tracing::debug!(uid = %inner.uid, peer = %uid, "peer up");
    inner.observe();
    let writer_budget = buffered.clone();
    let writer = tokio::spawn(async move {
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
    while let Some(Ok(message)) = stream.next().await {
        let Message::Binary(bytes) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
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
    writer.abort();
    let mut peers = inner.peers.lock().unwrap_or_else(|e| e.into_inner());
    if peers.get(&uid).is_some_and(|p| p.conn == conn) {
        peers.remove(&uid);
    }
    drop(peers);
    tracing::debug!(uid = %inner.uid, peer = %uid, "peer down");
    inner.peer_gone(&uid);
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
            let known = inner
                .peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&uid);
            (token_ok && uid != inner.uid && !known).then_some((uid, address))
        }
        _ => None,
    };
    match valid {
        Some((uid, address)) => run(inner, uid, address, ws).await,
        None => {
            tracing::warn!("a peer's Hello was refused");
            let _ = ws.send(close("hello-invalid")).await;
        }
    }
}

/// Dials peer `uid` at `address` and sends our Hello.
pub(crate) async fn dial(inner: Arc<Inner>, uid: String, address: String) -> Result<(), String> {
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
    run(inner, uid, address, ws).await;
    Ok(())
}
