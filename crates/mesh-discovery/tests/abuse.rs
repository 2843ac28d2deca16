//! The discovery service against hostile and failing clients: half-open and silent connections,
//! pods that stop reading, one socket registering many ids, oversized messages, Close handshakes,
//! and 1,000 pods starting at once. Each test asserts the bound (connections cut, time, bytes).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use switchboard_mesh_discovery::{
    CLOSE_POLICY, CLOSE_TOO_BIG, Discovery, DiscoveryOptions, RunningDiscovery,
};
use switchboard_wire::{
    Limits,
    mesh::{DiscoveryMessage, PeerInfo},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, protocol::CloseFrame},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const WAIT: Duration = Duration::from_secs(10);

async fn start(options: DiscoveryOptions) -> (Discovery, RunningDiscovery) {
    let discovery = Discovery::new(options, None);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let running = discovery
        .clone()
        .spawn(listener)
        .unwrap_or_else(|e| panic!("{e}"));
    (discovery, running)
}

fn register_frame(id: &str, address: &str) -> Message {
    let m = DiscoveryMessage::Register {
        server_id: id.into(),
        address: address.into(),
        token: None,
    };
    Message::Binary(m.to_msgpack().into())
}

async fn register(addr: SocketAddr, id: &str) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://{addr}/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws.send(register_frame(id, &format!("ws://{id}:4000")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws
}

/// Server ids of the next roster.
async fn roster(ws: &mut Ws) -> Vec<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok().flatten() {
            Some(Ok(Message::Binary(b))) => {
                if let Ok(DiscoveryMessage::Update { servers }) =
                    DiscoveryMessage::from_msgpack(&b, &Limits::DEFAULT)
                {
                    return servers.into_iter().map(|s| s.server_id).collect();
                }
            }
            Some(Ok(_)) => {}
            other => panic!("no roster: {other:?}"),
        }
    }
}

