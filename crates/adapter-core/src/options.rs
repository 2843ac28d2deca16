//! Engine options, with the Node option names and defaults.

use std::time::Duration;

use switchboard_wire::Limits;

/// Options of the cluster engine, shared by every transport.
///
/// Defaults are Node's: `requestsTimeout` 5000 ms, `heartbeatInterval` 5000 ms,
/// `heartbeatTimeout` 10000 ms.
#[derive(Clone, Debug)]
pub struct AdapterOptions {
    pub(crate) requests_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) inbox_capacity: usize,
    pub(crate) max_pending_requests: usize,
    pub(crate) max_aliases: usize,
    pub(crate) max_handshake_bytes: usize,
    pub(crate) max_data_bytes: usize,
    pub(crate) metrics: Option<crate::Metrics>,
}

impl Default for AdapterOptions {
    fn default() -> Self {
        AdapterOptions {
            requests_timeout: Duration::from_millis(5000),
            heartbeat_interval: Duration::from_millis(5000),
            heartbeat_timeout: Duration::from_millis(10_000),
            limits: Limits::DEFAULT,
            inbox_capacity: 65_536,
            max_pending_requests: 65_536,
            max_aliases: 100_000,
            max_handshake_bytes: 8 * 1024,
            max_data_bytes: 64 * 1024,
            metrics: None,
        }
    }
}

impl AdapterOptions {
    /// With [`ServerSide::record_handshakes`](crate::ServerSide::record_handshakes): the bytes of
    /// request headers recorded per socket (those past it are left out), and the largest auth
    /// payload recorded (a larger one is recorded as `{}`). Default 8 KiB.
    pub fn max_handshake_bytes(mut self, bytes: usize) -> Self {
        self.max_handshake_bytes = bytes;
        self
    }

    /// The largest `data` [`ServerSide::set_data`](crate::ServerSide::set_data) takes, msgpack
    /// encoded (default 64 KiB): a larger one is refused with [`Error::TooLarge`](crate::Error).
    pub fn max_data_bytes(mut self, bytes: usize) -> Self {
        self.max_data_bytes = bytes;
        self
    }

    /// Node's `requestsTimeout`: how long fetchSockets, allRooms and serverSideEmit wait for
    /// answers (default 5 s).
    pub fn requests_timeout(mut self, timeout: Duration) -> Self {
        self.requests_timeout = timeout;
        self
    }

    /// Node's `heartbeatInterval`: a HEARTBEAT is sent after this long without publishing
    /// (default 5 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Node's `heartbeatTimeout`: a node not heard from for this long is dead (default 10 s).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Size and depth limits for decoding what other nodes send.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Messages queued per namespace before further ones are dropped and counted (default 65 536).
    pub fn inbox_capacity(mut self, capacity: usize) -> Self {
        self.inbox_capacity = capacity.max(1);
        self
    }

    /// Requests awaiting answers per namespace before new ones fail (default 65 536).
    pub fn max_pending_requests(mut self, max: usize) -> Self {
        self.max_pending_requests = max.max(1);
        self
    }

    /// Records Prometheus metrics (feature `prometheus`).
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, metrics: crate::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}
