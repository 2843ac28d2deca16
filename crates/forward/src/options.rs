//! What a user configures.

use std::{net::SocketAddr, time::Duration};

/// How a server forwards: see the [crate docs](crate).
#[derive(Clone)]
pub struct ForwardOptions {
    pub(crate) advertise: SocketAddr,
    pub(crate) secret: Vec<u8>,
    pub(crate) path: String,
    pub(crate) max_payload: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_idle_per_owner: usize,
    #[cfg(feature = "prometheus")]
    pub(crate) metrics: Option<crate::ForwardMetrics>,
}

impl std::fmt::Debug for ForwardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardOptions")
            .field("advertise", &self.advertise)
            .field("secret", &"…")
            .field("path", &self.path)
            .field("max_payload", &self.max_payload)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_idle_per_owner", &self.max_idle_per_owner)
            .finish()
    }
}

impl ForwardOptions {
    /// `advertise`: where the other servers reach this one's HTTP port (the pod's IP and port,
    /// never `0.0.0.0`); `secret`: shared by every server of the cluster, at least 16 bytes
    /// (32 random bytes are best). Sessions carry `advertise` in their id, authenticated with
    /// `secret`.
    pub fn new(advertise: SocketAddr, secret: impl Into<Vec<u8>>) -> Self {
        ForwardOptions {
            advertise,
            secret: secret.into(),
            path: "/socket.io".into(),
            max_payload: 100_000,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
            max_idle_per_owner: 256,
            #[cfg(feature = "prometheus")]
            metrics: None,
        }
    }

    /// The Engine.IO path, as given to socketioxide's `req_path` (default `/socket.io`).
    /// Requests elsewhere pass untouched.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The largest polling body forwarded, in bytes: the same value as socketioxide's
    /// `max_payload` (Node's `maxHttpBufferSize`); default 100,000, socketioxide's default.
    /// A larger body gets `413`, as the owner would answer, without reaching it.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// How long to try to reach an owner (default 2 s). An owner that cannot be reached has
    /// lost its sessions: the client gets Engine.IO's `400 Session ID unknown` and reconnects.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a forwarded request may wait for the owner's answer (default 60 s: longer than
    /// a long-polling GET is held, which is at most `ping_interval`). Past it, `504`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Idle keep-alive connections kept to each owner (default 256).
    pub fn max_idle_per_owner(mut self, n: usize) -> Self {
        self.max_idle_per_owner = n;
        self
    }

    /// Counts requests and pipes in Prometheus metrics.
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, metrics: crate::ForwardMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}
