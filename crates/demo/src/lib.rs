//! The demo server of Switchboard's container images and the compose and Kubernetes examples
//! (`docker/`): one Socket.IO chat server on the mesh or on redis, with `/health`, `/metrics`
//! (Prometheus text) and a chat page on `/`, and an emitter mode that talks to a redis cluster
//! from outside it. Not published: it is the thing the deployment files run.
//!
//! Clients get `hello {server}` on connect; a `chat` `{text}` from any client reaches every client
//! of every server as `chat {from, text, server}`; `who` is acknowledged with every client of the
//! cluster (`[{id, data: {name}}]`, a fetchSockets across servers); `echo` is acknowledged with
//! its argument. Handshakes are recorded, and
//! `socket.data` is `{name}` from the auth, so other servers' fetchSockets see them.
//!
//! # Example
//!
//! ```no_run
//! use switchboard_demo::{Backend, DemoOptions};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let demo = switchboard_demo::start(DemoOptions {
//!     name: "pod-1".into(),
//!     addr: ([0, 0, 0, 0], 3000).into(),
//!     backend: Backend::Mesh {
//!         discovery: "ws://mesh-discovery:8000".into(),
//!         ws_port: 4000,
//!         server_address: Some("ws://10.0.0.7:4000".into()),
//!         auth_token: None,
//!     },
//!     forward: None,
//! })
//! .await?;
//! println!("chat on http://{}", demo.addr());
//! demo.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! None.
//!
//! # MSRV
//!
//! Rust 1.94.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, response::Html, routing::get};
use prometheus::Registry;
use serde_json::{Value as Json, json};
use socketioxide::{
    SocketIo,
    adapter::Emitter,
    extract::{AckSender, Data, SocketRef},
    handler::ConnectHandler,
};
use switchboard_adapter_core::{
    AdapterOptions, ClusterAdapter, ClusterState, Metrics, ServerSide, Transport,
};
use switchboard_adapter_mesh::{MeshOptions, MeshTransport, metrics::MeshMetrics};
use switchboard_adapter_redis::{RedisOptions, RedisTransport};
use switchboard_forward::{ForwardLayer, ForwardMetrics, ForwardOptions};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

const PAGE: &str = include_str!("chat.html");

/// Where the servers meet.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The mesh: `discovery` is the discovery service's URL, `ws_port` the peer port,
    /// `server_address` what peers dial (the pod's IP in Kubernetes; default from the bind
    /// address).
    Mesh {
        /// `ws://host:port` of `mesh-discovery`.
        discovery: String,
        /// The peer port.
        ws_port: u16,
        /// The address peers dial, e.g. `ws://10.0.0.7:4000`.
        server_address: Option<String>,
        /// The mesh's shared secret.
        auth_token: Option<String>,
    },
    /// Redis (`redis://` or `redis-cluster://`), classic or sharded.
    Redis {
        /// The redis URL.
        url: String,
        /// Sharded pub/sub instead of classic.
        sharded: bool,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// This server's name, shown to clients (`hello`, `chat.server`).
    pub name: String,
    /// Where HTTP and Socket.IO listen.
    pub addr: SocketAddr,
    /// The cluster transport.
    pub backend: Backend,
    /// No sticky sessions: any server takes any request (`switchboard-forward`).
    pub forward: Option<Forwarding>,
}

/// Forwarding of other servers' sessions, so that no sticky sessions are needed.
#[derive(Clone)]
pub struct Forwarding {
    /// The secret every server shares (16 bytes or more).
    pub secret: String,
    /// Where the other servers reach this one (default: the bound address).
    pub advertise: Option<SocketAddr>,
}

impl std::fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarding")
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

