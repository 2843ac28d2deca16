//! Errors of setting up a redis transport.

/// Why a [`RedisTransport`](crate::RedisTransport) could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The redis client failed (bad URL, unreachable server).
    #[error("the redis client failed")]
    Redis(#[from] fred::error::Error),
    /// The publishing connection (a single redis: the transport's own, see
    /// [`RedisTransport::connect`](crate::RedisTransport::connect)) could not be opened.
    #[error("the redis publishing connection failed: {0}")]
    Publisher(String),
}
