//! The Switchboard cluster engine: socketioxide's `CoreAdapter` implemented once for every
//! transport, with the semantics of Node's `ClusterAdapterWithHeartbeat`.
//!
//! A transport (redis, mongo, mesh, cluster, or the [in-memory](memory) one here) only moves
//! [`ClusterMessage`](switchboard_wire::ClusterMessage)s between nodes. Everything a user sees
//! lives here: broadcasts (publish enqueued, then the local delivery, always), broadcasts with
//! acks, fetchSockets, allRooms, socketsJoin/Leave, disconnectSockets, serverSideEmit with and
//! without acks ([`ServerSide`]), server count and node liveness, request timeouts, and the
//! mapping of Node's 20-character socket ids to socketioxide's 16-character ones.
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{SocketIo, extract::SocketRef, handler::ConnectHandler};
//! use switchboard_adapter_core::{ClusterAdapter, ClusterState, AdapterOptions, memory::{MemoryHub, MemoryTransport}};
//!
//! type Adapter = ClusterAdapter<socketioxide::adapter::Emitter, MemoryTransport>;
//!
//! /// Joins and handlers go in a connect *middleware*: it runs before the client sees itself
//! /// connected, while socketioxide runs an `async` connect handler only after (a broadcast or a
//! /// first event in between would be missed).
//! async fn setup(socket: SocketRef<Adapter>) -> Result<(), std::convert::Infallible> {
//!     socket.join("room1");
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = MemoryHub::new();
//! let state = ClusterState::new(hub.transport(), AdapterOptions::default());
//! let server_side = state.server_side();
//! let (layer, io) = SocketIo::builder().with_adapter::<Adapter>(state).build_layer();
//! io.ns("/", (async |_: SocketRef<Adapter>| {}).with(setup)).await?;
//! // to every client of every server in room1
//! io.to("room1").emit("news", &"hello").await?;
//! // to the other servers themselves
//! server_side.of("/").emit("refresh", &("now", 1))?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `prometheus` | no | [`Metrics`]: messages sent/received by type, bytes, request durations, nodes alive, drops (`socketio_<transport>_*`) |
//!
//! # MSRV
//!
//! Rust 1.94 (that of socketioxide 0.18).

mod bridge;
mod engine;
mod error;
mod ids;
pub mod memory;
#[cfg(feature = "prometheus")]
mod metrics;
#[cfg(not(feature = "prometheus"))]
mod metrics_off;
mod options;
mod sockets;
mod state;
mod transport;

pub use engine::{AckStream, ClusterAdapter, InitRes};
pub use error::{Error, Partial, report};
#[cfg(feature = "prometheus")]
pub use metrics::Metrics;
#[cfg(not(feature = "prometheus"))]
pub(crate) use metrics_off::Metrics;
pub use options::AdapterOptions;
pub use sockets::{ClusterSocket, RecordHandshake};
pub use state::{ClusterState, ServerEvent, ServerSide, ServerSideNamespace, from_value};
pub use transport::{
    Attach, Inbox, Link, Liveness, Transport, TransportError, TransportErrorKind, UidScope,
};