/// A running demo server.
#[derive(Debug)]
pub struct RunningDemo {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningDemo {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Disconnects its clients, closes the adapter (the other servers stop counting it) and stops
    /// listening.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts a demo server.
pub async fn start(options: DemoOptions) -> anyhow::Result<RunningDemo> {
    let registry = Registry::new();
    match &options.backend {
        Backend::Mesh {
            discovery,
            ws_port,
            server_address,
            auth_token,
        } => {
            let mut mesh = MeshOptions::default()
                .bind(options.addr.ip())
                .ws_port(*ws_port)
                .discovery(discovery.clone())
                .metrics(MeshMetrics::new(&registry)?);
            if let Some(a) = server_address {
                mesh = mesh.server_address(a.clone());
            }
            if let Some(t) = auth_token {
                mesh = mesh.auth_token(t.clone());
            }
            let transport = MeshTransport::start(mesh).await?;
            serve(transport, "mesh", registry, options).await
        }
        Backend::Redis { url, sharded } => {
            let redis = if *sharded {
                RedisOptions::sharded()
            } else {
                RedisOptions::classic()
            };
            // compose and Kubernetes may start redis after this server
            let transport =
                RedisTransport::connect_with_retry(url, redis, Duration::from_secs(60)).await?;
            serve(transport, "redis", registry, options).await
        }
    }
}

type Adapter<T> = ClusterAdapter<Emitter, T>;

async fn serve<T: Transport>(
    transport: T,
    kind: &str,
    registry: Registry,
    options: DemoOptions,
) -> anyhow::Result<RunningDemo> {
    let config = AdapterOptions::default().metrics(Metrics::new(&registry, kind)?);
    let state = ClusterState::new(transport, config);
    let server_side = state.server_side();
    let (layer, io) = SocketIo::builder()
        .with_adapter::<Adapter<T>>(state)
        .build_layer();
    let name = options.name.clone();
    let ss = server_side.clone();
    // a middleware runs before the client sees itself connected: its `chat` is never missed
    let setup =
        move |socket: SocketRef<Adapter<T>>, Data(auth): Data<Json>, io: SocketIo<Adapter<T>>| {
            let (name, ss) = (name.clone(), ss.clone());
            async move {
                setup(socket, auth, io, name, ss);
                Ok::<(), std::convert::Infallible>(())
            }
        };
    let server = options.name.clone();
    // the connect handler runs once the client is connected: it can be greeted
    let connected = async move |socket: SocketRef<Adapter<T>>| {
        let _ = socket.emit("hello", &json!({ "server": server }));
    };
    io.ns(
        "/",
        connected.with(setup).with(server_side.record_handshakes()),
    )
    .await?;
    let page = PAGE.replace("SERVER_NAME", &options.name);
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr()?;
    let forward = match &options.forward {
        Some(f) => Some(ForwardLayer::new(
            ForwardOptions::new(f.advertise.unwrap_or(addr), f.secret.clone())
                .metrics(ForwardMetrics::new(&registry)?),
        )?),
        None => None,
    };
    let app = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                std::future::ready(switchboard_adapter_mesh::metrics::exposition(&registry))
            }),
        )
        .layer(layer);
    let app = match forward {
        Some(forward) => app.layer(forward),
        None => app,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let io2 = io.clone();
        let shutdown = async move {
            let _ = stopped.await;
            // clients are told (they reconnect elsewhere), the adapter says goodbye
            let _ = tokio::time::timeout(Duration::from_secs(5), io2.close()).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("server: {e}");
        }
    });
    Ok(RunningDemo { addr, stop, task })
}

fn setup<T: Transport>(
    socket: SocketRef<Adapter<T>>,
    auth: Json,
    io: SocketIo<Adapter<T>>,
    server: String,
    server_side: ServerSide,
) {
    let name = auth
        .get("name")
        .and_then(Json::as_str)
        .unwrap_or("anonymous")
        .chars()
        .take(40)
        .collect::<String>();
    if let Err(e) = server_side.set_data(&socket, &json!({ "name": name })) {
        tracing::warn!("socket data: {e}");
    }
    // who is online, across the cluster (a fetchSockets with handshakes and data)
    let ss = server_side.clone();
    // a round trip to this server and back, for load and latency tests
    socket.on(
        "echo",
        async |Data(data): Data<Json>, ack: AckSender<Adapter<T>>| {
            let _ = ack.send(&data);
        },
    );
    socket.on("who", async move |ack: AckSender<Adapter<T>>| {
        let who = match ss.of("/").fetch_sockets(Vec::<String>::new()).await {
            Ok(sockets) => sockets
                .iter()
                .map(|s| json!({ "id": s.id(), "data": s.data_as::<Json>().ok() }))
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!("who: {e}");
                Vec::new()
            }
        };
        let _ = ack.send(&who);
    });
    socket.on("chat", async move |Data(msg): Data<Json>| {
        let text: String = msg
            .get("text")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        if text.trim().is_empty() {
            return;
        }
        let line = json!({ "from": name, "text": text, "server": server });
        if let Err(e) = io.emit("chat", &line).await {
            tracing::warn!("chat broadcast: {e}");
        }
    });
}

/// Emits `chat {from: "emitter", text: "tick <n>", server: "emitter"}` to every client of the
/// classic-redis cluster at `url` every `every`, with `switchboard-emitter-redis`, until the
/// process ends.
pub async fn run_emitter(url: &str, every: Duration) -> anyhow::Result<()> {
    use fred::prelude::{Builder, ClientLike, Config};
    let client = Builder::from_config(Config::from_url(url)?).build()?;
    client.init().await?;
    let emitter = switchboard_emitter_redis::Emitter::new(client);
    let mut ticker = tokio::time::interval(every);
    for n in 1u64.. {
        ticker.tick().await;
        let line = json!({ "from": "emitter", "text": format!("tick {n}"), "server": "emitter" });
        if let Err(e) = emitter.emit("chat", &line).await {
            tracing::warn!("emit: {e}");
        }
    }
    Ok(())
}
