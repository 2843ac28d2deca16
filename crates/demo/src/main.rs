//! `switchboard-demo`: the demo server (default) or, with `emit`, a redis emitter. Options from
//! flags or environment, as containers pass them. Prints `ready <port>` once listening; logs go to
//! stderr (`RUST_LOG`); SIGTERM disconnects the clients and stops.
#![allow(clippy::print_stdout)] // the ready line is for whoever started the process

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use switchboard_demo::{Backend, DemoOptions, Forwarding};

/// A Switchboard chat server on the mesh or redis, or an emitter.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// HTTP and Socket.IO port.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Address to bind.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    host: std::net::IpAddr,
    /// The name clients see (default: the host name).
    #[arg(long, env = "SERVER_NAME")]
    name: Option<String>,
    /// The cluster transport.
    #[arg(long, env = "TRANSPORT", value_enum, default_value_t = Kind::Mesh)]
    transport: Kind,
    /// Mesh: the discovery service.
    #[arg(long, env = "DISCOVERY_URL", default_value = "ws://127.0.0.1:8000")]
    discovery: String,
    /// Mesh: the peer port.
    #[arg(long, env = "MESH_PORT", default_value_t = 4000)]
    mesh_port: u16,
    /// Mesh: the address peers dial (in Kubernetes, `ws://$(POD_IP):4000`).
    #[arg(long, env = "SERVER_ADDRESS")]
    server_address: Option<String>,
    /// Mesh: the shared secret.
    #[arg(long, env = "MESH_AUTH_TOKEN")]
    auth_token: Option<String>,
    /// Redis: its URL (`redis://` or `redis-cluster://`).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Redis: sharded pub/sub instead of classic.
    #[arg(long, env = "REDIS_SHARDED")]
    sharded: bool,
    /// No sticky sessions: the secret every server shares (16 bytes or more); with it, any
    /// server takes any request and forwards those of other servers' sessions.
    #[arg(long, env = "FORWARD_SECRET")]
    forward_secret: Option<String>,
    /// No sticky sessions: where the other servers reach this one's HTTP port (in Kubernetes,
    /// `$(POD_IP):3000`; default the bound address).
    #[arg(long, env = "FORWARD_ADVERTISE")]
    forward_advertise: Option<std::net::SocketAddr>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Emit a `chat` line to every client of the redis cluster every `--every-ms`.
    Emit {
        /// Milliseconds between lines.
        #[arg(long, env = "EMIT_EVERY_MS", default_value_t = 5000)]
        every_ms: u64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Mesh,
    Redis,
}

async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, () = term => {} }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(Command::Emit { every_ms }) = args.command {
        return tokio::select! {
            r = switchboard_demo::run_emitter(&args.redis, Duration::from_millis(every_ms.max(1))) => r,
            () = terminated() => Ok(()),
        };
    }
    let name = args
        .name
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "switchboard".into());
    let backend = match args.transport {
        Kind::Mesh => Backend::Mesh {
            discovery: args.discovery,
            ws_port: args.mesh_port,
            server_address: args.server_address,
            auth_token: args.auth_token,
        },
        Kind::Redis => Backend::Redis {
            url: args.redis,
            sharded: args.sharded,
        },
    };
    let demo = switchboard_demo::start(DemoOptions {
        name,
        addr: (args.host, args.port).into(),
        backend,
        forward: args.forward_secret.map(|secret| Forwarding {
            secret,
            advertise: args.forward_advertise,
        }),
    })
    .await
    .context("starting the server")?;
    tracing::info!(addr = %demo.addr(), "listening");
    println!("ready {}", demo.addr().port());
    terminated().await;
    tracing::info!("shutting down");
    demo.shutdown().await;
    Ok(())
}
