//! Prometheus metrics of the relay (feature `prometheus`). The workers' metrics are the engine's
//! (`switchboard_adapter_core::Metrics::new(registry, "cluster")` in `AdapterOptions::metrics`).

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use crate::relay::Event;

/// The relay's metrics; pass them to [`RelayOptions::metrics`](crate::RelayOptions::metrics).
///
/// | metric | labels |
/// |---|---|
/// | `socketio_cluster_relay_workers` | workers connected now |
/// | `socketio_cluster_relay_frames_total` | `event`: `relayed` (a frame queued for a worker), `cut_off` (a worker that did not read, disconnected), `malformed` (a bad frame, its connection closed), `unroutable` (a response whose requester is gone), `refused` (a connection that was not a worker) |
#[derive(Clone, Debug)]
pub struct RelayMetrics {
    pub(crate) workers: IntGauge,
    events: IntCounterVec,
}

impl RelayMetrics {
    /// Registers the relay's metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = RelayMetrics {
            workers: IntGauge::new(
                "socketio_cluster_relay_workers",
                "Workers connected to the relay",
            )?,
            events: IntCounterVec::new(
                Opts::new(
                    "socketio_cluster_relay_frames_total",
                    "Frames and connections handled by the relay, by event",
                ),
                &["event"],
            )?,
        };
        registry.register(Box::new(m.workers.clone()))?;
        registry.register(Box::new(m.events.clone()))?;
        Ok(m)
    }

    pub(crate) fn record(&self, event: Event) {
        let name = match event {
            Event::Relayed => "relayed",
            Event::CutOff => "cut_off",
            Event::Malformed => "malformed",
            Event::Unroutable => "unroutable",
            Event::Refused => "refused",
        };
        self.events.with_label_values(&[name]).inc();
    }
}
