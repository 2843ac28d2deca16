//! Wire formats of the Node.js Socket.IO adapters and emitters, as typed Rust values with their
//! encoders and decoders.
//!
//! This is Switchboard's stable core. It knows nothing about sockets, runtimes or brokers: depend
//! on it to read or write what `@socket.io/redis-adapter`, `redis-emitter`, `mongo-adapter`,
//! `mongo-emitter`, `socket.io-adapter`'s `ClusterAdapter` and `socket.io-mesh-adapter` put on the
//! wire, byte for byte. The adapters and emitters of the workspace are built on it; most users
//! want one of those instead. It depends on no Socket.IO implementation (the bridge to
//! socketioxide's packets lives in `switchboard-adapter-core`), so it changes only when a
//! protocol does.
//!
//! | Protocol | Types |
//! |---|---|
//! | cluster protocol (types 1-13), JSON and msgpack | [`ClusterMessage`], [`Body`], [`MessageType`] |
//! | classic redis adapter and emitter | [`redis::ClassicBroadcast`], [`redis::ClassicRequest`], [`redis::ClassicResponse`], [`redis::ClassicChannels`] |
//! | sharded redis adapter | [`ClusterMessage::to_json_unless_binary`], [`redis::ShardedChannels`] |
//! | mesh adapter | [`mesh::DiscoveryMessage`], [`mesh::Hello`], [`mesh::decode_frame`] |
//! | mongo adapter and emitter (feature `bson`) | `mongo::to_document`, `mongo::from_document` |
//!
//! Every decoder takes [`Limits`] (input size, nesting depth) and returns a [`DecodeError`] on bad
//! input: it never panics and never allocates more than the input can justify.
//!
//! # Example
//!
//! ```
//! use switchboard_wire::{Body, ClusterMessage, Dialect, Limits, Opts, PacketObject, Value};
//!
//! // io.to("room1").emit("chat", "hi") as a cluster BROADCAST
//! let message = ClusterMessage::new(
//!     "3f2a9c0d11e4b7a8",
//!     "/",
//!     Body::Broadcast {
//!         packet: PacketObject::event(vec!["chat".into(), "hi".into()]),
//!         request_id: None,
//!         opts: Opts::to_rooms(vec!["room1".into()]),
//!     },
//! );
//! let json = message.to_json();
//! assert_eq!(
//!     String::from_utf8_lossy(&json),
//!     r#"{"type":3,"data":{"packet":{"type":2,"data":["chat","hi"]},"opts":{"rooms":["room1"],"except":[],"flags":{}}},"uid":"3f2a9c0d11e4b7a8","nsp":"/"}"#
//! );
//! // Receivers accept either encoding, by the first byte.
//! let decoded = ClusterMessage::decode(&message.to_msgpack(), Dialect::Cluster, &Limits::DEFAULT)?;
//! assert_eq!(decoded, message);
//! # Ok::<(), switchboard_wire::DecodeError>(())
//! ```
//!
//! # Features
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `bson` | no | the `mongo` module: BSON documents of the mongo adapter and emitter |
//!
//! # MSRV
//!
//! Rust 1.94.

mod cluster;
pub mod convert;
mod error;
mod fields;
pub mod ids;
pub mod json;
pub mod mesh;
mod model;
#[cfg(feature = "bson")]
pub mod mongo;
pub mod msgpack;
pub mod redis;
mod value;

pub use cluster::{Body, ClusterMessage, Dialect, MessageType, decode_value};
pub use error::{DecodeError, Limits};
pub use model::{Flags, Handshake, Opts, OptsOrder, PacketObject, SocketDetails};
pub use value::{Timestamp, Value};
