//! The redis transport: one publishing client and one subscriber client per server, shared by
//! every namespace. Publishes go through a bounded queue to a writer task that pipelines them;
//! one dispatcher, on a thread of its own, routes what the subscriber receives to the namespaces.

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use fred::{
    clients::SubscriberClient,
    prelude::{
        Builder, ClientLike, ClusterInterface, Config, EventInterface, PubsubInterface,
        ReconnectPolicy,
    },
    types::Value as RedisValue,
};
use switchboard_adapter_core::{
    Attach, Inbox, Link, Liveness, Transport, TransportError, TransportErrorKind,
};
use switchboard_wire::{
    ClusterMessage, Limits,
    redis::{ClassicChannels, ShardedChannels},
};
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    task::JoinSet,
};

mod direct;
mod direct_sub;
mod dynamic_peers;
mod receive;

use dynamic_peers::{check_no_dynamic_peers, watch_for_dynamic_peers};
use receive::{spawn_dispatcher, subscription};

use crate::{
    Mode, RedisError, RedisOptions,
    classic::{Classic, Out, Shapes},
};

/// A payload waiting to be published.
struct Outgoing {
    channel: String,
    payload: Bytes,
    sharded: bool,
    queued_at: Instant,
    ns: Arc<Namespace>,
}

/// Messages dropped (publishes: redis unreachable, queue full, too old, failed; received: over
/// the receive queue's bound, fred's ring lagged): counted, and logged at most every
/// [`DropLog::EVERY`] with the number since the last line.
struct DropLog {
    what: &'static str,
    total: AtomicU64,
    since_last: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl DropLog {
    const EVERY: Duration = Duration::from_secs(5);

    fn new(what: &'static str) -> Self {
        DropLog {
            what,
            total: AtomicU64::new(0),
            since_last: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    fn note(&self, n: u64, why: &str) {
        self.total.fetch_add(n, Ordering::Relaxed);
        self.since_last.fetch_add(n, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let dropped = self.since_last.swap(0, Ordering::Relaxed);
        tracing::warn!(dropped, "{} dropped ({why})", self.what);
    }
}

/// How a namespace speaks.
enum Protocol {
    Classic(Classic),
    Sharded(ShardedChannels),
}

struct Namespace {
    nsp: String,
    uid: String,
    inbox: Inbox,
    protocol: Protocol,
    shapes: Mutex<Shapes>,
    #[cfg(feature = "prometheus")]
    metrics: Option<switchboard_adapter_core::Metrics>,
}

impl Namespace {
    /// Counts a message dropped for `reason` (with the `prometheus` feature).
    fn dropped(&self, _reason: &str) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.dropped(_reason);
        }
    }

    /// Records the size of a frame sent or received (with the `prometheus` feature).
    fn bytes(&self, _sent: bool, _len: usize) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.bytes(_sent, _len);
        }
    }

    /// Whether a message on `channel` is for this namespace.
    fn owns(&self, channel: &str) -> bool {
        match &self.protocol {
            Protocol::Classic(c) => {
                channel == c.channels.request()
                    || channel.starts_with(c.channels.response())
                    || channel.starts_with(c.channels.broadcast())
            }
            Protocol::Sharded(s) => channel == s.main() || channel == s.node(&self.uid),
        }
    }
}

/// The subscribing side as given to `start`.
enum Subscriber {
    Fred(SubscriberClient),
    Direct(direct::Target, tokio::net::TcpStream),
}

/// The subscribing side of a running transport: fred's subscriber client, or the changes queue
/// of the transport's own subscribing connection.
enum Subscribing {
    Fred(SubscriberClient),
    Direct(mpsc::Sender<direct_sub::Change>),
}

struct Inner {
    client: fred::clients::Client,
    subscriber: Subscribing,
    options: RedisOptions,
    limits: Limits,
    namespaces: RwLock<Vec<Arc<Namespace>>>,
    queue: mpsc::Sender<Outgoing>,
    /// Publishes go through a connection of the transport's own (`direct`), not fred: true
    /// while it is up.
    direct: bool,
    direct_up: std::sync::atomic::AtomicBool,
    /// Payload bytes in the queue (bounded by `queue_bytes`).
    queued_bytes: AtomicUsize,
    drops: DropLog,
    /// Payload bytes received and not yet dispatched (bounded by `receive_queue_bytes`).
    received_bytes: AtomicUsize,
    received_drops: DropLog,
    /// Sharded mode: a room channel only a Node peer in `dynamic` mode subscribes, as last seen.
    dynamic_peer: Mutex<Option<String>>,
    /// Test plumbing: the dispatcher stops handling messages (and keeps receiving) while true.
    #[cfg(feature = "__test-support")]
    paused: tokio::sync::watch::Sender<bool>,
    /// Ends the dispatcher's thread when set, or dropped with the transport.
    stop: tokio::sync::watch::Sender<bool>,
    /// The resubscriber and the writer (and the dispatcher when it has no thread): aborted when
    /// the transport is dropped (with the set).
    tasks: Mutex<JoinSet<()>>,
}

