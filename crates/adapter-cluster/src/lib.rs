//! Many socketioxide processes on one host, relayed by a primary: the Rust counterpart of
//! `@socket.io/cluster-adapter`, with no broker to install.
//!
//! A [`Relay`] runs in the primary (or any supervising process) on a Unix socket; every worker
//! process connects to it with [`ClusterTransport::connect`] and gets broadcasts, requests and
//! acks across processes exactly as on redis or the mesh. Messages travel as length-prefixed
//! msgpack frames of the cluster protocol (binary stays binary); responses go to the requester
//! only. When a worker's connection closes, the relay tells the others at once, so their pending
//! requests complete with what arrived instead of waiting for the timeout. Workers started any
//! way (the `sticky` crate, systemd, a shell loop) work the same.
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{SocketIo, adapter::Emitter, extract::SocketRef};
//! use switchboard_adapter_cluster::{
//!     AdapterOptions, ClusterAdapter, ClusterOptions, ClusterState, ClusterTransport, Relay,
//!     RelayOptions,
//! };
//!
//! type Adapter = ClusterAdapter<Emitter>;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // in the primary
//! let relay = Relay::bind("/run/app/cluster.sock", RelayOptions::default()).await?;
//! // in each worker
//! let transport = ClusterTransport::connect("/run/app/cluster.sock", ClusterOptions::default()).await?;
//! let state = ClusterState::new(transport, AdapterOptions::default());
//! let (layer, io) = SocketIo::builder().with_adapter::<Adapter>(state).build_layer();
//! io.ns("/", async |_: SocketRef<Adapter>| {}).await?;
//! io.emit("hello", &"world").await?;
//! # let _ = (layer, relay);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `prometheus` | no | the engine's metrics in workers, and the relay's (`RelayMetrics`) |
//! | `__test-support` | no | `ClusterTransport::crash_for_tests`; outside semver |
//!
//! # MSRV
//!
//! Rust 1.94.

mod frame;
#[cfg(feature = "prometheus")]
mod metrics;
mod relay;
mod worker;

pub use frame::FrameError;
#[cfg(feature = "prometheus")]
pub use metrics::RelayMetrics;
pub use relay::{Relay, RelayError, RelayOptions};
pub use switchboard_adapter_core::{
    AdapterOptions, ClusterState, Error, ServerEvent, ServerSide, ServerSideNamespace,
};
pub use worker::{ClusterLink, ClusterOptions, ClusterTransport};

/// The largest frame by default, both ways: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// The socketioxide adapter over the relay:
/// `SocketIo::builder().with_adapter::<ClusterAdapter<_>>(state)`.
pub type ClusterAdapter<E> = switchboard_adapter_core::ClusterAdapter<E, ClusterTransport>;
