//! Real services started on free local ports for the tests, stopped when dropped: a
//! `redis-server`, a 3-master Redis Cluster, SecantusDB (MongoDB wire), a Node Socket.IO server
//! from `xtask/interop`, nginx and HAProxy with the configs of `docs/deploy/`, Prometheus.
//!
//! A service that cannot be handed a listening socket (redis-server, Node) is started on a port
//! that was free a moment ago; if another process took it in between, the fixture notices (the
//! service exits, or the process answering is not ours) and starts again on another port.

mod node;
mod prometheus;
mod proxy;
mod redis;
mod secantus;

pub use node::{NodeServer, interop_dir, node_report};
pub use prometheus::Prometheus;
pub use proxy::{Proxy, ProxyKind};
pub use redis::{RedisCluster, RedisServer};
pub use secantus::SecantusDb;

use std::{net::TcpListener, time::Duration};

/// How long a service may take to start.
pub(crate) const START: Duration = Duration::from_secs(20);

/// A port that was free when asked (a candidate: see the module docs).
pub(crate) fn candidate_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}
