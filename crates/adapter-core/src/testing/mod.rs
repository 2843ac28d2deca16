//! Test plumbing shared by the transport crates: a Socket.IO client over real TCP, a server
//! harness, and the conformance suite every transport runs. Outside semver.

pub mod client;
pub mod server;
pub mod suite;

pub use client::{Event, TestClient};
pub use server::{TestAdapter, TestServer, start};
pub use suite::Backend;
