//! A socketioxide server with the cluster adapter on a free local port, and the small app every
//! conformance test drives: clients join the rooms named in their auth, `relay` is re-broadcast
//! with `socket.broadcast()`, `ping` is acknowledged with `pong`. Like the Node interop server,
//! it records handshakes and sets `data` to `{name}` (from the auth, default `rust`), so other
//! servers' fetchSockets see them.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use serde_json::Value as Json;
use socketioxide::{
    SocketIo,
    adapter::Emitter,
    extract::{AckSender, Data, SocketRef},
    handler::ConnectHandler,
};
use tokio::net::TcpListener;

use switchboard_adapter_core::{ClusterAdapter, ClusterState, ServerSide, Transport};

use crate::{
    suite::WAIT,
    wait::{check, eventually},
};

/// The adapter type of test servers.
pub type TestAdapter<T> = ClusterAdapter<Emitter, T>;

/// A running test server.
pub struct TestServer<T: Transport> {
    /// Its socket.io handle.
    pub io: SocketIo<TestAdapter<T>>,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Its serverSideEmit handle.
    pub server_side: ServerSide,
    /// Its transport (to crash it).
    pub transport: T,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Transport> Drop for TestServer<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs before socketioxide sends the CONNECT packet (the connect handler runs after it), so a
/// client that sees itself connected is already in its rooms and has its handlers.
async fn setup<T: Transport>(
    socket: SocketRef<TestAdapter<T>>,
    Data(auth): Data<Json>,
    server_side: ServerSide,
) -> Result<(), std::convert::Infallible> {
    let name = auth.get("name").and_then(Json::as_str).unwrap_or("rust");
    if let Err(e) = server_side.set_data(&socket, &serde_json::json!({ "name": name })) {
        panic!("set_data: {e}");
    }
    if let Some(rooms) = auth.get("rooms").and_then(Json::as_array) {
        let rooms: Vec<String> = rooms
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        socket.join(rooms);
    }
    socket.on(
        "relay",
        async |s: SocketRef<TestAdapter<T>>, Data(d): Data<Json>| {
            let _ = s.broadcast().emit("relayed", &d).await;
        },
    );
    socket.on("ping", async |ack: AckSender<TestAdapter<T>>| {
        let _ = ack.send(&"pong");
    });
    Ok(())
}

async fn connected<T: Transport>(_socket: SocketRef<TestAdapter<T>>) {}

/// Starts a server with namespaces `/`, `/admin` and the dynamic `/dyn/{id}`.
pub async fn start<T: Transport + Clone>(
    transport: T,
    config: switchboard_adapter_core::AdapterOptions,
) -> TestServer<T> {
    let state = ClusterState::new(transport.clone(), config);
    let server_side = state.server_side();
    let (layer, io) = SocketIo::builder()
        .with_adapter::<TestAdapter<T>>(state)
        .max_buffer_size(1 << 20)
        .build_layer();
    let record = server_side.record_handshakes().address(|parts| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
    });
    let ss = server_side.clone();
    let setup = move |socket: SocketRef<TestAdapter<T>>, auth: Data<Json>| {
        let ss = ss.clone();
        async move { setup::<T>(socket, auth, ss).await }
    };
    for nsp in ["/", "/admin"] {
        let handler = connected::<T>.with(setup.clone()).with(record.clone());
        if let Err(e) = io.ns(nsp, handler).await {
            panic!("namespace {nsp}: {e}");
        }
    }
    let handler = connected::<T>.with(setup).with(record);
    if let Err(e) = io.dyn_ns("/dyn/{id}", handler) {
        panic!("dynamic namespace: {e}");
    }
    let app = axum::Router::new()
        .layer(layer)
        .into_make_service_with_connect_info::<SocketAddr>();
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("local addr: {e}"),
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TestServer {
        io,
        addr,
        server_side,
        transport,
        task,
    }
}

impl<T: Transport> TestServer<T> {
    /// How many servers this one counts in `/` (0 when the request fails).
    pub async fn server_count(&self) -> usize {
        self.server_side.of("/").server_count().await.unwrap_or(0)
    }
}

/// Waits until every server of `servers` counts `n` servers in `/`.
pub async fn converge<T: Transport>(servers: &[&TestServer<T>], n: usize) {
    eventually(WAIT, async || {
        let mut counts = Vec::new();
        for s in servers {
            counts.push(s.server_count().await);
        }
        check(counts.iter().all(|&c| c == n), || {
            format!("server counts {counts:?}, not {n}")
        })
    })
    .await;
}
