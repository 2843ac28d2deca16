//! Test plumbing shared by the transport crates: a Socket.IO client over real TCP, a server
//! harness, the conformance suite every transport runs, and the control protocol that lets the
//! suite drive servers in other processes. Outside semver.

pub mod client;
pub mod control;
pub mod handle;
pub mod server;
pub mod suite;

pub use client::{Event, TestClient};
pub use handle::Server;
pub use server::{TestAdapter, TestServer, start};
pub use suite::{Backend, Servers, test_config};
