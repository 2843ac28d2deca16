//! Sockets across Rust servers as Node's `fetchSockets()` shows them: handshakes and data recorded
//! by opting in (`ServerSide::record_handshakes`, `set_data`), the Switchboard fetch with the
//! original ids and the operations on each socket, the size limit on data, and a server that does
//! not opt in (empty handshake, `{}` data: the behaviour before).

use std::time::Duration;

use serde_json::{Value as Json, json};
use socketioxide::{SocketIo, extract::SocketRef};
use switchboard_adapter_core::{
    AdapterOptions, ClusterAdapter, ClusterState, Error, from_value,
    memory::{MemoryHub, MemoryTransport},
};
use switchboard_testkit::{TestClient, converge, start};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);
type Adapter = ClusterAdapter<socketioxide::adapter::Emitter, MemoryTransport>;

async fn client(addr: std::net::SocketAddr, name: &str, rooms: &[&str]) -> TestClient {
    TestClient::connect(
        addr,
        "/",
        json!({"name": name, "rooms": rooms}),
        Some(json!(name)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

fn json_of(v: &switchboard_wire::Value) -> Json {
    from_value(v).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_with_its_handshake_data_and_operations() {
    let hub = MemoryHub::new();
    let s0 = start(
        hub.transport(),
        AdapterOptions::default().max_data_bytes(256),
    )
    .await;
    let s1 = start(hub.transport(), AdapterOptions::default()).await;
    converge(&[&s0, &s1], 2).await;
    let a = client(s0.addr, "a", &["r"]).await;
    let mut b = client(s1.addr, "b", &["r", "x"]).await;

    let all = s0
        .server_side
        .of("/")
        .fetch_sockets(Vec::<String>::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 2, "{all:?}");
    let remote = all
        .iter()
        .find(|s| !s.is_local())
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(remote.id(), b.sid());
    assert_eq!(remote.rooms(), [b.sid(), "r", "x"]);
    let hs = remote.handshake();
    assert_eq!(json_of(&hs.auth), json!({"name": "b", "rooms": ["r", "x"]}));
    assert_eq!(hs.address, "127.0.0.1");
    assert_eq!(json_of(&hs.query)["EIO"], json!("4"));
    assert!(json_of(&hs.headers)["host"].is_string());
    assert!(
        hs.time.ends_with("GMT+0000 (Coordinated Universal Time)"),
        "{}",
        hs.time
    );
    assert_eq!(remote.data_as::<Json>().ok(), Some(json!({"name": "b"})));
    let local = all
        .iter()
        .find(|s| s.is_local())
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(local.id(), a.sid());
    assert_eq!(json_of(&local.handshake().auth)["name"], json!("a"));

    // by room, and the operations through a fetched socket
    let in_x = s0
        .server_side
        .of("/")
        .fetch_sockets(["x"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(in_x.len(), 1);
    in_x[0]
        .emit("direct", &(1, "two"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.expect("direct", WAIT).await.map(|e| e.args),
        Some(vec![json!(1), json!("two")])
    );
    in_x[0].join(["y"]).unwrap_or_else(|e| panic!("{e}"));
    switchboard_testkit::eventually(WAIT, async || {
        let n = s0
            .server_side
            .of("/")
            .fetch_sockets(["y"])
            .await
            .map(|v| v.len());
        switchboard_testkit::check(matches!(n, Ok(1)), || format!("in y: {n:?}"))
    })
    .await;
    in_x[0].disconnect().unwrap_or_else(|e| panic!("{e}"));
    assert!(b.disconnected(WAIT).await);

    // data over max_data_bytes is refused at `set_data`, and the last accepted one stays
    let sid = a.sid().parse().unwrap_or_else(|e| panic!("{e:?}"));
    let socket = s0
        .io
        .of("/")
        .and_then(|ns| ns.get_socket(sid))
        .unwrap_or_else(|| panic!("socket a"));
    let refused = s0.server_side.set_data(&socket, &"x".repeat(1000));
    assert!(
        matches!(refused, Err(Error::TooLarge { .. })),
        "{refused:?}"
    );
    // and data that does not serialise to a JS value (map keys that are not strings)
    let unserialisable: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let refused = s0.server_side.set_data(&socket, &unserialisable);
    assert!(matches!(refused, Err(Error::Convert(_))), "{refused:?}");
    let again = s1
        .server_side
        .of("/")
        .fetch_sockets(["r"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].data_as::<Json>().ok(), Some(json!({"name": "a"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_opting_in_the_handshake_is_empty() {
    let hub = MemoryHub::new();
    let recording = start(hub.transport(), AdapterOptions::default()).await;
    // a server that neither records handshakes nor sets data
    let state = ClusterState::new(hub.transport(), AdapterOptions::default());
    let (layer, io) = SocketIo::builder()
        .with_adapter::<Adapter>(state)
        .build_layer();
    io.ns("/", async |_: SocketRef<Adapter>| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().layer(layer)).await;
    });
    converge(&[&recording], 2).await;
    let c = client(addr, "plain", &[]).await;
    let found = recording
        .server_side
        .of("/")
        .fetch_sockets(Vec::<String>::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plain = found
        .iter()
        .find(|s| s.id() == c.sid())
        .unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(json_of(&plain.handshake().auth), json!({}));
    assert_eq!(plain.handshake().address, "");
    assert_eq!(json_of(plain.data()), json!({}));
    server.abort();
}
