//! Errors of setting up a redis transport.

/// Why a [`RedisTransport`](crate::RedisTransport) could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The redis client failed (bad URL, unreachable server).
    #[error("the redis client failed")]
    Redis(#[from] fred::error::Error),
}
