//! Options of the redis transports, with the Node option names and defaults.

/// Which Node adapter to be compatible with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// `createAdapter`: PUBLISH / PSUBSCRIBE, the classic protocol.
    Classic {
        /// Node's `publishOnSpecificResponseChannel`: answer on `P-response#N#<uid>#` instead of
        /// the shared `P-response#N#` (default false; both are always listened to).
        publish_on_specific_response_channel: bool,
    },
    /// `createShardedAdapter` in `static` subscription mode: SPUBLISH / SSUBSCRIBE, the cluster
    /// protocol. Node's default `dynamic` mode needs room join/leave hooks socketioxide does not
    /// have: a Node peer in dynamic mode is detected at start and refused with an error, and
    /// looked for again every [`RedisOptions::peer_check_interval`] after.
    Sharded,
}

/// Options of a [`RedisTransport`](crate::RedisTransport).
#[derive(Clone, Debug)]
pub struct RedisOptions {
    pub(crate) mode: Mode,
    pub(crate) key: String,
    pub(crate) queue_capacity: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) max_publish_age: std::time::Duration,
    pub(crate) receive_queue_bytes: usize,
    pub(crate) peer_check_interval: std::time::Duration,
    pub(crate) subscriber_ring: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            mode: Mode::Classic {
                publish_on_specific_response_channel: false,
            },
            key: "socket.io".into(),
            queue_capacity: 65_536,
            queue_bytes: 64 * 1024 * 1024,
            max_publish_age: std::time::Duration::from_secs(2),
            receive_queue_bytes: 64 * 1024 * 1024,
            peer_check_interval: std::time::Duration::from_secs(5),
            subscriber_ring: 16_384,
        }
    }
}

impl RedisOptions {
    /// Classic mode (Node's `createAdapter`), the default.
    pub fn classic() -> Self {
        Self::default()
    }

    /// Sharded mode (Node's `createShardedAdapter` with `subscriptionMode: "static"`).
    pub fn sharded() -> Self {
        RedisOptions {
            mode: Mode::Sharded,
            ..Self::default()
        }
    }

    /// The key prefix: Node's `key` (classic) or `channelPrefix` (sharded), default `socket.io`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Node's `publishOnSpecificResponseChannel` (classic mode only).
    pub fn publish_on_specific_response_channel(mut self, yes: bool) -> Self {
        if let Mode::Classic {
            publish_on_specific_response_channel,
        } = &mut self.mode
        {
            *publish_on_specific_response_channel = yes;
        }
        self
    }

    /// Messages queued for publishing before further ones are refused (default 65 536).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Bytes of payload queued for publishing before further messages are refused (default
    /// 64 MiB): with large events the count alone would let the queue hold gigabytes.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes.max(1);
        self
    }

    /// How old a queued message may get before it is dropped instead of published (default
    /// 2 s). Node's adapter sends to local clients only while redis is down; this one drops
    /// publishes at once while disconnected and never delivers a message later than this after
    /// an outage.
    pub fn max_publish_age(mut self, age: std::time::Duration) -> Self {
        self.max_publish_age = age;
        self
    }

    /// The receive side's bound in bytes (default 64 MiB). On a single redis, the largest
    /// message read: a larger one is skipped as it arrives, never held, and counted (what is not
    /// read yet waits in redis). With fred subscribing (a Redis Cluster): received messages
    /// waiting to be dispatched. fred's ring is bounded by count only (see
    /// [`subscriber_ring`](Self::subscriber_ring)); the dispatcher empties it into a queue
    /// bounded by bytes before each message it handles, so a burst of large messages faster than
    /// this server handles them is dropped (counted, a warn every 5 s) instead of held.
    pub fn receive_queue_bytes(mut self, bytes: usize) -> Self {
        self.receive_queue_bytes = bytes;
        self
    }

    /// Slots of fred's subscriber ring, the broadcast channel fred hands received messages to,
    /// when fred subscribes: [`RedisTransport::connect`](crate::RedisTransport::connect) to a
    /// Redis Cluster (on a single redis the transport reads its own subscribing connection and
    /// has no ring). Default 16,384. fred gives each of a client's nine broadcast channels this
    /// capacity and allocates every slot up front, about 0.5 KiB of resident memory per slot in
    /// all (~8 MiB). The dispatcher, on a thread of its own, empties the ring into the
    /// [`receive_queue_bytes`](Self::receive_queue_bytes) queue each time it runs, so the ring
    /// holds what arrives while that thread waits to be scheduled; at 4,096, four servers
    /// blasting on two busy cores lost 498 messages. Messages it overwrote are counted
    /// (`dropped{reason="subscriber_lagged"}`) and logged.
    pub fn subscriber_ring(mut self, slots: usize) -> Self {
        self.subscriber_ring = slots.max(1);
        self
    }

    /// Sharded mode: how often each namespace checks that no Node peer runs in `dynamic`
    /// subscription mode (default 5 s; zero turns the check off). Such a peer publishes
    /// single-room broadcasts on room channels this transport does not subscribe to: found at
    /// start, the namespace refuses to start; found later (a dynamic peer started after this
    /// server, or idle until one of its sockets joined a room), it is logged as an error,
    /// counted as `dropped{reason="dynamic_peer"}` and reported by
    /// [`RedisTransport::incompatible_peer`](crate::RedisTransport::incompatible_peer).
    pub fn peer_check_interval(mut self, interval: std::time::Duration) -> Self {
        self.peer_check_interval = interval;
        self
    }

    /// The mode.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }
}
