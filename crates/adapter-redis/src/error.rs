//! Errors of setting up a redis transport.

/// Why a [`RedisTransport`](crate::RedisTransport) could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The redis client failed (bad URL, unreachable server).
    #[error("the redis client failed")]
    Redis(#[from] fred::error::Error),
    /// The publishing or subscribing connection (a single redis: the transport's own, see
    /// [`RedisTransport::connect`](crate::RedisTransport::connect)) could not be opened.
    #[error("a redis connection of the transport failed: {0}")]
    Direct(String),
}
