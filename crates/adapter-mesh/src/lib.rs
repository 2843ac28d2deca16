//! A brokerless mesh transport for socketioxide, wire-compatible with `socket.io-mesh-adapter`
//! 2.0: every server listens on a WebSocket port, learns its peers from
//! [`mesh-discovery`](https://docs.rs/switchboard-mesh-discovery) (or a static list), and keeps
//! one WebSocket per pair of servers. One hop per message, no broker.
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{
//!     SocketIo,
//!     extract::{Data, SocketRef},
//!     handler::ConnectHandler,
//! };
//! use switchboard_adapter_mesh::{
//!     AdapterOptions, ClusterState, MeshAdapter, MeshOptions, MeshTransport,
//! };
//!
//! type Adapter = MeshAdapter<socketioxide::adapter::Emitter>;
//!
//! /// A connect middleware runs before the client sees itself connected; socketioxide runs an
//! /// `async` connect handler only after, so handlers registered there can miss a first event.
//! async fn setup(socket: SocketRef<Adapter>, io: SocketIo<Adapter>) -> Result<(), std::convert::Infallible> {
//!     socket.join("room1");
//!     socket.on("chat", async move |Data(text): Data<String>| {
//!         // reaches room1 on every server of the mesh
//!         let _ = io.to("room1").emit("chat", &text).await;
//!     });
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // peers dial this server at ws://<server_address>; set auth_token outside a private network
//!     let transport = MeshTransport::start(
//!         MeshOptions::default()
//!             .discovery("ws://discovery:8000")
//!             .ws_port(4000)
//!             .server_address("ws://10.0.0.7:4000"),
//!     )
//!     .await?;
//!     let state = ClusterState::new(transport, AdapterOptions::default());
//!     let (layer, io) = SocketIo::builder()
//!         .with_adapter::<Adapter>(state)
//!         // socketioxide queues 128 packets per client by default and drops broadcasts beyond
//!         .max_buffer_size(4096)
//!         .build_layer();
//!     io.ns("/", (async |_: SocketRef<Adapter>| {}).with(setup)).await?;
//!     let app = axum::Router::new().layer(layer);
//!     axum::serve(tokio::net::TcpListener::bind("0.0.0.0:3000").await?, app).await?;
//!     Ok(())
//! }
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