/// The Close frame the service sends, if any, before the connection ends.
async fn close_frame(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok().flatten() {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

/// Waits until `f` holds, polling every 20 ms, for at most `within`.
async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Whether the service closed this raw connection (EOF or reset) within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_capped_and_cut_at_the_handshake_deadline() {
    let (discovery, running) = start(DiscoveryOptions {
        handshake_timeout: Duration::from_millis(800),
        max_pending: 50,
        ..DiscoveryOptions::default()
    })
    .await;
    let addr = running.local_addr();
    // 200 connections that start an HTTP request and never finish it
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(s);
    }
    let t0 = Instant::now();
    let mut all_cut = true;
    for s in &mut slow {
        all_cut &= closed_by_server(s, Duration::from_secs(5)).await;
    }
    let took = t0.elapsed();
    let (over_capacity, timed_out) = discovery.refused_connections();
    eprintln!(
        "200 half-open requests: {over_capacity} closed on accept (over max_pending 50), \
         {timed_out} cut at the deadline, all gone after {took:?}"
    );
    assert!(
        all_cut,
        "every half-open connection is closed by the service"
    );
    assert!(
        over_capacity >= 100,
        "at most max_pending wait: {over_capacity}"
    );
    assert!(timed_out >= 1, "the waiting ones are cut at the deadline");
    // and a real pod still gets in
    let mut pod = register(addr, "pod-a").await;
    assert_eq!(roster(&mut pod).await, ["pod-a"]);
}

#[tokio::test]
async fn a_websocket_that_never_registers_is_closed() {
    let (discovery, running) = start(DiscoveryOptions {
        handshake_timeout: Duration::from_millis(500),
        ..DiscoveryOptions::default()
    })
    .await;
    let (mut ws, _) = connect_async(format!("ws://{}/", running.local_addr()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let frame = close_frame(&mut ws).await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        t0.elapsed()
    );
    // the upgrade's own deadline or the register deadline: either way the socket is gone
    if let Some(frame) = frame {
        assert_eq!(u16::from(frame.code), CLOSE_POLICY);
    }
    assert!(eventually(WAIT, || discovery.open_connections() == 0).await);
}

#[tokio::test]
async fn one_connection_registers_one_server() {
    let (discovery, running) = start(DiscoveryOptions::default()).await;
    let mut ws = register(running.local_addr(), "pod-a").await;
    assert_eq!(roster(&mut ws).await, ["pod-a"]);
    // 3,000 ids from one socket: the second already closes it, and nothing stays behind
    for i in 0..3000 {
        if ws
            .send(register_frame(&format!("ghost-{i}"), "ws://ghost:4000"))
            .await
            .is_err()
        {
            break;
        }
    }
    let frame = close_frame(&mut ws).await.map(|f| u16::from(f.code));
    assert_eq!(frame, Some(CLOSE_POLICY));
    assert!(
        eventually(WAIT, || discovery.roster().is_empty()).await,
        "stale entries: {:?}",
        discovery.roster().len()
    );
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009_and_a_close_is_answered() {
    let (_discovery, running) = start(DiscoveryOptions {
        max_message_size: 4096,
        ..DiscoveryOptions::default()
    })
    .await;
    let addr = running.local_addr();
    let mut big = register(addr, "pod-big").await;
    assert_eq!(roster(&mut big).await, ["pod-big"]);
    let _ = big.send(Message::Binary(vec![0u8; 100_000].into())).await;
    let code = close_frame(&mut big).await.map(|f| u16::from(f.code));
    assert_eq!(code, Some(CLOSE_TOO_BIG));

    // a pod closing normally gets the service's Close back (1000), not a dropped socket (1006)
    let mut pod = register(addr, "pod-a").await;
    assert_eq!(roster(&mut pod).await, ["pod-a"]);
    pod.close(None).await.unwrap_or_else(|e| panic!("{e}"));
    let mut answered = false;
    while let Ok(Some(message)) = tokio::time::timeout(WAIT, pod.next()).await {
        match message {
            Ok(Message::Close(_)) => answered = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(answered, "the service answers a Close with a Close");
}

/// A pod that stops reading while rosters keep coming: its writer stalls on a full socket. It
/// must be finished (socket released) after the missed pong, with at most one roster queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_stops_reading_is_finished() {
    let (discovery, running) = start(DiscoveryOptions {
        ping_interval: Duration::from_millis(300),
        roster_interval: Duration::from_millis(10),
        ..DiscoveryOptions::default()
    })
    .await;
    let addr = running.local_addr();
    // a raw client with a tiny receive buffer: it upgrades, registers, then never reads
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_recv_buffer_size(4096)
        .unwrap_or_else(|e| panic!("{e}"));
    let stream = socket.connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let (mut stuck, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stuck
        .send(register_frame("stuck", "ws://stuck:4000"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(eventually(WAIT, || discovery.roster().len() == 1).await);
    // churn: pods with 30 KB addresses come and go, so every roster is large
    let churn = tokio::spawn(async move {
        let long = "x".repeat(30_000);
        let mut i = 0u32;
        loop {
            let (mut ws, _) = match connect_async(format!("ws://{addr}/")).await {
                Ok(c) => c,
                Err(_) => continue,
            };
            let _ = ws
                .send(register_frame(
                    &format!("churn-{i}"),
                    &format!("ws://{long}"),
                ))
                .await;
            // reads (and so answers pings) for a moment, then leaves
            let _ = tokio::time::timeout(Duration::from_millis(30), ws.next()).await;
            drop(ws);
            i += 1;
        }
    });
    let t0 = Instant::now();
    let gone = eventually(Duration::from_secs(15), || {
        !discovery
            .roster()
            .iter()
            .any(|p: &PeerInfo| p.server_id == "stuck")
    })
    .await;
    let unregistered = t0.elapsed();
    churn.abort();
    assert!(gone, "the stuck pod left the roster");
    // and its connection task ended (socket released), though it still does not read
    assert!(
        eventually(Duration::from_secs(5), || discovery.open_connections() == 0).await,
        "connections still open: {}",
        discovery.open_connections()
    );
    eprintln!(
        "a pod that stopped reading: out of the roster {unregistered:?} after the churn began, \
         its connection finished while it still did not read"
    );
    drop(stuck);
}

/// 1,000 pods registering at once: rosters are coalesced, so the bytes sent stay a small multiple
/// of one full roster per pod (Node sends one roster to every pod per registration: ~N³).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pods_starting_together() {
    const PODS: usize = 1000;
    let (discovery, running) = start(DiscoveryOptions::default()).await;
    let addr = running.local_addr();
    let ids: Vec<String> = (0..PODS).map(|i| format!("pod-{i:04}")).collect();
    let full = DiscoveryMessage::Update {
        servers: ids
            .iter()
            .map(|id| PeerInfo {
                server_id: id.clone(),
                address: format!("ws://{id}:4000"),
            })
            .collect(),
    }
    .to_msgpack()
    .len();
    let t0 = Instant::now();
    let pods = ids.into_iter().map(|id| {
        tokio::spawn(async move {
            let mut ws = register(addr, &id).await;
            // rosters only grow while pods start: the full one has exactly this length
            loop {
                match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
                    Ok(Some(Ok(Message::Binary(b)))) if b.len() == full => break,
                    Ok(Some(Ok(_))) => {}
                    other => panic!("{id}: no full roster: {other:?}"),
                }
            }
            ws
        })
    });
    let pods: Vec<Ws> = futures_util::future::join_all(pods)
        .await
        .into_iter()
        .map(|p| p.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let stable = t0.elapsed();
    let sent = discovery.roster_bytes_sent();
    let one_each = (full * PODS) as u64;
    // what a push per registration costs (Node): pod k's registration sends k rosters of k entries
    let per_registration: u64 = (1..=PODS as u64)
        .map(|k| k * k * (full as u64) / PODS as u64)
        .sum();
    eprintln!(
        "{PODS} pods: stable roster after {stable:?}; {:.1} MB of rosters sent = {:.1}× one full \
         roster per pod; a roster per registration would be {:.1} GB",
        sent as f64 / 1e6,
        sent as f64 / one_each as f64,
        per_registration as f64 / 1e9
    );
    assert!(
        sent < one_each * 40,
        "{sent} bytes of rosters for {PODS} pods (one full roster each is {one_each})"
    );
    assert_eq!(discovery.roster().len(), PODS);
    drop(pods);
}
