//! The discovery service of the Switchboard mesh, speaking the protocol of
//! `socket.io-mesh-adapter` 2.0 (protocol.md §8.2): servers register `{serverId, address}` over a
//! WebSocket and every server receives the whole roster after each change. Usable as a library
//! (tests, embedding) and as the `mesh-discovery` binary.
//!
//! # Example
//!
//! ```no_run
//! use switchboard_mesh_discovery::{Discovery, DiscoveryOptions};
//!
//! # async fn run() -> std::io::Result<()> {
//! let discovery = Discovery::new(DiscoveryOptions::default(), None);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! discovery.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! # Features
//!
//! None.
//!
//! # MSRV
//!
//! Rust 1.94.

mod admission;
mod metrics;
mod server;

pub use metrics::DiscoveryMetrics;
pub use server::{
    CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_UNAUTHORIZED, Discovery, DiscoveryOptions,
    RunningDiscovery,
};
