//! A MongoDB transport for socketioxide, wire-compatible with `@socket.io/mongo-adapter` 0.4: Rust
//! and Node servers share one collection, and `@socket.io/mongo-emitter` reaches both.
//!
//! Every message is a document inserted into the collection; each server watches it with one
//! change stream (all namespaces share it) filtered to the other servers' inserts. Liveness is by
//! heartbeats, as in Node. The collection is capped ([`create_capped_collection`]) or has a TTL
//! index ([`create_ttl_index`], with [`MongoOptions::add_created_at_field`]).
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{SocketIo, adapter::Emitter, extract::SocketRef};
//! use switchboard_adapter_mongo::{
//!     AdapterOptions, ClusterState, MongoAdapter, MongoOptions, MongoTransport,
//!     create_capped_collection,
//! };
//!
//! type Adapter = MongoAdapter<Emitter>;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = mongodb::Client::with_uri_str("mongodb://127.0.0.1:27017/?replicaSet=rs0").await?;
//! let collection = create_capped_collection(&client.database("app"), "socket.io-adapter-events", 1_000_000).await?;
//! let transport = MongoTransport::new(collection, MongoOptions::default());
//! let state = ClusterState::new(transport, AdapterOptions::default());
//! let (layer, io) = SocketIo::builder().with_adapter::<Adapter>(state).build_layer();
//! io.ns("/", async |_: SocketRef<Adapter>| {}).await?;
//! io.emit("hello", &"world").await?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `prometheus` | no | the engine's metrics plus inserts, insert errors, stream restarts, resumes and possible-loss events (`MongoMetrics`) |
//! | `__test-support` | no | `MongoTransport::crash_for_tests`; outside semver |
//!
//! # MSRV
//!
//! Rust 1.94.

#[cfg(feature = "prometheus")]
mod metrics;
mod options;
mod setup;
mod transport;

#[cfg(feature = "prometheus")]
pub use metrics::MongoMetrics;
pub use options::MongoOptions;
pub use setup::{create_capped_collection, create_ttl_index};
pub use switchboard_adapter_core::{
    AdapterOptions, ClusterState, Error, ServerEvent, ServerSide, ServerSideNamespace,
};
pub use transport::{MAX_DOCUMENT_SIZE, MongoLink, MongoTransport};

/// The socketioxide adapter over MongoDB:
/// `SocketIo::builder().with_adapter::<MongoAdapter<_>>(state)`.
pub type MongoAdapter<E> = switchboard_adapter_core::ClusterAdapter<E, MongoTransport>;
