//! One binary, a relay and N workers of itself: `cluster [--workers N] [--port P]`.
//!
//! Run without `SWITCHBOARD_CLUSTER_RELAY` in its environment, it is the primary: it binds the
//! relay on a private socket, starts N copies of itself as workers (worker i listens on P + i, or
//! on a free port when P is 0), restarts a worker that exits, and stops them all on Ctrl-C. Each
//! worker prints `ready <port>`; a client's `shout` reaches the clients of every worker, and
//! `count` is acknowledged with the number of workers. A worker exits when its primary does (its
//! stdin, a pipe from the primary, closes).
//!
//! `cargo run -p switchboard-adapter-cluster --example cluster -- --workers 4 --port 3000`
#![allow(clippy::print_stdout)] // prints where the workers listen

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::Value as Json;
use socketioxide::{
    SocketIo,
    adapter::Emitter,
    extract::{AckSender, Data, SocketRef},
};
use switchboard_adapter_cluster::{
    AdapterOptions, ClusterAdapter, ClusterOptions, ClusterState, ClusterTransport, Relay,
    RelayOptions,
};
use tokio::{io::AsyncReadExt, process::Command};

type Adapter = ClusterAdapter<Emitter>;

const RELAY_ENV: &str = "SWITCHBOARD_CLUSTER_RELAY";
const PORT_ENV: &str = "SWITCHBOARD_CLUSTER_PORT";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    match std::env::var(RELAY_ENV) {
        Ok(relay) => worker(relay).await,
        Err(_) => primary().await,
    }
}

async fn primary() -> std::io::Result<()> {
    let workers: u16 = arg("--workers").and_then(|n| n.parse().ok()).unwrap_or(2);
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let path = dir.join(format!("switchboard-cluster-{}.sock", std::process::id()));
    let relay = Relay::bind(&path, RelayOptions::default())
        .await
        .map_err(std::io::Error::other)?;
    let exe = std::env::current_exe()?;
    let mut slots = tokio::task::JoinSet::new();
    for i in 0..workers {
        let (exe, path) = (exe.clone(), path.clone());
        let port = if port == 0 { 0 } else { port + i };
        // one supervisor per worker: start it, and again (after a pause) when it exits
        slots.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let started = tokio::time::Instant::now();
                let child = Command::new(&exe)
                    .env(RELAY_ENV, &path)
                    .env(PORT_ENV, port.to_string())
                    .stdin(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn();
                let status = match child {
                    Ok(mut child) => {
                        // held while the worker runs (`wait` would close it)
                        let _stdin = child.stdin.take();
                        child.wait().await
                    }
                    Err(e) => Err(e),
                };
                eprintln!("worker {i} exited ({status:?}), restarting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                // a worker that ran a while is not in a crash loop
                backoff = if started.elapsed() > Duration::from_secs(10) {
                    Duration::from_millis(100)
                } else {
                    (backoff * 2).min(Duration::from_secs(5))
                };
            }
        });
    }
    tokio::signal::ctrl_c().await?;
    slots.shutdown().await;
    relay.close();
    Ok(())
}

async fn worker(relay: String) -> std::io::Result<()> {
    let port: u16 = std::env::var(PORT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let transport = ClusterTransport::connect(&relay, ClusterOptions::default())
        .await
        .map_err(std::io::Error::other)?;
    let state = ClusterState::new(transport, AdapterOptions::default());
    let server_side = state.server_side();
    let (layer, io) = SocketIo::builder()
        .with_adapter::<Adapter>(state)
        .build_layer();
    io.ns("/", async move |socket: SocketRef<Adapter>| {
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
    })
    .await
    .map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready {}", listener.local_addr()?.port());
    // the primary holds the other end of stdin: when it is gone, so is this worker
    let orphaned = async {
        let mut buf = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        served = axum::serve(listener, axum::Router::new().layer(layer)) => served,
        () = orphaned => Ok(()),
    }
}
