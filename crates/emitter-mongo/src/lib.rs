//! Emit to a Socket.IO cluster from any process through MongoDB, exactly like
//! `@socket.io/mongo-emitter` 0.2: the same documents in the same collection, so it reaches Node
//! servers (`@socket.io/mongo-adapter` 0.4) and Switchboard servers (`switchboard-adapter-mongo`).
//!
//! # Example
//!
//! ```no_run
//! use switchboard_emitter_mongo::Emitter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = mongodb::Client::with_uri_str("mongodb://127.0.0.1:27017/?replicaSet=rs0").await?;
//! let collection = client.database("app").collection("socket.io-adapter-events");
//! let emitter = Emitter::new(collection);
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

pub use emitter::{Emitter, MAX_DOCUMENT_SIZE};

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
    /// The document would exceed MongoDB's 16 MiB limit.
    #[error("a document of {0} bytes exceeds MongoDB's 16 MiB document limit")]
    TooLarge(usize),
    /// The document could not be encoded as BSON.
    #[error("the document cannot be encoded as BSON")]
    Encode(#[from] mongodb::bson::error::Error),
    /// Inserting into the collection failed (the cause is the driver's error).
    #[error("inserting into MongoDB failed")]
    Mongo(#[from] mongodb::error::Error),
}
