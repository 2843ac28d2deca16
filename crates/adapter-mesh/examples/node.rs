//! One Switchboard server in a mesh, as a process of its own:
//! `node --http <port> --discovery ws://host:port`. Prints `ready <http port>` when listening.
//! Clients join the rooms named in their auth; `shout` is emitted to every client of every server;
//! `count` is acknowledged with the server count. Used by the multi-process tests.
#![allow(clippy::print_stdout)] // the parent reads the port from stdout

use std::time::Duration;

use serde_json::Value as Json;
use socketioxide::{
    SocketIo,
    adapter::Emitter,
    extract::{AckSender, Data, SocketRef},
};
use switchboard_adapter_mesh::{
    AdapterOptions, ClusterState, MeshAdapter, MeshOptions, MeshTransport,
};

type Adapter = MeshAdapter<Emitter>;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let http: u16 = arg("--http").and_then(|p| p.parse().ok()).unwrap_or(0);
    let mut options = MeshOptions::default()
        .bind([127, 0, 0, 1].into())
        .ws_port(0);
    if let Some(d) = arg("--discovery") {
        options = options.discovery(d);
    }
    let transport = MeshTransport::start(options)
        .await
        .map_err(std::io::Error::other)?;
    let config = AdapterOptions::default()
        .heartbeat_interval(Duration::from_millis(200))
        .heartbeat_timeout(Duration::from_millis(1000));
    let state = ClusterState::new(transport, config);
    let server_side = state.server_side();
    let (layer, io) = SocketIo::builder()
        .with_adapter::<Adapter>(state)
        .build_layer();
    io.ns(
        "/",
        async move |socket: SocketRef<Adapter>, Data(auth): Data<Json>| {
            if let Some(rooms) = auth.get("rooms").and_then(Json::as_array) {
                socket.join(
                    rooms
                        .iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect::<Vec<_>>(),
                );
            }
            socket.on(
                "shout",
                async |s: SocketRef<Adapter>, Data(d): Data<Json>| {
                    let _ = s.broadcast().emit("shouted", &d).await;
                },
            );
            let server_side = server_side.clone();
            socket.on("count", async move |ack: AckSender<Adapter>| {
                let n = server_side.of("/").server_count().await.unwrap_or(0);
                let _ = ack.send(&n);
            });
        },
    )
    .await
    .map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", http)).await?;
    println!("ready {}", listener.local_addr()?.port());
    axum::serve(listener, axum::Router::new().layer(layer)).await
}
