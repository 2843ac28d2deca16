//! Prometheus metrics of the mesh (feature `prometheus`), named as `socket.io-mesh-adapter`'s
//! (protocol.md §8.6): the transport's peer gauges and drops here; messages, bytes and request durations
//! come from the engine's `Metrics::new(registry, "mesh")`.

use std::net::SocketAddr;

use axum::{Router, routing::get};
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The transport's metrics.
#[derive(Clone, Debug)]
pub struct MeshMetrics {
    pub(crate) peers_connected: IntGauge,
    pub(crate) peers_expected: IntGauge,
    pub(crate) peer_drops: IntCounterVec,
    pub(crate) namespaces: IntGauge,
}

impl MeshMetrics {
    /// Registers `socketio_mesh_peers_connected`, `_peers_expected`, `_peer_drops_total{reason}`
    /// and `_namespaces` in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = MeshMetrics {
            peers_connected: IntGauge::new(
                "socketio_mesh_peers_connected",
                "Peers with an open connection",
            )?,
            peers_expected: IntGauge::new("socketio_mesh_peers_expected", "Peers in the roster")?,
            peer_drops: IntCounterVec::new(
                Opts::new(
                    "socketio_mesh_peer_drops_total",
                    "Peer connections dropped, by reason",
                ),
                &["reason"],
            )?,
            namespaces: IntGauge::new("socketio_mesh_namespaces", "Namespaces on this server")?,
        };
        registry.register(Box::new(m.peers_connected.clone()))?;
        registry.register(Box::new(m.peers_expected.clone()))?;
        registry.register(Box::new(m.peer_drops.clone()))?;
        registry.register(Box::new(m.namespaces.clone()))?;
        Ok(m)
    }

    pub(crate) fn dropped(&self, reason: &str) {
        self.peer_drops.with_label_values(&[reason]).inc();
    }
}

/// `registry` as a `/metrics` answer: Prometheus' text format, with its content type
/// (`text/plain; version=0.0.4`). For an axum app of your own:
/// `.route("/metrics", get(move || std::future::ready(metrics::exposition(&registry))))`.
pub fn exposition(registry: &Registry) -> impl axum::response::IntoResponse + use<> {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        buf,
    )
}

/// `/metrics` (Prometheus text), `/` and `/health` (`ok`), to mount on your own axum app.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(exposition(&registry))),
        )
        .route("/", get(|| async { "ok" }))
        .route("/health", get(|| async { "ok" }))
}

/// Serves [`router`] on `addr` (Node's `metrics: { port }`); returns where it listens.
pub async fn serve(addr: SocketAddr, registry: Registry) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(registry)).await;
    });
    Ok(local)
}
