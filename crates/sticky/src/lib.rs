//! One listening port, many socketioxide worker processes, and every Engine.IO request routed
//! to the worker that owns its session: the Rust counterpart of `@socket.io/sticky`.
//!
//! The same binary runs twice over. Started by hand it is the [`Primary`]: it owns the port,
//! starts N workers of itself (and restarts those that exit), reads each connection's first
//! request head without consuming it, and passes the TCP connection itself (its file
//! descriptor) to the worker that owns the `sid` in the query string, or to a worker picked by
//! the [`Balancing`] method for a new session. Started by the primary it is a [`Worker`]
//! ([`role`] tells which): it serves the connections it is handed with its normal axum +
//! socketioxide app, WebSocket and long-polling alike, with no copy through the primary.
//!
//! A keep-alive connection never carries requests of another worker's session (the fault of
//! `@socket.io/sticky` 1.x): workers close every connection after its response (WebSocket
//! upgrades excepted), so each request passes the primary. Request bodies never cross the
//! primary at all (2.0 relays them over IPC).
//! HTTP/2 (prior knowledge) is refused with `505`, malformed heads get `400`, slow ones `408`,
//! huge ones `431`, unknown sessions Engine.IO's `400 {"code":1,"message":"Session ID unknown"}`,
//! and `503` while no worker is alive. No adapter is needed for the routing; workers that must
//! share broadcasts use one (the `switchboard-adapter-cluster` relay fits one host).
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{SocketIo, extract::SocketRef};
//! use switchboard_sticky::{Primary, Role, StickyOptions, Worker};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! match switchboard_sticky::role() {
//!     Role::Primary => {
//!         let primary = Primary::bind("0.0.0.0:3000", StickyOptions::default().workers(4)).await?;
//!         primary.run().await?; // until SIGTERM or Ctrl-C
//!     }
//!     Role::Worker { .. } => {
//!         let (worker, listener) = Worker::connect().await?;
//!         let (layer, io) = SocketIo::new_layer();
//!         io.ns("/", async |_: SocketRef| {});
//!         worker.watch(io.clone());
//!         let app = worker.router(axum::Router::new().layer(layer));
//!         axum::serve(listener, app)
//!             .with_graceful_shutdown(async move { worker.closed().await })
//!             .await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `prometheus` | no | `StickyMetrics`: sessions per worker, connections by outcome, worker restarts |
//!
//! # MSRV
//!
//! Rust 1.94.

mod control;
mod head;
#[cfg(feature = "prometheus")]
mod metrics;
mod options;
mod primary;
mod worker;

#[cfg(feature = "prometheus")]
pub use metrics::StickyMetrics;
pub use options::{Balancing, StickyOptions};
pub use primary::{Primary, PrimaryHandle};
pub use worker::{Role, StickyListener, Worker, role};

/// What can go wrong starting a primary or a worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StickyError {
    /// This process was not started by a sticky primary (the variable is missing or invalid).
    #[error("not a sticky worker: {0} is not set or invalid")]
    NotAWorker(&'static str),
    /// The listening port could not be bound.
    #[error("cannot listen: {0}")]
    Bind(#[source] std::io::Error),
    /// The control socket (between the primary and its workers) failed.
    #[error("control socket {}: {source}", path.display())]
    Control {
        /// The socket or its directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The worker program could not be found.
    #[error("cannot start workers: {0}")]
    Spawn(#[source] std::io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signal(#[source] std::io::Error),
    /// Talking to the primary failed.
    #[error("sticky: {0}")]
    Io(#[source] std::io::Error),
}
