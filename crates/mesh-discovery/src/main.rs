//! The `mesh-discovery` binary: the discovery service with its options from flags or environment,
//! `/health`, optional Prometheus metrics, structured logs and graceful shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use axum::{Router, routing::get};
use clap::Parser;
use switchboard_mesh_discovery::{Discovery, DiscoveryMetrics, DiscoveryOptions};
use tokio::net::TcpListener;

/// Tells the servers of a Socket.IO mesh who their peers are.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Port of the WebSocket endpoint (and `/health`).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    port: u16,
    /// Address to bind.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    host: std::net::IpAddr,
    /// Shared secret servers must present when they register.
    #[arg(long, env = "MESH_AUTH_TOKEN")]
    auth_token: Option<String>,
    /// Port of a `/metrics` endpoint for Prometheus (off when absent).
    #[arg(long, env = "METRICS_PORT")]
    metrics_port: Option<u16>,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        // colours for a terminal only: a log file or a pipe gets plain text
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if args.metrics_port == Some(args.port) {
        anyhow::bail!(
            "--metrics-port (METRICS_PORT) and --port (PORT) are both {}: give the metrics another port",
            args.port
        );
    }
    let metrics = match args.metrics_port {
        Some(port) => {
            let registry = prometheus::Registry::new();
            let metrics = DiscoveryMetrics::new(&registry).context("metrics")?;
            let app = Router::new().route(
                "/metrics",
                get(move || {
                    let registry = registry.clone();
                    async move {
                        let mut buf = Vec::new();
                        let _ = prometheus::Encoder::encode(
                            &prometheus::TextEncoder::new(),
                            &registry.gather(),
                            &mut buf,
                        );
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            buf,
                        )
                    }
                }),
            );
            let addr = SocketAddr::new(args.host, port);
            let listener = TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} for /metrics (--metrics-port, METRICS_PORT)")
            })?;
            tracing::info!(port, "metrics on /metrics");
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Some(metrics)
        }
        None => None,
    };
    let discovery = Discovery::new(
        DiscoveryOptions {
            auth_token: args.auth_token,
            ..DiscoveryOptions::default()
        },
        metrics,
    );
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--port, PORT)"))?;
    tracing::info!(addr = %listener.local_addr()?, "mesh discovery listening");
    discovery
        .serve(listener, shutdown_signal())
        .await
        .context("serve")?;
    Ok(())
}
