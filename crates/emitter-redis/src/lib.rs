//! Emit to a Socket.IO cluster from any process through redis, exactly like
//! `@socket.io/redis-emitter` 5: the same channels and the same bytes, so it reaches Node servers
//! (`@socket.io/redis-adapter` 8, classic `createAdapter`) and Switchboard servers in classic mode.
//!
//! # Example
//!
//! ```no_run
//! use fred::prelude::{Builder, ClientLike, Config};
//! use switchboard_emitter_redis::Emitter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?).build()?;
//! client.init().await?;
//! let emitter = Emitter::new(client);
//! emitter.to("room1").emit("news", &("hello", 1)).await?;
//! emitter.of("/admin").except("banned").volatile().emit("tick", &()).await?;
//! emitter.in_("room1").sockets_join(&["room2"]).await?;
//! emitter.server_side_emit("refresh", &"all").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! None.
//!
//! # MSRV
//!
//! Rust 1.94.

mod emitter;

pub use emitter::{Emitter, Publication};

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitterError {
    /// The event name is reserved by Socket.IO (`connect`, `disconnect`, …).
    #[error("\"{0}\" is a reserved event name")]
    Reserved(String),
    /// The arguments could not be converted.
    #[error(transparent)]
    Convert(#[from] switchboard_wire::convert::ConvertError),
    /// Publishing to redis failed (the cause is fred's error).
    #[error("publishing to redis failed")]
    Redis(#[from] fred::error::Error),
}
