//! The peer port against hostile and failing peers: half-open connections, huge frames before the
//! Hello, oversized frames after it, Close handshakes, and a slow consumer that is cut off. Each
//! test asserts the bound (connections cut and when, memory, bytes still delivered).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_mesh::{MeshOptions, MeshTransport};
use switchboard_testkit::{TestClient, TestServer, check, eventually, resources::rss_kib, start};
use switchboard_wire::{
    Body, ClusterMessage, Opts, PacketObject,
    mesh::{self, Hello},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, client_async, connect_async, tungstenite::Message,
};

const WAIT: Duration = Duration::from_secs(15);
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn local() -> MeshOptions {
    MeshOptions::default()
        .bind([127, 0, 0, 1].into())
        .ws_port(0)
}

async fn server(options: MeshOptions) -> TestServer<MeshTransport> {
    start(
        MeshTransport::start(options)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        AdapterOptions::default()
            .heartbeat_interval(Duration::from_millis(150))
            .heartbeat_timeout(Duration::from_millis(750)),
    )
    .await
}

fn hello(uid: &str) -> Message {
    let hello = Hello {
        uid: uid.into(),
        address: "ws://nowhere".into(),
        token: None,
    };
    Message::Binary(hello.to_frame().into())
}

fn broadcast_frame(uid: &str, event: &str) -> Message {
    Message::Binary(
        mesh::mesh_frame(&ClusterMessage::new(
            uid,
            "/",
            Body::Broadcast {
                packet: PacketObject::event(vec![event.into()]),
                request_id: None,
                opts: Opts::to_rooms(vec![]),
            },
        ))
        .into(),
    )
}

async fn raw_peer(addr: SocketAddr, uid: &str) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws.send(hello(uid)).await.unwrap_or_else(|e| panic!("{e}"));
    ws
}

fn peer_addr(s: &TestServer<MeshTransport>) -> SocketAddr {
    s.transport.local_addr()
}

/// The Close code the server sends before the connection ends, if any.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()? {
            Some(Ok(Message::Close(Some(f)))) => return Some(f.code.into()),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

/// Drains a raw socket until the server closes it; the bytes read, or `None` if it stayed open
/// for `within`.
async fn drain_until_closed(stream: &mut TcpStream, within: Duration) -> Option<usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
        }
    }
}

