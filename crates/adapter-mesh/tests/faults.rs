//! Mesh faults with real sockets: bad Hellos, garbage and oversized frames, a discovery restart,
//! static peers, a slow consumer.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_mesh::{MeshOptions, MeshTransport, PeerInfo};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::{TestClient, TestServer, check, converge, eventually, start};
use switchboard_wire::{
    Body, ClusterMessage, Opts, PacketObject,
    mesh::{self, Hello},
};
use tokio::net::TcpListener;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

const WAIT: Duration = Duration::from_secs(15);
type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn config() -> AdapterOptions {
    AdapterOptions::default()
        .heartbeat_interval(Duration::from_millis(150))
        .heartbeat_timeout(Duration::from_millis(750))
}

fn local() -> MeshOptions {
    MeshOptions::default()
        .bind([127, 0, 0, 1].into())
        .ws_port(0)
}

async fn discovery_on(listener: TcpListener) -> RunningDiscovery {
    Discovery::new(DiscoveryOptions::default(), None)
        .spawn(listener)
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn discovery() -> (SocketAddr, RunningDiscovery) {
    let running = Discovery::new(DiscoveryOptions::default(), None)
        .spawn_on(([127, 0, 0, 1], 0).into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (running.local_addr(), running)
}

async fn server(options: MeshOptions) -> TestServer<MeshTransport> {
    start(
        MeshTransport::start(options)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        config(),
    )
    .await
}

/// A raw peer: connects to `port` and says Hello as `uid`.
async fn raw_peer(port: u16, uid: &str, token: Option<&str>) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let hello = Hello {
        uid: uid.into(),
        address: "ws://nowhere".into(),
        token: token.map(str::to_owned),
    };
    ws.send(Message::Binary(hello.to_frame().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws
}

async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()? {
            Some(Ok(Message::Close(Some(f)))) => return Some(f.code.into()),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

/// Whether the connection ends (close frame, error or end of stream) within `WAIT`.
async fn closed(ws: &mut Ws) -> bool {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn broadcast_frame(uid: &str, event: &str) -> Vec<u8> {
    mesh::mesh_frame(&ClusterMessage::new(
        uid,
        "/",
        Body::Broadcast {
            packet: PacketObject::event(vec![event.into()]),
            request_id: None,
            opts: Opts::to_rooms(vec![]),
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hellos_are_refused() {
    let t = MeshTransport::start(
        local()
            .auth_token("s3cret")
            .hello_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let port = t.local_addr().port();
    let mut wrong = raw_peer(port, "0000000000000001", Some("nope")).await;
    assert_eq!(close_code(&mut wrong).await, Some(1002), "wrong token");
    let mut missing = raw_peer(port, "0000000000000002", None).await;
    assert_eq!(close_code(&mut missing).await, Some(1002), "missing token");
    let mut myself = raw_peer(port, t.uid(), Some("s3cret")).await;
    assert_eq!(close_code(&mut myself).await, Some(1002), "own uid");
    // silence: hello-timeout
    let (mut silent, _) = connect_async(format!("ws://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(close_code(&mut silent).await, Some(1002), "hello timeout");
    // the right token is accepted
    let _good = raw_peer(port, "0000000000000003", Some("s3cret")).await;
    eventually(WAIT, async || {
        let peers = t.connected_peers();
        check(peers == ["0000000000000003"], || format!("peers {peers:?}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_do_no_harm() {
    let s = server(local().max_frame_size(4096)).await;
    let port = s.transport.local_addr().port();
    let mut client = TestClient::connect(s.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut peer = raw_peer(port, "00000000000000aa", None).await;
    for garbage in [
        vec![0x01, 0xc1],
        vec![0x01],
        vec![0x07, 0x80],
        vec![0x01, 0x92, 0x01, 0x02],
        vec![0x00, 0x80],
    ] {
        peer.send(Message::Binary(garbage.into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    peer.send(Message::Binary(
        broadcast_frame("00000000000000aa", "after-garbage").into(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        client.receives("after-garbage", WAIT).await,
        "the connection survived the garbage"
    );
    // a frame over the limit closes that connection only
    peer.send(Message::Binary(vec![0x01; 10_000].into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        closed(&mut peer).await,
        "an oversized frame closes that peer's connection"
    );
    let mut other = raw_peer(port, "00000000000000bb", None).await;
    other
        .send(Message::Binary(
            broadcast_frame("00000000000000bb", "still-fine").into(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(client.receives("still-fine", WAIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_restart_stops_nothing() {
    let (addr, stop) = discovery().await;
    let url = format!("ws://{addr}");
    let a = server(local().discovery(&url)).await;
    let b = server(local().discovery(&url)).await;
    converge(&[&a, &b], 2).await;
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stop.shutdown();
    // established peers keep talking while discovery is away
    a.io.emit("during", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("during", WAIT).await);
    // discovery comes back on the same port: rosters recover, a newcomer meets everyone
    let listener = eventually(WAIT, async || {
        TcpListener::bind(addr)
            .await
            .map_err(|e| format!("discovery cannot have its port {addr} back: {e}"))
    })
    .await;
    let _stop = discovery_on(listener).await;
    let c = server(local().discovery(&url)).await;
    converge(&[&a, &b, &c], 3).await;
    c.io.emit("from-newcomer", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("from-newcomer", WAIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_peers_and_several_discovery_services() {
    // static: no discovery at all. Only the smaller uid dials, so the larger one starts first on
    // a port of its own (port 0: no race for a port) and the smaller one names it.
    let uids = ["00000000000000a1", "00000000000000b2"];
    let s1 = server(local().uid(uids[1])).await;
    let s0 = server(local().uid(uids[0]).static_peers(vec![PeerInfo {
        server_id: uids[1].into(),
        address: format!("ws://{}", s1.transport.local_addr()),
    }]))
    .await;
    converge(&[&s0, &s1], 2).await;
    let mut c1 = TestClient::connect(s1.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s0.io
        .emit("static", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c1.receives("static", WAIT).await);

    // several discovery services: A registers with both, B only with the second
    let (d1, _s1) = discovery().await;
    let (d2, _s2) = discovery().await;
    let a = server(
        local()
            .discovery(format!("ws://{d1}"))
            .discovery(format!("ws://{d2}")),
    )
    .await;
    let b = server(local().discovery(format!("ws://{d2}"))).await;
    converge(&[&a, &b], 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_and_the_others_keep_up() {
    let (d, _stop) = discovery().await;
    let url = format!("ws://{d}");
    // a budget far above what a draining peer accumulates during the burst, far below 25 MB
    let a = server(
        local()
            .discovery(&url)
            .buffered_amount_threshold(8 * 1024 * 1024),
    )
    .await;
    let b = server(local().discovery(&url)).await;
    converge(&[&a, &b], 2).await;
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // a peer that says Hello and then never reads
    let stalled_uid = "00000000000000ff";
    let _stalled = raw_peer(a.transport.local_addr().port(), stalled_uid, None).await;
    eventually(WAIT, async || {
        let peers = a.transport.connected_peers();
        check(peers.iter().any(|p| p == stalled_uid), || {
            format!("the stalled peer is not among {peers:?}")
        })
    })
    .await;
    let pad = "x".repeat(64 * 1024);
    for i in 0..400 {
        a.io.emit("bulk", &(i, &pad))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    a.io.emit("last", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // the healthy peer got everything, in order
    let mut bulk = 0;
    loop {
        let e = cb
            .event(WAIT)
            .await
            .unwrap_or_else(|| panic!("b fell behind after {bulk} events"));
        if e.name == "last" {
            break;
        }
        bulk += 1;
    }
    assert_eq!(bulk, 400);
    let peers = a.transport.connected_peers();
    assert!(
        !peers.iter().any(|p| p == stalled_uid),
        "the slow consumer was dropped: {peers:?}"
    );
    assert!(peers.iter().any(|p| p == b.transport.uid()));
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

/// No Node mesh package is published: a raw peer replays the frames of the protocol reference
/// (protocol.md §8.4, produced by socket.io-mesh-adapter 2.0) byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_frames_of_a_node_peer_are_understood() {
    let s = server(local()).await;
    let mut client = TestClient::connect(s.addr, "/", json!({"rooms": ["room1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut ws, _) = connect_async(format!(
        "ws://127.0.0.1:{}",
        s.transport.local_addr().port()
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Hello {uid: "3f2a9c0d11e4b7a8", address: "ws://10.0.0.1:4000"}
    let hello = "0082a3756964b033663261396330643131653462376138a761646472657373b277733a2f2f31302e302e302e313a34303030";
    // HEARTBEAT {type: 2, uid, nsp: "/"}
    let heartbeat = "0183a47479706502a3756964b033663261396330643131653462376138a36e7370a12f";
    // BROADCAST of ["chat", "hi"] to room1
    let broadcast = "0184a47479706503a46461746182a67061636b657482a47479706502a46461746192a463686174a26869a46f70747383a5726f6f6d7391a5726f6f6d31a665786365707490a5666c61677380a3756964b033663261396330643131653462376138a36e7370a12f";
    for frame in [hello, heartbeat] {
        ws.send(Message::Binary(unhex(frame).into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    converge(&[&s], 2).await;
    assert_eq!(s.transport.connected_peers(), ["3f2a9c0d11e4b7a8"]);
    ws.send(Message::Binary(unhex(broadcast).into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = client
        .expect("chat", WAIT)
        .await
        .unwrap_or_else(|| panic!("the reference broadcast did not arrive"));
    assert_eq!(e.args, vec![json!("hi")]);
    // and what the server sends the peer is a Mesh frame it can decode: its HEARTBEATs
    let mut got_heartbeat = false;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(WAIT, ws.next()).await {
        if let Message::Binary(b) = m
            && let Ok(mesh::Frame::Mesh(m)) =
                mesh::decode_frame(&b, &switchboard_wire::Limits::DEFAULT)
            && m.uid == s.transport.uid()
        {
            got_heartbeat = true;
            break;
        }
    }
    assert!(got_heartbeat);
}

/// Discovery updates reach servers at different times: a peer whose Hello arrives before the
/// roster that lists it is kept when a roster without it is applied (it was never announced, so it
/// did not leave).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_says_hello_before_its_roster_is_kept() {
    let (d, _stop) = discovery().await;
    let url = format!("ws://{d}");
    let b = server(local().uid("000000000000000b").discovery(&url)).await;
    // A knows B from a static list and dials it; no roster of B's lists A
    let a = server(local().uid("000000000000000a").static_peers(vec![PeerInfo {
        server_id: b.transport.uid().to_owned(),
        address: format!("ws://{}", b.transport.local_addr()),
    }]))
    .await;
    converge(&[&a, &b], 2).await;
    // C registers: B applies a roster {B, C} and dials C
    let c = server(local().uid("000000000000000c").discovery(&url)).await;
    eventually(WAIT, async || {
        let peers = b.transport.connected_peers();
        check(peers.iter().any(|p| p == c.transport.uid()), || {
            format!("B is connected to {peers:?}, not C")
        })
    })
    .await;
    assert!(
        b.transport
            .connected_peers()
            .iter()
            .any(|p| p == a.transport.uid()),
        "B dropped A: {:?}",
        b.transport.connected_peers()
    );
}
