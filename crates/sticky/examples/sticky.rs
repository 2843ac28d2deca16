//! One port, N workers of this binary, broadcasts shared over the cluster relay:
//! `sticky [--port P] [--workers N] [--balancing least-connection|round-robin|random] [--msgpack]`.
//!
//! Started by hand it is the primary: it binds the cluster relay on a private socket and the
//! sticky primary on port P (a free one when 0, the default), prints `ready <port>`, starts N
//! workers of itself (restarting those that exit) and stops them on Ctrl-C or SIGTERM. Each
//! worker runs socketioxide with the cluster adapter (`--relay PATH`, which the primary adds) on
//! the connections handed to it, long-polling and WebSocket alike. A client gets
//! `hello {worker, pid}` on connecting; `echo` is acknowledged with `{args: <its argument>, worker}`,
//! `echo-binary` with `{data, worker}`; `shout` reaches every other client of every worker, `chat`
//! every client. `/` is a chat page whose client long-polls (open it in two browsers). `--msgpack` switches the
//! Socket.IO parser to msgpack (clients must use socket.io-msgpack-parser). `--no-sid-routing
//! --forward-secret S`: the primary spreads every connection by the balancing method, and the
//! workers forward requests of each other's sessions with `switchboard-forward` instead.
//!
//! `cargo run -p switchboard-sticky --example sticky -- --workers 4 --port 3000`
#![allow(clippy::print_stdout)] // prints where it listens

use std::{path::PathBuf, time::Duration};

use serde_json::Value as Json;
use socketioxide::{
    ParserConfig, SocketIo,
    adapter::Emitter,
    extract::{AckSender, Data, SocketRef},
    handler::ConnectHandler,
};
use switchboard_adapter_cluster::{
    AdapterOptions, ClusterAdapter, ClusterOptions, ClusterState, ClusterTransport, Relay,
    RelayOptions,
};
use switchboard_forward::{ForwardLayer, ForwardOptions};
use switchboard_sticky::{Balancing, Primary, Role, StickyOptions, Worker};

/// The chat page: a small Engine.IO long-polling client, no script to fetch.
const PAGE: &str = include_str!("chat.html");

type Adapter = ClusterAdapter<Emitter>;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match switchboard_sticky::role() {
        Role::Primary => primary().await,
        Role::Worker { index } => worker(index).await,
    }
}

async fn primary() -> Result<(), Error> {
    let workers: usize = arg("--workers").and_then(|n| n.parse().ok()).unwrap_or(2);
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let balancing = match arg("--balancing").as_deref() {
        Some("random") => Balancing::Random,
        Some("round-robin") => Balancing::RoundRobin,
        _ => Balancing::LeastConnection,
    };
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let relay_path = dir.join(format!(
        "switchboard-sticky-relay-{}.sock",
        std::process::id()
    ));
    let _relay = Relay::bind(&relay_path, RelayOptions::default()).await?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.extend(["--relay".into(), relay_path.display().to_string()]);
    let options = StickyOptions::default()
        .workers(workers)
        .balancing(balancing)
        // `--no-sid-routing` (with `--forward-secret`): the workers forward each other's sessions
        .route_by_sid(!std::env::args().any(|a| a == "--no-sid-routing"))
        .args(args);
    let primary = Primary::bind(("0.0.0.0", port), options).await?;
    let port = primary.local_addr().port();
    println!("ready {port}");
    eprintln!("chat page: http://127.0.0.1:{port} ({workers} workers; Ctrl-C stops them all)");
    primary.run().await?;
    Ok(())
}

async fn worker(index: usize) -> Result<(), Error> {
    let relay = arg("--relay").ok_or("--relay PATH")?;
    let (worker, listener) = Worker::connect().await?;
    let transport = ClusterTransport::connect(&relay, ClusterOptions::default()).await?;
    let state = ClusterState::new(transport, AdapterOptions::default());
    let mut builder = SocketIo::builder()
        .max_payload(4 * 1024 * 1024)
        .max_buffer_size(4096)
        .ping_interval(Duration::from_secs(5))
        .ping_timeout(Duration::from_secs(5));
    if std::env::args().any(|a| a == "--msgpack") {
        builder = builder.with_parser(ParserConfig::msgpack());
    }
    let (layer, io) = builder.with_adapter::<Adapter>(state).build_layer();
    let pid = std::process::id();
    // handlers are registered in a connect middleware, which runs before CONNECT is sent: a
    // client that emits at once never beats them (an async connect handler runs after)
    let register = move |s: SocketRef<Adapter>| async move {
        s.on(
            "echo",
            async move |Data(args): Data<Json>, ack: AckSender<Adapter>| {
                let _ = ack.send(&serde_json::json!({ "args": args, "worker": index }));
            },
        );
        s.on(
            "echo-binary",
            async move |Data(data): Data<bytes::Bytes>, ack: AckSender<Adapter>| {
                #[derive(serde::Serialize)]
                struct Echo {
                    data: bytes::Bytes,
                    worker: usize,
                }
                let _ = ack.send(&Echo {
                    data,
                    worker: index,
                });
            },
        );
        s.on(
            "shout",
            async |s: SocketRef<Adapter>, Data(v): Data<Json>| {
                let _ = s.broadcast().emit("shout", &v).await;
            },
        );
        s.on(
            "chat",
            async move |s: SocketRef<Adapter>, Data(mut msg): Data<Json>| {
                msg["worker"] = serde_json::json!(index);
                // to every client of every worker, the sender too
                let _ = s.broadcast().emit("chat", &msg).await;
                let _ = s.emit("chat", &msg);
            },
        );
        s.on_disconnect(
            async move |s: SocketRef<Adapter>, reason: socketioxide::socket::DisconnectReason| {
                tracing::debug!(worker = index, sid = %s.id, ?reason, "disconnected");
            },
        );
        Ok::<(), std::convert::Infallible>(())
    };
    let hello = move |s: SocketRef<Adapter>| async move {
        let _ = s.emit("hello", &serde_json::json!({ "worker": index, "pid": pid }));
    };
    io.ns("/", hello.with(register)).await?;
    worker.watch(io.clone());
    let page = PAGE.replace("WORKER", &index.to_string());
    let inner = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(page) }),
        )
        .layer(layer);
    let app = worker.router(inner.clone());
    let app = match arg("--forward-secret") {
        // no sid routing needed: this worker forwards other workers' sessions to them, and
        // takes theirs on a loopback port of its own (keep-alive, no primary in between)
        Some(secret) => {
            let peer = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let options = ForwardOptions::new(peer.local_addr()?, secret).max_payload(4 << 20);
            let forward = ForwardLayer::new(options)?;
            let peer_app = inner.layer(forward.clone());
            tokio::spawn(async move {
                let _ = axum::serve(peer, peer_app).await;
            });
            app.layer(forward)
        }
        None => app,
    };
    axum::serve(listener, app)
        .with_graceful_shutdown({
            let worker = worker.clone();
            // WebSocket sessions would hold the graceful stop open: close them
            async move {
                worker.closed().await;
                io.close().await;
            }
        })
        .await?;
    Ok(())
}
