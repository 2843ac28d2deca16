//! The transport author's kit for Switchboard: what it takes to prove a transport behaves like
//! Node's adapters, against real services and real Socket.IO clients over TCP.
//!
//! - [`TestClient`]: a Socket.IO v5 client over a real WebSocket (events, acks, binary).
//! - [`start`] / [`TestServer`]: a socketioxide server with the suite's app on a port of its own.
//! - [`control`] / [`Server`]: the same app driven in another process over stdin/stdout.
//! - [`conformance_suite!`]: every user-visible operation across several servers, compiled once
//!   per transport from a [`Backend`] (servers in this process) or [`Servers`] (processes).
//! - [`MemoryPeer`]: a raw node on the in-memory bus, to play a Node server or an emitter.
//! - [`services`]: `redis-server`, a Redis Cluster, SecantusDB, Node peers, nginx and HAProxy, on free ports.
//! - [`interop`]: a Node server beside a Rust one, every operation in both directions.
//! - [`faults`]: fault scenarios shared by the transports (a broker restarted mid-run).
//! - [`resources`]: CPU, memory and descriptors of the process; a listener at the fd limit.
//! - [`eventually`]: wait for a condition with a deadline, never a fixed sleep.
//!
//! Not published (`publish = false`): a dev-dependency of the workspace's crates only, outside
//! semver.
//!
//! # Example
//!
//! ```no_run
//! use switchboard_adapter_core::memory::{MemoryHub, MemoryTransport};
//! use switchboard_testkit::{Backend, conformance_suite};
//!
//! /// Every server of a test on one in-memory bus.
//! struct Memory(MemoryHub);
//!
//! impl Backend for Memory {
//!     type Transport = MemoryTransport;
//!     async fn cluster() -> Self {
//!         Memory(MemoryHub::new())
//!     }
//!     async fn transport(&self) -> MemoryTransport {
//!         self.0.transport()
//!     }
//!     fn crash(transport: &MemoryTransport) {
//!         transport.crash();
//!     }
//! }
//!
//! // in a test file: one #[tokio::test] per operation of the suite, node crashes included
//! conformance_suite!(Memory, crash);
//! # fn main() {}
//! ```
//!
//! # Features
//!
//! None.
//!
//! # MSRV
//!
//! Rust 1.94.

pub mod client;
pub mod control;
pub mod faults;
pub mod handle;
pub mod interop;
mod memory_peer;
mod paths;
pub mod resources;
pub mod server;
pub mod services;
pub mod suite;
mod wait;

pub use client::{Event, TestClient};
pub use handle::Server;
pub use memory_peer::MemoryPeer;
pub use paths::{example, socket_path};
pub use server::{TestAdapter, TestServer, converge, start};
pub use suite::{Backend, Servers, WAIT, test_options};
pub use wait::{check, eventually, eventually_blocking};
