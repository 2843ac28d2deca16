//! The mesh demo: a discovery service and three Switchboard servers on localhost, no external
//! service. Scripted clients on different servers chat and every message is printed as each
//! client receives it; then each server keeps serving a chat page (http://127.0.0.1:3001, 3002,
//! 3003) until Ctrl-C. `--once` stops after the scripted round.
//!
//! Run it with `cargo xtask demo`.
#![allow(clippy::print_stdout)] // a demo prints what happens

use std::{net::SocketAddr, time::Duration};

use axum::{Router, response::Html, routing::get};
use serde_json::{Value as Json, json};
use socketioxide::{
    SocketIo,
    adapter::Emitter,
    extract::{Data, SocketRef},
    handler::ConnectHandler,
};
use switchboard_adapter_mesh::{
    AdapterOptions, ClusterState, MeshAdapter, MeshOptions, MeshTransport, ServerSide,
};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions};
use switchboard_testkit::TestClient;
use tokio::net::TcpListener;

type Adapter = MeshAdapter<Emitter>;

const PAGE: &str = include_str!("chat.html");

/// Ports of the demo: discovery, then (http, mesh) per node. All 0 picks free ports.
pub(crate) struct Ports {
    discovery: u16,
    nodes: [(u16, u16); 3],
}

/// Binds `port` on localhost; a taken port names itself and the way out.
async fn listen(port: u16, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            std::io::Error::new(
                e.kind(),
                format!(
                    "port {port} ({what}) is taken by another program: stop it, or run \
                     `cargo xtask demo --free-ports` to use ports the system picks"
                ),
            )
        } else {
            std::io::Error::new(e.kind(), format!("port {port} ({what}): {e}"))
        }
    })
}

impl Ports {
    /// Free ports but discovery on `port` (the tests try a taken port with it).
    #[allow(dead_code)] // used by tests/demo.rs only
    pub(crate) fn with_discovery(port: u16) -> Ports {
        Ports {
            discovery: port,
            ..Ports::FREE
        }
    }

    pub(crate) const FIXED: Ports = Ports {
        discovery: 8000,
        nodes: [(3001, 4001), (3002, 4002), (3003, 4003)],
    };
    pub(crate) const FREE: Ports = Ports {
        discovery: 0,
        nodes: [(0, 0), (0, 0), (0, 0)],
    };
}

/// The connect handler: nothing left to do once the middleware registered the handlers.
async fn connected(_socket: SocketRef<Adapter>) {}

async fn node(
    name: String,
    listener: TcpListener,
    mesh: u16,
    discovery: SocketAddr,
    links: &str,
) -> std::io::Result<(ServerSide, SocketAddr)> {
    // the peer port: a taken one is said in words before the transport tries it
    drop(listen(mesh, &format!("{name}'s mesh port")).await?);
    let options = MeshOptions::default()
        .bind([127, 0, 0, 1].into())
        .ws_port(mesh)
        .discovery(format!("ws://{discovery}"));
    let transport = MeshTransport::start(options)
        .await
        .map_err(std::io::Error::other)?;
    let config = AdapterOptions::default()
        .heartbeat_interval(Duration::from_millis(500))
        .heartbeat_timeout(Duration::from_millis(1500));
    let state = ClusterState::new(transport, config);
    let server_side = state.server_side();
    let (layer, io) = SocketIo::builder()
        .with_adapter::<Adapter>(state)
        .build_layer();
    // Event handlers are registered in a connect *middleware*, which socketioxide runs before it
    // sends CONNECT to the client. An async connect handler runs after CONNECT has gone out (0.18
    // spawns it), so a client that emits as soon as it is connected could be faster than the
    // handler's `socket.on(..)`, and its first message would be dropped.
    let node_name = name.clone();
    let register = move |socket: SocketRef<Adapter>| {
        let node_name = node_name.clone();
        async move {
            socket.on(
                "chat",
                async move |s: SocketRef<Adapter>, Data(mut msg): Data<Json>| {
                    msg["node"] = json!(node_name);
                    // to every client of every server
                    let _ = s.broadcast().emit("chat", &msg).await;
                    let _ = s.emit("chat", &msg);
                },
            );
            Ok::<(), std::convert::Infallible>(())
        }
    };
    io.ns("/", connected.with(register))
        .await
        .map_err(std::io::Error::other)?;
    let page = PAGE
        .replace("NODE_NAME", &name)
        .replace("NODE_LINKS", links);
    let app = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .layer(layer);
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((server_side, addr))
}

