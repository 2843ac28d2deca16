//! A brokerless mesh transport for socketioxide, wire-compatible with `socket.io-mesh-adapter`
//! 2.0: every server listens on a WebSocket port, learns its peers from
//! [`mesh-discovery`](https://docs.rs/switchboard-mesh-discovery) (or a static list), and keeps
//! one WebSocket per pair of servers. One hop per message, no broker.
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{SocketIo, extract::SocketRef};
//! use switchboard_adapter_mesh::{ClusterState, AdapterOptions, MeshAdapter, MeshOptions, MeshTransport};
//!
//! type Adapter = MeshAdapter<socketioxide::adapter::Emitter>;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let transport = MeshTransport::start(
//!     MeshOptions::default().discovery("ws://discovery:8000").ws_port(4000),
//! )
//! .await?;
//! let state = ClusterState::new(transport, AdapterOptions::default());
//! let (layer, io) = SocketIo::builder().with_adapter::<Adapter>(state).build_layer();
//! io.ns("/", async |socket: SocketRef<Adapter>| socket.join("room1")).await?;
//! io.to("room1").emit("news", &"hello").await?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `prometheus` | no | `socketio_mesh_*` metrics and a `/metrics` endpoint (the `metrics` module) |
//! | `__test-support` | no | test plumbing; outside semver |
//!
//! # MSRV
//!
//! Rust 1.94 (that of socketioxide 0.18).

mod budget;
#[cfg(feature = "prometheus")]
pub mod metrics;
mod options;
mod peers;
mod transport;

pub use options::MeshOptions;
#[cfg(feature = "prometheus")]
pub use switchboard_adapter_core::Metrics;
pub use switchboard_adapter_core::{
    AdapterOptions, ClusterState, Error, ServerEvent, ServerSide, ServerSideNamespace,
};
pub use switchboard_wire::mesh::PeerInfo;
pub use transport::{MeshLink, MeshTransport};

/// The socketioxide adapter over the mesh.
pub type MeshAdapter<E> = switchboard_adapter_core::ClusterAdapter<E, MeshTransport>;

/// Why the mesh transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The peer port could not be bound.
    #[error("the mesh listener could not start")]
    Io(#[from] std::io::Error),
}
