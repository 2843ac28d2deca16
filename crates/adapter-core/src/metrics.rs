//! Prometheus metrics common to every transport (feature `prometheus`), named like the mesh
//! adapter's `socketio_mesh_*` family with the transport as prefix: `socketio_<transport>_...`.
//! Absent, and costless, when not configured.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, exponential_buckets,
};
use switchboard_wire::MessageType;

/// The metrics of one server, registered in a Prometheus registry.
///
/// | metric | labels |
/// |---|---|
/// | `socketio_<t>_messages_sent_total` | `type` (`broadcast`, `heartbeat`, …) |
/// | `socketio_<t>_messages_received_total` | `type` |
/// | `socketio_<t>_message_bytes` (histogram, 64 B … 1 MiB) | `direction` (`sent`, `received`), recorded by transports |
/// | `socketio_<t>_request_duration_seconds` (histogram) | `kind` (`fetchSockets`, `broadcastWithAck`, `serverSideEmit`, `allRooms`) |
/// | `socketio_<t>_nodes_alive` | `nsp`: other nodes known alive |
/// | `socketio_<t>_io_clients` | `nsp`: local clients, sampled every 5 s at most |
/// | `socketio_<t>_dropped_total` | `reason` (`inbox_full`, `malformed`, …) |
#[derive(Clone, Debug)]
pub struct Metrics {
    sent: IntCounterVec,
    received: IntCounterVec,
    bytes: HistogramVec,
    requests: HistogramVec,
    nodes: IntGaugeVec,
    clients: IntGaugeVec,
    dropped: IntCounterVec,
}

impl Metrics {
    /// Registers the metrics of a transport named `transport` (`redis`, `mesh`, `memory`…) in
    /// `registry`.
    pub fn new(registry: &Registry, transport: &str) -> Result<Self, prometheus::Error> {
        let name = |m: &str| format!("socketio_{transport}_{m}");
        let sent = IntCounterVec::new(
            Opts::new(
                name("messages_sent_total"),
                "Cluster messages sent, by type",
            ),
            &["type"],
        )?;
        let received = IntCounterVec::new(
            Opts::new(
                name("messages_received_total"),
                "Cluster messages received, by type",
            ),
            &["type"],
        )?;
        let bytes = HistogramVec::new(
            HistogramOpts::new(
                name("message_bytes"),
                "Size of cluster messages on the wire",
            )
            .buckets(exponential_buckets(64.0, 4.0, 8)?),
            &["direction"],
        )?;
        let requests = HistogramVec::new(
            HistogramOpts::new(
                name("request_duration_seconds"),
                "Time cluster requests took, by kind",
            )
            .buckets(exponential_buckets(0.0005, 4.0, 10)?),
            &["kind"],
        )?;
        let nodes = IntGaugeVec::new(
            Opts::new(name("nodes_alive"), "Other nodes known alive, by namespace"),
            &["nsp"],
        )?;
        let clients = IntGaugeVec::new(
            Opts::new(name("io_clients"), "Local clients, by namespace (sampled)"),
            &["nsp"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                name("dropped_total"),
                "Messages counted and dropped, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(sent.clone()))?;
        registry.register(Box::new(received.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(nodes.clone()))?;
        registry.register(Box::new(clients.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        Ok(Metrics {
            sent,
            received,
            bytes,
            requests,
            nodes,
            clients,
            dropped,
        })
    }

    pub(crate) fn sent(&self, t: MessageType) {
        self.sent.with_label_values(&[t.name()]).inc();
    }

    pub(crate) fn received(&self, t: MessageType) {
        self.received.with_label_values(&[t.name()]).inc();
    }

    pub(crate) fn request(&self, kind: &str, seconds: f64) {
        self.requests.with_label_values(&[kind]).observe(seconds);
    }

    pub(crate) fn nodes(&self, nsp: &str, alive: usize) {
        self.nodes
            .with_label_values(&[nsp])
            .set(i64::try_from(alive).unwrap_or(i64::MAX));
    }

    pub(crate) fn clients(&self, nsp: &str, count: usize) {
        self.clients
            .with_label_values(&[nsp])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// For transports: the size of a frame sent (once per publish) or received.
    pub fn bytes(&self, sent: bool, len: usize) {
        self.bytes
            .with_label_values(&[if sent { "sent" } else { "received" }])
            .observe(len as f64);
    }

    /// For transports and the engine: a message counted and dropped for `reason`.
    pub fn dropped(&self, reason: &str) {
        self.dropped.with_label_values(&[reason]).inc();
    }
}
