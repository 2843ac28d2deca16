//! Prometheus metrics of the mongo transport (feature `prometheus`): what happens between this
//! process and MongoDB. Messages by type, request durations and dropped messages are the engine's
//! (`switchboard_adapter_core::Metrics::new(registry, "mongo")` in `AdapterOptions::metrics`).

use prometheus::{IntCounter, Registry};

/// The transport's metrics; pass them to [`MongoOptions::metrics`](crate::MongoOptions::metrics).
///
/// | metric | counts |
/// |---|---|
/// | `socketio_mongo_inserts_total` | documents inserted |
/// | `socketio_mongo_insert_errors_total` | documents whose insert failed (dropped, logged) |
/// | `socketio_mongo_stream_restarts_total` | change streams reopened after they ended or failed |
/// | `socketio_mongo_stream_resumes_total` | of those, reopened after the last event seen (`resumeAfter`): nothing lost |
/// | `socketio_mongo_possible_loss_total` | history lost: reopened from "now", what was inserted meanwhile is not delivered |
///
/// The driver also resumes on its own once after a resumable error without ending the stream;
/// such resumes lose nothing and are not counted here.
#[derive(Clone, Debug)]
pub struct MongoMetrics {
    pub(crate) inserts: IntCounter,
    pub(crate) insert_errors: IntCounter,
    pub(crate) restarts: IntCounter,
    pub(crate) resumes: IntCounter,
    pub(crate) possible_loss: IntCounter,
}

impl MongoMetrics {
    /// Registers the `socketio_mongo_*` transport metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = MongoMetrics {
            inserts: IntCounter::new("socketio_mongo_inserts_total", "Documents inserted")?,
            insert_errors: IntCounter::new(
                "socketio_mongo_insert_errors_total",
                "Documents whose insert failed (dropped)",
            )?,
            restarts: IntCounter::new(
                "socketio_mongo_stream_restarts_total",
                "Change streams reopened after they ended or failed",
            )?,
            resumes: IntCounter::new(
                "socketio_mongo_stream_resumes_total",
                "Change streams reopened after the last event seen (nothing lost)",
            )?,
            possible_loss: IntCounter::new(
                "socketio_mongo_possible_loss_total",
                "Change streams restarted from now because the history was lost (messages may be lost)",
            )?,
        };
        registry.register(Box::new(m.inserts.clone()))?;
        registry.register(Box::new(m.insert_errors.clone()))?;
        registry.register(Box::new(m.restarts.clone()))?;
        registry.register(Box::new(m.resumes.clone()))?;
        registry.register(Box::new(m.possible_loss.clone()))?;
        Ok(m)
    }
}
