//! Prometheus metrics of the forwarding layer.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// `switchboard_forward_requests_total{kind, outcome}` and `switchboard_forward_pipes`.
///
/// `kind`: `handshake`, `polling`, `websocket`. `outcome`: `sealed` (a handshake got a
/// forwardable sid), `local` (this server owns the session), `forwarded` (the owner answered),
/// `owner_unreachable`, `timeout`, `too_large`, `unverified` (a sid this cluster did not seal:
/// passed to socketioxide, which answers 400).
#[derive(Clone, Debug)]
pub struct ForwardMetrics {
    pub(crate) requests: IntCounterVec,
    pub(crate) pipes: IntGauge,
}

impl ForwardMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "switchboard_forward_requests_total",
                "Engine.IO requests seen by the forwarding layer, by kind and outcome",
            ),
            &["kind", "outcome"],
        )?;
        let pipes = IntGauge::new(
            "switchboard_forward_pipes",
            "WebSocket connections piped to the server that owns their session",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(pipes.clone()))?;
        Ok(ForwardMetrics { requests, pipes })
    }
}
