//! The receiving side: subscriptions, and the dispatch of received messages. On a single redis
//! the transport's own subscribing connection (`direct_sub`) dispatches as it reads. With fred
//! subscribing, one dispatcher, on a thread of its own, takes what fred's subscriber received,
//! bounded by bytes, and hands each message, decoded, to its namespace's engine.
//!
//! Why a thread: fred's reader task fills a ring bounded by count, and a dispatcher task waits for
//! its turn behind every task of a runtime busy writing to sockets, long enough for the ring to
//! overwrite thousands of messages (a two-server blast at 4,096 slots lost 5,320). A thread is
//! scheduled by the kernel as soon as it is woken; still, with four servers on two busy cores
//! the kernel let it wait while 4,096 slots filled (498 lost), hence the larger default ring.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use fred::{interfaces::EventInterface, prelude::PubsubInterface};
use switchboard_adapter_core::{TransportError, TransportErrorKind};
use switchboard_wire::{ClusterMessage, Dialect};
use tokio::sync::broadcast::error::RecvError;

use super::{Inner, Namespace, Protocol, Subscribing, direct_sub, redis_error};

/// Received messages waiting for the dispatcher, bounded by bytes.
#[derive(Default)]
struct Backlog {
    messages: std::collections::VecDeque<(fred::types::Message, usize)>,
    bytes: usize,
}

impl Backlog {
    /// Queues `message`, or drops it (counted) when the backlog is over its byte bound; a message
    /// alone is always taken (its size is bounded by the decoder's limits).
    fn admit(&mut self, inner: &Inner, message: fred::types::Message) {
        let len = message.value.as_bytes().map_or(0, <[u8]>::len);
        if !self.messages.is_empty() && self.bytes + len > inner.options.receive_queue_bytes {
            inner
                .received_drops
                .note(1, "receive queue over its byte bound");
            if let Some(ns) = inner.namespace_of(&message.channel) {
                ns.dropped("receive_queue_full");
            }
            return;
        }
        self.bytes += len;
        inner.received_bytes.store(self.bytes, Ordering::Relaxed);
        self.messages.push_back((message, len));
    }

    fn pop(&mut self, inner: &Inner) -> Option<fred::types::Message> {
        let (message, len) = self.messages.pop_front()?;
        self.bytes -= len;
        inner.received_bytes.store(self.bytes, Ordering::Relaxed);
        Some(message)
    }
}

impl Backlog {
    /// Takes one result of fred's ring: a message, or the count it overwrote; false once the ring
    /// is closed.
    fn take(&mut self, inner: &Inner, received: Result<fred::types::Message, RecvError>) -> bool {
        match received {
            Ok(m) => self.admit(inner, m),
            Err(RecvError::Lagged(n)) => inner.lagged(n),
            Err(RecvError::Closed) => return false,
        }
        true
    }
}

impl Inner {
    /// The namespace a message on `channel` is for: the longest matching prefix wins (namespaces
    /// `/a` and `/a#b` share one).
    pub(super) fn namespace_of(&self, channel: &str) -> Option<Arc<Namespace>> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|ns| ns.owns(channel))
            .max_by_key(|ns| ns.nsp.len())
            .cloned()
    }

    /// fred's ring overwrote `n` messages the dispatcher had not taken.
    fn lagged(&self, n: u64) {
        self.received_drops.note(n, "fred's subscriber ring lagged");
        for ns in self
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            ns.dropped("subscriber_lagged");
        }
    }
}

/// Starts the dispatcher on a thread of its own (a current-thread runtime without drivers); on
/// a system that refuses a thread, as a task of the caller's runtime.
pub(super) fn spawn_dispatcher(
    inner: &Arc<Inner>,
    subscriber: &fred::clients::SubscriberClient,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let run = || {
        dispatcher(
            Arc::downgrade(inner),
            subscriber.message_rx(),
            inner.stop.subscribe(),
        )
    };
    let thread = tokio::runtime::Builder::new_current_thread()
        .build()
        .and_then(|runtime| {
            let run = run();
            std::thread::Builder::new()
                .name("switchboard-redis-rx".into())
                .spawn(move || runtime.block_on(run))
        });
    if let Err(e) = thread {
        tracing::warn!("no thread for the redis dispatcher, it runs as a task: {e}");
        tasks.spawn(run());
    }
}

