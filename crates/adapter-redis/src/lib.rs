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
//! use socketioxide::{SocketIo, extract::SocketRef};
//! use switchboard_adapter_redis::{RedisAdapter, RedisOptions, RedisTransport, ClusterState, AdapterOptions};
//!
//! type Adapter = RedisAdapter<socketioxide::adapter::Emitter>;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let transport = RedisTransport::connect("redis://127.0.0.1:6379", RedisOptions::classic()).await?;
//! let state = ClusterState::new(transport, AdapterOptions::default());
//! let (layer, io) = SocketIo::builder().with_adapter::<Adapter>(state).build_layer();
//! io.ns("/", async |socket: SocketRef<Adapter>| {
//!     socket.join("room1");
//! })
//! .await?;
//! // reaches room1 on every server, Rust or Node
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
