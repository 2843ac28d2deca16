//! Prometheus metrics of the primary (feature `prometheus`).

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The primary's metrics; pass them to [`StickyOptions::metrics`](crate::StickyOptions::metrics).
///
/// | metric | labels |
/// |---|---|
/// | `socketio_sticky_sessions` | `worker`: its index; sessions it owns now |
/// | `socketio_sticky_connections_total` | `outcome`: `new` (balanced to a worker), `session` (to the session's owner), `unknown_sid`, `no_worker` (503), `queue_full` (503), `bad_request`, `head_too_large`, `head_timeout`, `http2` |
/// | `socketio_sticky_worker_restarts_total` | workers that exited and were started again |
#[derive(Clone, Debug)]
pub struct StickyMetrics {
    pub(crate) sessions: IntGaugeVec,
    pub(crate) connections: IntCounterVec,
    pub(crate) restarts: IntCounter,
}

impl StickyMetrics {
    /// Registers the primary's metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = StickyMetrics {
            sessions: IntGaugeVec::new(
                Opts::new("socketio_sticky_sessions", "Sessions owned by each worker"),
                &["worker"],
            )?,
            connections: IntCounterVec::new(
                Opts::new(
                    "socketio_sticky_connections_total",
                    "Connections the primary routed or refused, by outcome",
                ),
                &["outcome"],
            )?,
            restarts: IntCounter::new(
                "socketio_sticky_worker_restarts_total",
                "Workers that exited and were started again",
            )?,
        };
        registry.register(Box::new(m.sessions.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.restarts.clone()))?;
        Ok(m)
    }
}
