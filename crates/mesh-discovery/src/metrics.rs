//! Prometheus metrics of the discovery service, named as Node's (protocol.md §8.6).

use prometheus::{IntCounter, IntGauge, Registry};

/// `socketio_mesh_discovery_*` metrics.
#[derive(Clone, Debug)]
pub struct DiscoveryMetrics {
    pub(crate) registered: IntGauge,
    pub(crate) registrations: IntCounter,
    pub(crate) disconnects: IntCounter,
    pub(crate) roster_broadcasts: IntCounter,
}

impl DiscoveryMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = DiscoveryMetrics {
            registered: IntGauge::new(
                "socketio_mesh_discovery_servers_registered",
                "Servers registered now",
            )?,
            registrations: IntCounter::new(
                "socketio_mesh_discovery_registrations_total",
                "Registrations received",
            )?,
            disconnects: IntCounter::new(
                "socketio_mesh_discovery_disconnects_total",
                "Registered servers that went away",
            )?,
            roster_broadcasts: IntCounter::new(
                "socketio_mesh_discovery_roster_broadcasts_total",
                "Rosters sent to every server",
            )?,
        };
        registry.register(Box::new(m.registered.clone()))?;
        registry.register(Box::new(m.registrations.clone()))?;
        registry.register(Box::new(m.disconnects.clone()))?;
        registry.register(Box::new(m.roster_broadcasts.clone()))?;
        Ok(m)
    }
}