/// Runs the demo; returns, per scripted client, the messages it received.
pub(crate) async fn run(ports: Ports, once: bool) -> std::io::Result<Vec<Vec<String>>> {
    let listener = listen(ports.discovery, "mesh-discovery").await?;
    let discovery = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Discovery::new(DiscoveryOptions::default(), None).serve(listener, async move {
            let _ = stopped.await;
        }),
    );
    println!("mesh-discovery on ws://{discovery}");
    // the pages link to each other: with --free-ports the ports are known once bound
    let mut pages = Vec::new();
    for (i, (http, _)) in ports.nodes.iter().enumerate() {
        pages.push(listen(*http, &format!("node-{}'s chat page", i + 1)).await?);
    }
    let mut links = Vec::new();
    for (i, l) in pages.iter().enumerate() {
        let port = l.local_addr()?.port();
        links.push(format!(
            "<a href=\"http://127.0.0.1:{port}\">node-{}</a>",
            i + 1
        ));
    }
    let links = links.join(", ");
    let mut nodes = Vec::new();
    for (i, ((_, mesh), page)) in ports.nodes.into_iter().zip(pages).enumerate() {
        let name = format!("node-{}", i + 1);
        let (server_side, addr) = node(name.clone(), page, mesh, discovery, &links).await?;
        println!("{name}: chat page on http://{addr}/");
        nodes.push((name, server_side, addr));
    }
    // wait until the three servers see each other
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut formed = true;
        for (_, server_side, _) in &nodes {
            formed &= server_side.of("/").server_count().await.unwrap_or(0) == 3;
        }
        if formed {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(std::io::Error::other("the mesh did not form"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("mesh formed: 3 servers, each connected to the 2 others\n");

    // one scripted client per server
    let mut clients = Vec::new();
    for (name, _, addr) in &nodes {
        let c = TestClient::connect(*addr, "/", json!({}), None)
            .await
            .map_err(std::io::Error::other)?;
        clients.push((name.clone(), c));
    }
    for (i, (name, c)) in clients.iter().enumerate() {
        c.emit("chat", vec![json!({"from": format!("client-{}", i + 1), "text": format!("hello from a client of {name}")})]);
    }
    let mut received = Vec::new();
    for (name, c) in &mut clients {
        let mut got = Vec::new();
        for _ in 0..3 {
            match c.expect("chat", Duration::from_secs(10)).await {
                Some(e) => {
                    let m = &e.args[0];
                    let line = format!(
                        "{} via {}: {}",
                        m["from"].as_str().unwrap_or("?"),
                        m["node"].as_str().unwrap_or("?"),
                        m["text"].as_str().unwrap_or("")
                    );
                    println!("  client of {name} received  {line}");
                    got.push(line);
                }
                None => break,
            }
        }
        received.push(got);
    }
    let missing: Vec<String> = clients
        .iter()
        .zip(&received)
        .flat_map(|((name, _), got)| {
            (1..=clients.len())
                .filter(|n| !got.iter().any(|l| l.starts_with(&format!("client-{n} "))))
                .map(move |n| format!("the client of {name} never received client-{n}'s message"))
        })
        .collect();
    if missing.is_empty() {
        println!("\nevery client received the three messages, whichever server it is connected to");
    } else {
        println!("\nMISSING:");
        for m in &missing {
            println!("  {m}");
        }
    }
    if !once {
        println!("open the chat pages above in several browser tabs; Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop.send(());
    Ok(received)
}

#[tokio::main]
async fn main() {
    let once = std::env::args().any(|a| a == "--once");
    let free = std::env::args().any(|a| a == "--free-ports");
    match run(if free { Ports::FREE } else { Ports::FIXED }, once).await {
        // what is missing was printed above
        Ok(received) if received.iter().any(|r| r.len() != 3) => {
            eprintln!("error: some messages did not cross the mesh");
            std::process::exit(1);
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
