//! The stream of a broadcast with acks: local acks merged with remote ones. It ends when every
//! node counted its clients and every counted ack arrived, when the awaited nodes are gone, or at
//! the deadline; never later. At the deadline each missing remote ack is one timeout error, as
//! socketioxide reports a local client that did not answer.

use std::{
    collections::HashMap,
    pin::Pin,
    task::{Context, Poll},
};

use crate::bridge::{self, ParserKind};
use futures_core::{FusedStream, Stream};
use socketioxide_core::{
    Sid,
    adapter::{AckStreamItem, SocketEmitter},
};
use tokio::{sync::mpsc, time::Sleep};

use super::requests::{AckEvent, AckRequest, Guard, Waiting};

#[derive(Default)]
struct NodeAcks {
    count: Option<u64>,
    received: u64,
}

/// Sums over every answer: what subscriber-counted transports go by, since some (classic redis)
/// do not say which node a response comes from.
#[derive(Default)]
struct Totals {
    counts: usize,
    expected: u64,
    received: u64,
}

pin_project_lite::pin_project! {
    /// Acks of one broadcast, from local and remote clients.
    ///
    /// Remote acks carry no socket id in Node's protocol: they come with `Sid::ZERO`. At the
    /// deadline, each remote client counted but not heard from yields `(Sid::ZERO,
    /// Err(timeout))`, and so does each awaited server that did not even say how many clients it
    /// has (at least one of its clients is missing): the caller sees that answers are missing, as
    /// Node's callback gets its timeout error.
    pub struct AckStream<E: SocketEmitter> {
        #[pin]
        local: E::AckStream,
        #[pin]
        deadline: Sleep,
        remote: Option<mpsc::Receiver<AckEvent>>,
        waiting: Waiting,
        nodes: HashMap<String, NodeAcks>,
        totals: Totals,
        parser: ParserKind,
        // time to first remote ack, for the `broadcastWithAck` request metric
        timer: Option<(crate::Metrics, std::time::Instant)>,
        // timeout errors still to yield, counted at the deadline
        timeouts: u64,
        _guard: Option<Guard>,
    }
}

/// The emitter's "ack timeout" error. socketioxide's `AckError` is a serde enum whose
/// `Timeout` is a unit variant, which is how it travels between servers; an emitter error
/// without such a variant gets no timeout items.
fn timeout_error<A: serde::de::DeserializeOwned>() -> Option<A> {
    use serde::de::{IntoDeserializer, value::Error};
    A::deserialize(IntoDeserializer::<Error>::into_deserializer("Timeout")).ok()
}

/// Remote acks still missing: per awaited node, its counted clients not heard from, or one when
/// it never counted.
fn missing(waiting: &Waiting, nodes: &HashMap<String, NodeAcks>, totals: &Totals) -> u64 {
    match waiting {
        Waiting::Nodes(set) => set
            .iter()
            .map(|u| match nodes.get(u) {
                Some(NodeAcks {
                    count: Some(c),
                    received,
                }) => c.saturating_sub(*received),
                _ => 1,
            })
            .sum(),
        Waiting::Count(c) => {
            totals.expected.saturating_sub(totals.received)
                + (*c as u64).saturating_sub(totals.counts as u64)
        }
    }
}

impl<E: SocketEmitter> AckStream<E> {
    pub(crate) fn new(
        local: E::AckStream,
        remote: Option<AckRequest>,
        waiting: Waiting,
        deadline: Sleep,
        parser: ParserKind,
    ) -> Self {
        let (guard, rx) = match remote {
            Some((g, rx)) if waiting.expected() > 0 => (Some(g), Some(rx)),
            _ => (None, None),
        };
        AckStream {
            local,
            deadline,
            remote: rx,
            waiting,
            nodes: HashMap::new(),
            totals: Totals::default(),
            parser,
            timer: None,
            timeouts: 0,
            _guard: guard,
        }
    }

    /// Whether acks from other servers are awaited.
    pub(crate) fn waits_remotely(&self) -> bool {
        self.remote.is_some()
    }

    pub(crate) fn timed(mut self, metrics: crate::Metrics) -> Self {
        self.timer = Some((metrics, std::time::Instant::now()));
        self
    }
}

/// Whether every awaited node counted its clients and every counted ack arrived.
fn remote_complete(waiting: &Waiting, nodes: &HashMap<String, NodeAcks>, totals: &Totals) -> bool {
    let counted = |n: &NodeAcks| n.count.is_some_and(|c| n.received >= c);
    match waiting {
        Waiting::Nodes(set) => set.iter().all(|u| nodes.get(u).is_some_and(counted)),
        Waiting::Count(c) => totals.counts >= *c && totals.received >= totals.expected,
    }
}

impl<E: SocketEmitter> Stream for AckStream<E> {
    type Item = AckStreamItem<E::AckError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if !this.local.is_terminated()
            && let Poll::Ready(Some(item)) = this.local.as_mut().poll_next(cx)
        {
            return Poll::Ready(Some(item));
        }
        if let Some(rx) = this.remote.as_mut() {
            loop {
                if remote_complete(this.waiting, this.nodes, this.totals) {
                    *this.remote = None;
                    break;
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(AckEvent::Count { uid, count })) => {
                        this.nodes.entry(uid).or_default().count = Some(count);
                        this.totals.counts += 1;
                        this.totals.expected += count;
                    }
                    Poll::Ready(Some(AckEvent::Ack { uid, value })) => {
                        this.nodes.entry(uid).or_default().received += 1;
                        this.totals.received += 1;
                        if let Some((m, started)) = this.timer.take() {
                            m.request("broadcastWithAck", started.elapsed().as_secs_f64());
                        }
                        let value = bridge::ack_from_wire(&value, *this.parser);
                        return Poll::Ready(Some((Sid::ZERO, Ok(value))));
                    }
                    Poll::Ready(Some(AckEvent::NodeGone { uid })) => {
                        if let Waiting::Nodes(set) = this.waiting {
                            set.remove(&uid);
                        }
                        this.nodes.remove(&uid);
                    }
                    Poll::Ready(None) => {
                        *this.remote = None;
                        break;
                    }
                    Poll::Pending => {
                        if this.deadline.as_mut().poll(cx).is_ready() {
                            *this.timeouts = missing(this.waiting, this.nodes, this.totals);
                            *this.remote = None;
                            break;
                        }
                        return Poll::Pending;
                    }
                }
            }
        }
        if *this.timeouts > 0 {
            if let Some(e) = timeout_error::<E::AckError>() {
                *this.timeouts -= 1;
                return Poll::Ready(Some((Sid::ZERO, Err(e))));
            }
            *this.timeouts = 0;
        }
        if this.local.is_terminated() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl<E: SocketEmitter> FusedStream for AckStream<E> {
    fn is_terminated(&self) -> bool {
        self.remote.is_none() && self.timeouts == 0 && self.local.is_terminated()
    }
}
