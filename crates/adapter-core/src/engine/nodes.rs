//! Heartbeat liveness: when each other node was last heard from.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug, Default)]
pub(crate) struct Nodes(Mutex<HashMap<String, Instant>>);

impl Nodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a message from `uid`.
    pub(crate) fn seen(&self, uid: &str) {
        let mut map = self.lock();
        match map.get_mut(uid) {
            Some(t) => *t = Instant::now(),
            None => {
                map.insert(uid.to_owned(), Instant::now());
            }
        }
    }

    /// Forgets `uid` (ADAPTER_CLOSE); true if it was known.
    pub(crate) fn remove(&self, uid: &str) -> bool {
        self.lock().remove(uid).is_some()
    }

    /// Removes and returns the nodes not heard from for longer than `timeout`.
    pub(crate) fn prune(&self, timeout: Duration) -> Vec<String> {
        let mut dead = Vec::new();
        self.lock().retain(|uid, seen| {
            let alive = seen.elapsed() <= timeout;
            if !alive {
                dead.push(uid.clone());
            }
            alive
        });
        dead
    }

    pub(crate) fn alive(&self) -> HashSet<String> {
        self.lock().keys().cloned().collect()
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }
}
