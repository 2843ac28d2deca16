//! Requests awaiting answers from other nodes: bounded, cleaned on completion, timeout and drop,
//! and completed early when an awaited node dies.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use switchboard_wire::{SocketDetails, Value};
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// Who must answer before a request is complete.
#[derive(Debug, Clone)]
pub(crate) enum Waiting {
    /// These node uids (heartbeat liveness: a dead node stops being waited for).
    Nodes(HashSet<String>),
    /// This many answers from anyone (subscriber liveness).
    Count(usize),
}

impl Waiting {
    pub(crate) fn expected(&self) -> usize {
        match self {
            Waiting::Nodes(n) => n.len(),
            Waiting::Count(c) => *c,
        }
    }

    /// Counts an answer (or a death) of `uid`; true when nobody is left.
    fn answered(&mut self, uid: &str) -> bool {
        match self {
            Waiting::Nodes(n) => {
                n.remove(uid);
                n.is_empty()
            }
            Waiting::Count(c) => {
                *c = c.saturating_sub(1);
                *c == 0
            }
        }
    }

    fn is_done(&self) -> bool {
        self.expected() == 0
    }
}

/// One answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Sockets(Vec<SocketDetails>),
    Value(Value),
}

/// What a broadcast with acks receives from other nodes.
#[derive(Debug)]
pub(crate) enum AckEvent {
    Count { uid: String, count: u64 },
    Ack { uid: String, value: Value },
    NodeGone { uid: String },
}

enum Pending {
    Collect {
        waiting: Waiting,
        expected: usize,
        replies: Vec<(String, Reply)>,
        done: Option<oneshot::Sender<()>>,
    },
    Acks(mpsc::Sender<AckEvent>),
}

#[derive(Default)]
pub(crate) struct Requests {
    map: Mutex<HashMap<String, Pending>>,
    max: usize,
}

/// Removes its request when dropped (completion, timeout or the caller going away).
pub(crate) struct Guard {
    requests: Arc<Requests>,
    id: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.requests.lock().remove(&self.id);
    }
}

/// The outcome of a collecting request.
pub(crate) struct Collected {
    pub(crate) replies: Vec<(String, Reply)>,
    pub(crate) expected: usize,
    pub(crate) complete: bool,
}

/// A registered broadcast with acks: removed from the requests when dropped, and its events.
pub(crate) type AckRequest = (Guard, mpsc::Receiver<AckEvent>);

/// Events of one broadcast with acks that may wait for the caller to poll its stream.
pub(crate) const ACK_BACKLOG: usize = 65_536;

impl Requests {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Requests {
            map: Mutex::new(HashMap::new()),
            max,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(self: &Arc<Self>, id: &str, pending: Pending) -> Result<Guard, Error> {
        let mut map = self.lock();
        if map.len() >= self.max {
            return Err(Error::TooManyRequests(map.len()));
        }
        map.insert(id.to_owned(), pending);
        Ok(Guard {
            requests: self.clone(),
            id: id.to_owned(),
        })
    }

    /// Registers a request that collects one reply per node.
    pub(crate) fn collect(
        self: &Arc<Self>,
        id: &str,
        waiting: Waiting,
    ) -> Result<(Guard, oneshot::Receiver<()>), Error> {
        let (tx, rx) = oneshot::channel();
        let expected = waiting.expected();
        let guard = self.insert(
            id,
            Pending::Collect {
                waiting,
                expected,
                replies: Vec::new(),
                done: Some(tx),
            },
        )?;
        Ok((guard, rx))
    }

    /// Registers a broadcast with acks. At most [`ACK_BACKLOG`] events wait for the caller to
    /// poll its stream; beyond that they are dropped (and counted by the caller).
    pub(crate) fn acks(self: &Arc<Self>, id: &str) -> Result<AckRequest, Error> {
        let (tx, rx) = mpsc::channel(ACK_BACKLOG);
        let guard = self.insert(id, Pending::Acks(tx))?;
        Ok((guard, rx))
    }

