//! No sticky sessions needed: any socketioxide server takes any request of any Engine.IO
//! session. Put several servers behind a plain round-robin load balancer (a Kubernetes Service
//! without affinity, a cloud target group, DNS round robin) and HTTP long-polling just works.
//!
//! [`ForwardLayer`] is a tower layer in front of socketioxide's service. A server seals the sid
//! of each polling handshake it answers: the client gets socketioxide's sid followed by this
//! server's advertised address and a MAC over both, keyed with the cluster's shared secret.
//! Any server reads a session's owner from the sid itself, with no directory to keep, no
//! announcement to race and no memory per session:
//!
//! - a request of this server's own session reaches socketioxide under its own sid;
//! - a polling GET or POST of another server's session is forwarded to the owner over a
//!   pooled keep-alive HTTP/1.1 connection, and the owner's answer is the client's;
//! - a WebSocket upgrade of another server's session is sent to the owner on a connection of
//!   its own, and once the owner switches protocols the bytes are piped both ways;
//! - a sid this cluster did not seal (forged, truncated, another cluster's) goes to
//!   socketioxide unchanged, which answers `400 Session ID unknown` as it always did: no lookup
//!   at all, and no client can make a server connect to an address of its choosing.
//!
//! A forwarded request carries `x-switchboard-forwarded`; its receiver never forwards it again:
//! one request in, at most one request out. An owner that cannot be reached (it died, its
//! sessions with it) is answered at once with Engine.IO's `400 Session ID unknown`, so clients
//! reconnect elsewhere instead of waiting for a ping timeout.
//!
//! The layer needs no adapter: broadcasts between the servers still need one (redis, mesh,
//! mongo, cluster), but the session traffic goes straight from server to server over HTTP.
//!
//! # Example
//!
//! ```no_run
//! use socketioxide::{SocketIo, extract::SocketRef};
//! use switchboard_forward::{ForwardLayer, ForwardOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (layer, io) = SocketIo::new_layer();
//! io.ns("/", async |_: SocketRef| {});
//! // where the other servers reach this one, and the secret every server shares
//! let forward = ForwardLayer::new(ForwardOptions::new(
//!     "10.0.0.7:3000".parse()?,
//!     std::env::var("FORWARD_SECRET")?,
//! ))?;
//! let app = axum::Router::new().layer(layer).layer(forward);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `prometheus` | no | `ForwardMetrics`: requests by kind and outcome, open WebSocket pipes |
//!
//! # MSRV
//!
//! Rust 1.94.

#[cfg(feature = "prometheus")]
mod metrics;
mod options;
mod service;
mod sid;
mod upstream;

#[cfg(feature = "prometheus")]
pub use metrics::ForwardMetrics;
pub use options::ForwardOptions;
pub use service::{Forward, ForwardLayer, ForwardStats};

/// Why a [`ForwardLayer`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The shared secret is shorter than 16 bytes.
    #[error("the forwarding secret has {0} bytes: it needs at least 16 (32 random bytes are best)")]
    WeakSecret(usize),
    /// The advertised address cannot be reached by other servers.
    #[error(
        "cannot advertise {0}: other servers need this server's own address and port (not 0.0.0.0, :: or port 0)"
    )]
    Advertise(std::net::SocketAddr),
}
