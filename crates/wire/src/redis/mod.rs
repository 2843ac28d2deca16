//! The redis protocols: classic `@socket.io/redis-adapter` / `redis-emitter` (protocol.md §3)
//! and the channel rules of the sharded adapter (§4), whose messages are
//! [`ClusterMessage`](crate::ClusterMessage)s encoded with
//! [`to_json_unless_binary`](crate::ClusterMessage::to_json_unless_binary).

mod channels;
mod classic;

pub use channels::{ClassicChannels, ShardedChannels, SubscriptionMode, looks_like_node_socket_id};
pub use classic::{
    ClassicBroadcast, ClassicRequest, ClassicResponse, RequestBody, RequestType, ResponseBody,
};