/// Routes received messages to their namespaces. Before each message it handles, it takes
/// everything fred has received since into a [`Backlog`] bounded by bytes: fred's ring is bounded
/// by count only. Ends when `stop` is set or dropped (the transport is gone) or the ring closes.
async fn dispatcher(
    weak: std::sync::Weak<Inner>,
    mut rx: tokio::sync::broadcast::Receiver<fred::types::Message>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut backlog = Backlog::default();
    #[cfg(feature = "__test-support")]
    let mut paused = match weak.upgrade() {
        Some(inner) => inner.paused.subscribe(),
        None => return,
    };
    loop {
        let Some(inner) = weak.upgrade() else { break };
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(m) => backlog.admit(&inner, m),
                Err(TryRecvError::Lagged(n)) => inner.lagged(n),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    closed = true;
                    break;
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        #[cfg(feature = "__test-support")]
        if *paused.borrow_and_update() && !closed {
            tokio::select! {
                _ = paused.changed() => {}
                r = rx.recv() => {
                    backlog.take(&inner, r);
                }
            }
            continue;
        }
        let Some(message) = backlog.pop(&inner) else {
            if closed {
                break;
            }
            // not holding the transport while waiting: dropping it drops `stop`, which ends this
            drop(inner);
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = stop.changed() => break,
            };
            let Some(inner) = weak.upgrade() else { break };
            if !backlog.take(&inner, received) {
                break;
            }
            continue;
        };
        if let Some(payload) = message.value.as_bytes() {
            dispatch(&inner, &message.channel, payload);
        }
    }
}

/// What a namespace listens to: shard channels, patterns, channels.
fn listens_to(protocol: &Protocol, uid: &str) -> Vec<(direct_sub::Kind, Vec<String>)> {
    use direct_sub::Kind;
    match protocol {
        Protocol::Classic(c) => vec![
            (Kind::Pattern, vec![c.channels.pattern().to_owned()]),
            (
                Kind::Channel,
                vec![
                    c.channels.request().to_owned(),
                    c.channels.response().to_owned(),
                    c.channels.response_to(uid),
                ],
            ),
        ],
        // one command per channel: on a cluster they live in different slots
        Protocol::Sharded(s) => vec![
            (Kind::Shard, vec![s.main().to_owned()]),
            (Kind::Shard, vec![s.node(uid)]),
        ],
    }
}

/// Subscribes (`on`) or unsubscribes what a namespace listens to.
pub(super) async fn subscription(
    sub: &Subscribing,
    protocol: &Protocol,
    uid: &str,
    on: bool,
) -> Result<(), TransportError> {
    use direct_sub::Kind;
    let err = |e: String| TransportError::new(TransportErrorKind::Disconnected, e);
    for (kind, names) in listens_to(protocol, uid) {
        match sub {
            Subscribing::Fred(sub) => {
                let fred_err = |e| redis_error(TransportErrorKind::Disconnected, e);
                match (kind, on) {
                    (Kind::Pattern, true) => sub.psubscribe(names).await.map_err(fred_err)?,
                    (Kind::Pattern, false) => sub.punsubscribe(names).await.map_err(fred_err)?,
                    (Kind::Channel, true) => sub.subscribe(names).await.map_err(fred_err)?,
                    (Kind::Channel, false) => sub.unsubscribe(names).await.map_err(fred_err)?,
                    (Kind::Shard, true) => sub.ssubscribe(names).await.map_err(fred_err)?,
                    (Kind::Shard, false) => sub.sunsubscribe(names).await.map_err(fred_err)?,
                }
            }
            Subscribing::Direct(changes) => {
                let (done, answer) = tokio::sync::oneshot::channel();
                let change = direct_sub::Change {
                    on,
                    kind,
                    names,
                    done,
                };
                changes
                    .send(change)
                    .await
                    .map_err(|_| err("redis transport closed".into()))?;
                tokio::time::timeout(Duration::from_secs(5), answer)
                    .await
                    .map_err(|_| err("redis did not confirm the subscription".into()))?
                    .map_err(|_| err("redis transport closed".into()))?
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// Decodes a received message and hands it to its namespace's engine.
pub(super) fn dispatch(inner: &Inner, channel: &str, payload: &[u8]) {
    let Some(ns) = inner.namespace_of(channel) else {
        return;
    };
    ns.bytes(false, payload.len());
    let decoded = match &ns.protocol {
        Protocol::Classic(c) => {
            let mut shapes = ns.shapes.lock().unwrap_or_else(|e| e.into_inner());
            c.receive(channel, payload, &inner.limits, &mut shapes)
        }
        Protocol::Sharded(_) => {
            ClusterMessage::decode(payload, Dialect::Cluster, &inner.limits).map(Some)
        }
    };
    match decoded {
        Ok(Some(m)) => {
            ns.inbox.deliver(m);
        }
        Ok(None) => {}
        Err(e) => {
            ns.dropped("malformed");
            tracing::debug!(
                channel,
                "dropped a malformed or foreign message: {}",
                switchboard_adapter_core::report(&e)
            );
        }
    }
}