/// Upgrades a raw TCP connection by hand and returns it (no WebSocket library on our side, so
/// nothing buffers what we send).
async fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_capped_and_cut_at_the_deadline() {
    let s = server(
        local()
            .hello_timeout(Duration::from_millis(800))
            .max_pending_handshakes(20),
    )
    .await;
    let addr = peer_addr(&s);
    // 100 connections that start the upgrade request and never finish it
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut c = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(c);
    }
    let t0 = Instant::now();
    for c in &mut slow {
        assert!(
            drain_until_closed(c, Duration::from_secs(5))
                .await
                .is_some(),
            "a half-open connection is closed by the server"
        );
    }
    let took = t0.elapsed();
    eprintln!("100 half-open upgrade requests (20 may wait): all closed within {took:?}");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    // a real peer still gets in
    let _peer = raw_peer(addr, "00000000000000aa").await;
    eventually(WAIT, async || {
        let peers = s.transport.connected_peers();
        check(peers == ["00000000000000aa"], || format!("peers {peers:?}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_frames_before_the_hello_are_not_buffered() {
    let s = server(local()).await;
    let addr = peer_addr(&s);
    let before = rss_kib();
    // 8 connections each announcing a 60 MiB frame instead of a Hello, and streaming it
    let attackers = (0..8).map(|_| {
        tokio::spawn(async move {
            let mut c = raw_upgrade(addr).await;
            let len: u64 = 60 * 1024 * 1024;
            let mut header = vec![0x82, 0x80 | 127];
            header.extend_from_slice(&len.to_be_bytes());
            header.extend_from_slice(&[1, 2, 3, 4]); // mask key
            if c.write_all(&header).await.is_err() {
                return 0u64;
            }
            let chunk = vec![0u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < len {
                match tokio::time::timeout(WAIT, c.write_all(&chunk)).await {
                    Ok(Ok(())) => sent += chunk.len() as u64,
                    _ => break,
                }
            }
            sent
        })
    });
    let sent: Vec<u64> = futures_util::future::join_all(attackers)
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let grown = rss_kib().saturating_sub(before);
    eprintln!(
        "8 × 60 MiB frames before a Hello: the server stopped each after {:?} KiB; RSS grew {grown} KiB",
        sent.iter().map(|b| b / 1024).collect::<Vec<_>>()
    );
    assert!(
        sent.iter().all(|&b| b < 16 * 1024 * 1024),
        "each connection was cut long before its frame ended: {sent:?}"
    );
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    assert!(s.transport.connected_peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009_and_a_close_is_answered() {
    let s = server(local().max_frame_size(4096)).await;
    let addr = peer_addr(&s);
    let mut big = raw_peer(addr, "00000000000000aa").await;
    eventually(WAIT, async || {
        check(!s.transport.connected_peers().is_empty(), || {
            "not up".into()
        })
    })
    .await;
    let _ = big.send(Message::Binary(vec![1u8; 10_000].into())).await;
    assert_eq!(close_code(&mut big).await, Some(1009));

    let mut polite = raw_peer(addr, "00000000000000bb").await;
    eventually(WAIT, async || {
        let peers = s.transport.connected_peers();
        check(peers == ["00000000000000bb"], || format!("peers {peers:?}"))
    })
    .await;
    polite.close(None).await.unwrap_or_else(|e| panic!("{e}"));
    let mut answered = false;
    while let Ok(Some(message)) = tokio::time::timeout(WAIT, polite.next()).await {
        match message {
            Ok(Message::Close(_)) => answered = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(
        answered,
        "a peer's Close is answered with a Close (not 1006)"
    );
}

/// A peer that says Hello, never reads, and keeps sending: once it is over its budget it is cut
/// off at once. Nothing it sends afterwards reaches clients, the megabytes queued for it are
/// released rather than flushed, and its socket is closed without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slow_consumer_is_really_disconnected() {
    let s = server(local().buffered_amount_threshold(1024 * 1024)).await;
    let addr = peer_addr(&s);
    let mut client = TestClient::connect(s.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // the attacker: a small receive buffer, a Hello, then it does not read
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_recv_buffer_size(4096)
        .unwrap_or_else(|e| panic!("{e}"));
    let stream = socket.connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let (mut ws, _) = client_async(format!("ws://{addr}"), stream)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let uid = "00000000000000ee";
    ws.send(hello(uid)).await.unwrap_or_else(|e| panic!("{e}"));
    eventually(WAIT, async || {
        check(s.transport.connected_peers() == [uid], || "not up".into())
    })
    .await;
    // 16 MiB of broadcasts: far over the 1 MiB budget
    let pad = "x".repeat(64 * 1024);
    for i in 0..256 {
        s.io.emit("bulk", &(i, &pad))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let t0 = Instant::now();
    eventually(WAIT, async || {
        check(s.transport.connected_peers().is_empty(), || {
            "the slow consumer is still connected".into()
        })
    })
    .await;
    eprintln!("slow consumer dropped {:?} after the burst", t0.elapsed());
    // it keeps sending: nothing of it may reach the clients any more
    for _ in 0..10 {
        if ws
            .send(broadcast_frame(uid, "from-dropped-peer"))
            .await
            .is_err()
        {
            break;
        }
    }
    // it reads again: it gets what was in flight, not the megabytes queued for it, and then
    // finds its socket closed
    let mut stream = ws.into_inner();
    let drained = drain_until_closed(&mut stream, Duration::from_secs(5)).await;
    eprintln!("the dropped peer could still read {drained:?} bytes before its socket closed");
    let drained = drained.unwrap_or_else(|| panic!("the socket of a dropped peer stays open"));
    assert!(
        drained < 12 * 1024 * 1024,
        "{drained} bytes still flushed to a dropped peer"
    );
    // the clients got the burst and then a marker, never the dropped peer's event
    s.io.emit("marker", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    loop {
        let e = client
            .event(WAIT)
            .await
            .unwrap_or_else(|| panic!("no marker"));
        assert_ne!(e.name, "from-dropped-peer", "a dropped peer was still read");
        if e.name == "marker" {
            break;
        }
    }
}