    /// Takes the replies of a collecting request (when it completed or timed out).
    pub(crate) fn take(&self, id: &str) -> Collected {
        match self.lock().remove(id) {
            Some(Pending::Collect {
                replies,
                expected,
                waiting,
                ..
            }) => Collected {
                replies,
                expected,
                complete: waiting.is_done(),
            },
            _ => Collected {
                replies: Vec::new(),
                expected: 0,
                complete: false,
            },
        }
    }

    /// A reply to request `id` from node `uid`; unknown ids (other nodes' requests, late answers)
    /// are ignored.
    pub(crate) fn reply(&self, id: &str, uid: &str, reply: Reply) {
        let mut map = self.lock();
        if let Some(Pending::Collect {
            waiting,
            replies,
            done,
            ..
        }) = map.get_mut(id)
        {
            // a node answers once
            if replies.iter().any(|(u, _)| u == uid) {
                return;
            }
            replies.push((uid.to_owned(), reply));
            if waiting.answered(uid)
                && let Some(tx) = done.take()
            {
                let _ = tx.send(());
            }
        }
    }

    /// An event of a broadcast with acks; false when it was dropped because the caller does not
    /// poll its stream ([`ACK_BACKLOG`] events already wait).
    pub(crate) fn ack_event(&self, id: &str, event: AckEvent) -> bool {
        match self.lock().get(id) {
            Some(Pending::Acks(tx)) => {
                !matches!(tx.try_send(event), Err(mpsc::error::TrySendError::Full(_)))
            }
            _ => true,
        }
    }

    /// Node `uid` is dead: stop waiting for it everywhere.
    pub(crate) fn node_gone(&self, uid: &str) {
        let mut map = self.lock();
        for pending in map.values_mut() {
            match pending {
                Pending::Collect { waiting, done, .. } => {
                    if let Waiting::Nodes(n) = waiting
                        && n.contains(uid)
                        && waiting.answered(uid)
                        && let Some(tx) = done.take()
                    {
                        let _ = tx.send(());
                    }
                }
                Pending::Acks(tx) => {
                    let _ = tx.try_send(AckEvent::NodeGone {
                        uid: uid.to_owned(),
                    });
                }
            }
        }
    }

    /// Number of requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_when_every_node_answered_or_died() {
        let r = Requests::new(10);
        let nodes: HashSet<String> = ["a", "b"].into_iter().map(String::from).collect();
        let (guard, mut rx) = r
            .collect("q", Waiting::Nodes(nodes))
            .unwrap_or_else(|e| panic!("{e}"));
        r.reply("q", "a", Reply::Value(Value::Nil));
        r.reply("q", "a", Reply::Value(Value::Nil));
        assert!(rx.try_recv().is_err());
        r.node_gone("b");
        assert!(rx.try_recv().is_ok());
        let c = r.take("q");
        assert_eq!((c.replies.len(), c.expected, c.complete), (1, 2, true));
        drop(guard);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_unpolled_ack_stream_holds_a_bounded_backlog() {
        let r = Requests::new(10);
        let (_guard, mut rx) = r.acks("b").unwrap_or_else(|e| panic!("{e}"));
        let ack = || AckEvent::Ack {
            uid: "n".into(),
            value: Value::Nil,
        };
        for _ in 0..ACK_BACKLOG {
            assert!(r.ack_event("b", ack()));
        }
        // the caller never polled: one more is dropped, not queued
        assert!(!r.ack_event("b", ack()));
        assert!(rx.try_recv().is_ok());
        assert!(r.ack_event("b", ack()));
    }

    #[test]
    fn bounded_and_cleaned_on_drop() {
        let r = Requests::new(2);
        let a = r.collect("1", Waiting::Count(1));
        let b = r.acks("2");
        assert!(matches!(
            r.collect("3", Waiting::Count(1)),
            Err(Error::TooManyRequests(2))
        ));
        drop((a, b));
        assert_eq!(r.len(), 0);
        r.reply("unknown", "x", Reply::Value(Value::Nil));
    }
}
