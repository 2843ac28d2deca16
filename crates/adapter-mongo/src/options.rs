//! Transport options, with the names and defaults of @socket.io/mongo-adapter.

use std::time::Duration;

/// Options of the mongo transport. Heartbeats and the request timeout are the engine's
/// (`AdapterOptions`: `heartbeat_interval`, `heartbeat_timeout`, `requests_timeout`).
#[derive(Clone, Debug)]
pub struct MongoOptions {
    pub(crate) uid: Option<String>,
    pub(crate) add_created_at_field: bool,
    pub(crate) batch_size: Option<u32>,
    pub(crate) max_await_time: Option<Duration>,
    pub(crate) queue_capacity: usize,
    #[cfg(feature = "prometheus")]
    pub(crate) metrics: Option<crate::MongoMetrics>,
}

impl Default for MongoOptions {
    fn default() -> Self {
        MongoOptions {
            uid: None,
            add_created_at_field: false,
            batch_size: None,
            max_await_time: None,
            queue_capacity: 65_536,
            #[cfg(feature = "prometheus")]
            metrics: None,
        }
    }
}

impl MongoOptions {
    /// Node's `uid`: this server's id in every namespace (default: 16 random hex characters).
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// Node's `addCreatedAtField`: a `createdAt` date on every document, for a TTL index (default
    /// false: a capped collection).
    pub fn add_created_at_field(mut self, yes: bool) -> Self {
        self.add_created_at_field = yes;
        self
    }

    /// The change stream's batch size (Node's `changeStreamOptions.batchSize`).
    pub fn batch_size(mut self, size: u32) -> Self {
        self.batch_size = Some(size);
        self
    }

    /// How long the server waits for new documents before answering an empty batch (Node's
    /// `changeStreamOptions.maxAwaitTimeMS`).
    pub fn max_await_time(mut self, time: Duration) -> Self {
        self.max_await_time = Some(time);
        self
    }

    /// Documents waiting to be inserted before further messages are dropped (default 65,536).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Records the transport's metrics (feature `prometheus`).
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, metrics: crate::MongoMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}