/// Redis transport for the cluster engine, classic or sharded (see [`RedisOptions`]).
#[derive(Clone)]
pub struct RedisTransport {
    inner: Arc<Inner>,
}

fn redis_error(kind: TransportErrorKind, e: fred::error::Error) -> TransportError {
    TransportError::new(kind, e.to_string()).with_source(e)
}

impl RedisTransport {
    /// Connects to the redis at `url` (`redis://host:port`, or `redis-cluster://host:port` for a
    /// Redis Cluster) with two clients that reconnect with backoff and resubscribe.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, RedisError> {
        let config = Config::from_url(url)?;
        let mut builder = Builder::from_config(config);
        builder
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_secs(5);
            })
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(5);
                c.internal_command_timeout = Duration::from_secs(5);
            });
        let client = builder.build()?;
        // a failed start leaves no client reconnecting in the background
        if let Err(e) = client.init().await {
            let _ = client.quit().await;
            return Err(e.into());
        }
        // a single redis: publishing and subscribing on connections of the transport's own
        // (direct.rs and direct_sub.rs say why); fred on a cluster or through a sentinel
        if let Some(target) = direct::Target::of(&client.client_config()) {
            let opened = async {
                let publisher = direct::open(&target, direct::PUBLISHER).await?;
                let subscriber = direct::open(&target, direct_sub::SUBSCRIBER).await?;
                Ok::<_, direct::Failure>((publisher, subscriber))
            };
            return match opened.await {
                Ok((publisher, subscriber)) => Ok(Self::start(
                    client,
                    Subscriber::Direct(target.clone(), subscriber),
                    options,
                    Some((target, publisher)),
                )),
                Err(e) => {
                    let _ = client.quit().await;
                    Err(RedisError::Direct(e.to_string()))
                }
            };
        }
        // Only the subscriber's message stream needs room for bursts (RedisOptions::
        // subscriber_ring): fred's default of 32 lost messages in a blast while the runtime was
        // busy writing to sockets.
        builder.with_performance_config(|p| {
            p.broadcast_channel_capacity = options.subscriber_ring;
            p.default_command_timeout = Duration::from_secs(5);
        });
        let subscriber = builder.build_subscriber_client()?;
        if let Err(e) = subscriber.init().await {
            let _ = subscriber.quit().await;
            let _ = client.quit().await;
            return Err(e.into());
        }
        Ok(Self::start(
            client,
            Subscriber::Fred(subscriber),
            options,
            None,
        ))
    }

    /// [`connect`](Self::connect), retried while redis cannot be reached, for at most `wait`:
    /// what a server starting beside its redis (compose, Kubernetes) needs. `connect` fails at
    /// once when redis is down (connection refused), although a transport that is running
    /// reconnects forever. Each failed attempt is logged (warn) with the next pause (100 ms
    /// doubling to 2 s); a bad URL fails at once.
    pub async fn connect_with_retry(
        url: &str,
        options: RedisOptions,
        wait: Duration,
    ) -> Result<Self, RedisError> {
        // a bad URL is not worth waiting for
        Config::from_url(url)?;
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(100);
        loop {
            match Self::connect(url, options.clone()).await {
                Ok(t) => return Ok(t),
                Err(e) if Instant::now() + pause < deadline => {
                    tracing::warn!(
                        url,
                        ?pause,
                        "redis not reachable yet: {}",
                        switchboard_adapter_core::report(&e)
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A transport over clients you configured and initialised yourself. Give the subscriber a
    /// large `broadcast_channel_capacity` (fred's default of 32 drops messages under load; drops
    /// are counted and logged).
    pub fn new(
        client: fred::clients::Client,
        subscriber: SubscriberClient,
        options: RedisOptions,
    ) -> Self {
        Self::start(client, Subscriber::Fred(subscriber), options, None)
    }

    fn start(
        client: fred::clients::Client,
        subscriber: Subscriber,
        options: RedisOptions,
        direct: Option<(direct::Target, tokio::net::TcpStream)>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(options.queue_capacity);
        let (subscriber, sub_start) = match subscriber {
            Subscriber::Fred(s) => (Subscribing::Fred(s), None),
            Subscriber::Direct(target, stream) => {
                let (changes, changes_rx) = mpsc::channel(64);
                (
                    Subscribing::Direct(changes),
                    Some((target, stream, changes_rx)),
                )
            }
        };
        let inner = Arc::new(Inner {
            client,
            subscriber,
            options,
            limits: Limits::DEFAULT,
            namespaces: RwLock::new(Vec::new()),
            queue,
            direct: direct.is_some(),
            direct_up: std::sync::atomic::AtomicBool::new(direct.is_some()),
            queued_bytes: AtomicUsize::new(0),
            drops: DropLog::new("redis publishes (packets reached this server's clients only)"),
            received_bytes: AtomicUsize::new(0),
            received_drops: DropLog::new("received redis messages"),
            dynamic_peer: Mutex::new(None),
            #[cfg(feature = "__test-support")]
            paused: tokio::sync::watch::Sender::new(false),
            stop: tokio::sync::watch::Sender::new(false),
            tasks: Mutex::new(JoinSet::new()),
        });
        {
            let mut tasks = inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
            if let Subscribing::Fred(subscriber) = &inner.subscriber {
                // not fred's manage_subscriptions: its resubscribe_all stops at an empty
                // SUBSCRIBE before restoring shard channels
                tasks.spawn(resubscriber(
                    Arc::downgrade(&inner),
                    subscriber.reconnect_rx(),
                ));
                spawn_dispatcher(&inner, subscriber, &mut tasks);
            }
            if let Some((target, stream, changes)) = sub_start {
                direct_sub::spawn(&inner, target, stream, changes, &mut tasks);
            }
            match direct {
                Some((target, stream)) => {
                    tasks.spawn(direct::direct_writer(
                        Arc::downgrade(&inner),
                        target,
                        stream,
                        rx,
                    ));
                }
                None => {
                    tasks.spawn(writer(Arc::downgrade(&inner), inner.client.clone(), rx));
                }
            }
            let every = inner.options.peer_check_interval;
            if matches!(inner.options.mode, Mode::Sharded) && !every.is_zero() {
                tasks.spawn(watch_for_dynamic_peers(Arc::downgrade(&inner), every));
            }
        }
        RedisTransport { inner }
    }

    /// The publishing client.
    pub fn client(&self) -> &fred::clients::Client {
        &self.inner.client
    }

    /// Test plumbing: behaves like a killed process. Nothing more is sent or received, and the
    /// connections close, so redis drops the subscriptions (no goodbye is said).
    #[cfg(feature = "__test-support")]
    #[doc(hidden)]
    pub fn crash_for_tests(&self) {
        self.inner.stop.send_replace(true);
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
        let client = self.inner.client.clone();
        let subscriber = match &self.inner.subscriber {
            Subscribing::Fred(s) => Some(s.clone()),
            Subscribing::Direct(_) => None,
        };
        tokio::spawn(async move {
            if let Some(subscriber) = subscriber {
                let _ = subscriber.quit().await;
            }
            let _ = client.quit().await;
        });
    }

    /// Test plumbing: while `paused`, the dispatcher handles no received message but keeps
    /// taking them from fred (as a dispatcher slower than the subscriber would).
    #[cfg(feature = "__test-support")]
    #[doc(hidden)]
    pub fn pause_dispatch_for_tests(&self, paused: bool) {
        self.inner.paused.send_replace(paused);
    }

    /// Sharded mode: a room channel of a Node peer in `dynamic` subscription mode, as the last
    /// check saw it (see [`RedisOptions::peer_check_interval`]). While `Some`, single-room
    /// broadcasts from that peer do not reach this server's clients: report it in a health check.
    pub fn incompatible_peer(&self) -> Option<String> {
        self.inner
            .dynamic_peer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes dropped since the start (redis unreachable, queue full, too old, failed).
    pub fn publishes_dropped(&self) -> u64 {
        self.inner.drops.total.load(Ordering::Relaxed)
    }

    /// Received messages dropped since the start: on a single redis, messages over
    /// [`RedisOptions::receive_queue_bytes`] (skipped unread); with fred subscribing, the receive
    /// queue over its byte bound, or fred's ring overwritten before the dispatcher took them.
    pub fn received_dropped(&self) -> u64 {
        self.inner.received_drops.total.load(Ordering::Relaxed)
    }

    /// Bytes received from redis and not yet handled. On a single redis the transport reads
    /// only as fast as it handles messages: this is at most the message still arriving (what is
    /// not read waits in redis, up to its `client-output-buffer-limit pubsub`). With fred
    /// subscribing, bounded by [`RedisOptions::receive_queue_bytes`].
    pub fn received_bytes(&self) -> usize {
        self.inner.received_bytes.load(Ordering::Relaxed)
    }

    /// Payload bytes waiting to be published now.
    pub fn queued_bytes(&self) -> usize {
        self.inner.queued_bytes.load(Ordering::Relaxed)
    }

    fn enqueue(&self, ns: &Arc<Namespace>, out: Out, sharded: bool) -> Result<(), TransportError> {
        let inner = &self.inner;
        let len = out.payload.len();
        ns.bytes(true, len);
        // redis unreachable: not queued for later (it would arrive late, or pile up); Node's
        // adapter likewise reaches this server's clients only
        if !inner.client.is_connected()
            || (inner.direct && !inner.direct_up.load(Ordering::Acquire))
        {
            ns.dropped("disconnected");
            inner.drops.note(1, "redis unreachable");
            return Err(TransportError::new(
                TransportErrorKind::Disconnected,
                "redis unreachable: not published",
            ));
        }
        let queued = inner.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if queued > 0 && queued + len > inner.options.queue_bytes {
            inner.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            ns.dropped("queue_full");
            inner.drops.note(1, "publish queue over its byte bound");
            return Err(TransportError::new(
                TransportErrorKind::QueueFull,
                "redis publish queue full (bytes)",
            ));
        }
        let sent = inner.queue.try_send(Outgoing {
            channel: out.channel,
            payload: out.payload,
            sharded,
            queued_at: Instant::now(),
            ns: ns.clone(),
        });
        sent.map_err(|e| {
            inner.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => {
                    ns.dropped("queue_full");
                    inner.drops.note(1, "publish queue full");
                    TransportError::new(TransportErrorKind::QueueFull, "redis publish queue full")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    TransportError::new(TransportErrorKind::Closed, "redis transport closed")
                }
            }
        })
    }
}

/// Publishes what is queued, pipelining every batch on the connection. A message older than
/// `max_publish_age` is dropped, and publishes fail fast instead of waiting in fred for a
/// reconnection: nothing is delivered late after an outage.
async fn writer(
    inner: std::sync::Weak<Inner>,
    client: fred::clients::Client,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let fast = client.with_options(&fred::types::config::Options {
        fail_fast: true,
        ..Default::default()
    });
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let Some(inner) = inner.upgrade() else { break };
        take_fresh(&inner, &mut batch);
        let sends = batch.drain(..).map(|o| {
            let c = &fast;
            async move {
                let sent = if o.sharded {
                    c.spublish::<RedisValue, _, _>(o.channel, o.payload).await
                } else {
                    c.publish::<RedisValue, _, _>(o.channel, o.payload).await
                };
                if sent.is_err() {
                    o.ns.dropped("publish_failed");
                }
                sent.is_err()
            }
        });
        let failed = futures_util::future::join_all(sends)
            .await
            .into_iter()
            .filter(|failed| *failed)
            .count();
        if failed > 0 {
            inner
                .drops
                .note(failed as u64, "publish failed, redis unreachable?");
        }
    }
}

/// Takes `batch` out of the queue's byte count and drops (counted) what waited longer than
/// `max_publish_age`.
fn take_fresh(inner: &Inner, batch: &mut Vec<Outgoing>) {
    let bytes: usize = batch.iter().map(|o| o.payload.len()).sum();
    inner.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    let max_age = inner.options.max_publish_age;
    let before = batch.len();
    batch.retain(|o| {
        let fresh = o.queued_at.elapsed() <= max_age;
        if !fresh {
            o.ns.dropped("stale");
        }
        fresh
    });
    if batch.len() < before {
        inner
            .drops
            .note((before - batch.len()) as u64, "older than max_publish_age");
    }
}

/// Restores every namespace's subscriptions after the subscriber reconnected.
async fn resubscriber(
    inner: std::sync::Weak<Inner>,
    mut reconnected: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
) {
    loop {
        match reconnected.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => break,
        }
        let Some(inner) = inner.upgrade() else { break };
        let namespaces = inner
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ns in namespaces {
            if let Err(e) = subscription(&inner.subscriber, &ns.protocol, &ns.uid, true).await {
                tracing::error!(nsp = %ns.nsp, "could not resubscribe after a reconnect: {}", switchboard_adapter_core::report(&e));
            }
        }
    }
}

fn sum_counts(reply: &RedisValue) -> usize {
    // [channel, count, channel, count, ...]
    match reply {
        RedisValue::Array(items) => items
            .iter()
            .skip(1)
            .step_by(2)
            .filter_map(RedisValue::as_i64)
            .map(|n| usize::try_from(n).unwrap_or(0))
            .sum(),
        _ => 0,
    }
}

impl Transport for RedisTransport {
    type Link = RedisLink;

    async fn attach(&self, attach: Attach) -> Result<RedisLink, TransportError> {
        let key = &self.inner.options.key;
        let protocol = match &self.inner.options.mode {
            Mode::Classic {
                publish_on_specific_response_channel,
            } => Protocol::Classic(Classic {
                channels: ClassicChannels::new(key, &attach.nsp),
                nsp: attach.nsp.clone(),
                uid: attach.uid.clone(),
                specific_responses: *publish_on_specific_response_channel,
            }),
            Mode::Sharded => {
                let channels = ShardedChannels::new(key, &attach.nsp);
                check_no_dynamic_peers(&self.inner.client, &channels).await?;
                Protocol::Sharded(channels)
            }
        };
        subscription(&self.inner.subscriber, &protocol, &attach.uid, true).await?;
        let ns = Arc::new(Namespace {
            nsp: attach.nsp,
            uid: attach.uid,
            inbox: attach.inbox,
            protocol,
            shapes: Mutex::new(Shapes::default()),
            #[cfg(feature = "prometheus")]
            metrics: attach.metrics,
        });
        self.inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(ns.clone());
        Ok(RedisLink {
            transport: self.clone(),
            ns,
        })
    }
}

/// One namespace on redis.
pub struct RedisLink {
    transport: RedisTransport,
    ns: Arc<Namespace>,
}

impl Link for RedisLink {
    fn publish(&self, message: ClusterMessage) -> Result<(), TransportError> {
        match &self.ns.protocol {
            Protocol::Classic(c) => match c.publish(message) {
                Some(out) => self.transport.enqueue(&self.ns, out, false),
                None => Ok(()),
            },
            Protocol::Sharded(s) => {
                let out = Out {
                    channel: s.main().to_owned(),
                    payload: Bytes::from(message.to_json_unless_binary()),
                };
                self.transport.enqueue(&self.ns, out, true)
            }
        }
    }

    fn publish_to(&self, node: &str, message: ClusterMessage) -> Result<(), TransportError> {
        match &self.ns.protocol {
            Protocol::Classic(c) => {
                let out = {
                    let mut shapes = self.ns.shapes.lock().unwrap_or_else(|e| e.into_inner());
                    c.respond(node, message, &mut shapes)
                };
                match out {
                    Some(out) => self.transport.enqueue(&self.ns, out, false),
                    None => Ok(()),
                }
            }
            Protocol::Sharded(s) => {
                let out = Out {
                    channel: s.node(node),
                    payload: Bytes::from(message.to_json_unless_binary()),
                };
                self.transport.enqueue(&self.ns, out, true)
            }
        }
    }

    fn liveness(&self) -> Liveness {
        Liveness::Subscribers
    }

    async fn server_count(&self) -> Result<usize, TransportError> {
        let client = &self.transport.inner.client;
        let err = |e| redis_error(TransportErrorKind::Disconnected, e);
        match &self.ns.protocol {
            Protocol::Classic(c) => {
                let channel = c.channels.request().to_owned();
                // classic pub/sub is cluster-wide: every node counts its own subscribers
                match client.cached_cluster_state() {
                    Some(state) => {
                        let mut total = 0;
                        for server in state.unique_primary_nodes() {
                            let reply = client
                                .with_cluster_node(server)
                                .pubsub_numsub::<RedisValue, _>(channel.clone())
                                .await
                                .map_err(err)?;
                            total += sum_counts(&reply);
                        }
                        Ok(total)
                    }
                    None => Ok(sum_counts(
                        &client
                            .pubsub_numsub::<RedisValue, _>(channel)
                            .await
                            .map_err(err)?,
                    )),
                }
            }
            Protocol::Sharded(s) => Ok(sum_counts(
                &client
                    .pubsub_shardnumsub::<RedisValue, _>(s.main().to_owned())
                    .await
                    .map_err(err)?,
            )),
        }
    }

    async fn close(&self) -> Result<(), TransportError> {
        let inner = &self.transport.inner;
        inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| !Arc::ptr_eq(n, &self.ns));
        subscription(&inner.subscriber, &self.ns.protocol, &self.ns.uid, false).await?;
        Ok(())
    }
}
