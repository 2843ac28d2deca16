//! Redis transports for socketioxide, wire-compatible with `@socket.io/redis-adapter` 8: the
//! classic adapter (`createAdapter`: PUBLISH/PSUBSCRIBE) and the sharded adapter
//! (`createShardedAdapter`, static subscription mode: SPUBLISH/SSUBSCRIBE), on a standalone Redis
//! or a Redis Cluster, over `fred`. Rust and Node servers can share one cluster.
//!
//! All behaviour (broadcasts, acks, fetchSockets, serverSideEmit, timeouts) comes from
//! [`switchboard-adapter-core`](switchboard_adapter_core); this crate moves the bytes.
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{
//!     SocketIo,
//!     extract::{Data, SocketRef},
//!     handler::ConnectHandler,
//! };
//! use switchboard_adapter_redis::{
//!     AdapterOptions, ClusterState, RedisAdapter, RedisOptions, RedisTransport,
//! };
//!
//! type Adapter = RedisAdapter<socketioxide::adapter::Emitter>;
//!
//! /// A connect middleware runs before the client sees itself connected; socketioxide runs an
//! /// `async` connect handler only after, so handlers registered there can miss a first event.
//! async fn setup(socket: SocketRef<Adapter>, io: SocketIo<Adapter>) -> Result<(), std::convert::Infallible> {
//!     socket.join("room1");
//!     socket.on("chat", async move |Data(text): Data<String>| {
//!         // reaches room1 on every server of the cluster, Rust or Node
//!         let _ = io.to("room1").emit("chat", &text).await;
//!     });
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // `redis-cluster://host:port` for a Redis Cluster; RedisOptions::sharded() for SPUBLISH
//!     let transport = RedisTransport::connect("redis://127.0.0.1:6379", RedisOptions::classic()).await?;
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
//! | `prometheus` | no | the engine's metrics plus wire bytes and dropped messages by reason |
//! | `__test-support` | no | `RedisTransport::crash_for_tests`; outside semver |
//!
//! # MSRV
//!
//! Rust 1.94 (that of socketioxide 0.18).

mod classic;
mod error;
mod options;
mod transport;

pub use error::RedisError;
pub use options::{Mode, RedisOptions};
#[cfg(feature = "prometheus")]
pub use switchboard_adapter_core::Metrics;
pub use switchboard_adapter_core::{
    AdapterOptions, ClusterState, Error, ServerEvent, ServerSide, ServerSideNamespace,
};
pub use transport::{RedisLink, RedisTransport};

/// The socketioxide adapter over redis: `SocketIo::builder().with_adapter::<RedisAdapter<_>>(state)`.
pub type RedisAdapter<E> = switchboard_adapter_core::ClusterAdapter<E, RedisTransport>;
