//! Foreign ids: socketioxide's `Sid` and `Uid` are exactly 16 url-safe characters, Node socket
//! ids are 20 and classic redis uids 6. Foreign ids get stable 16-character aliases; what goes
//! back on the wire is always the original.

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
    str::FromStr,
    sync::Mutex,
};

use socketioxide_core::{Sid, Uid};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Bounded two-way map between foreign ids and their aliases.
#[derive(Debug)]
pub(crate) struct Aliases {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// alias → (original id, uid of the node it lives on)
    originals: HashMap<Sid, (String, String)>,
    order: VecDeque<Sid>,
}

/// A stable alias: 96 bits of two SipHash digests as 16 base64url characters (collisions with a
/// real id are as likely as two random socketioxide ids colliding).
fn alias(id: &str) -> Sid {
    let mut out = [0u8; 16];
    let mut bits: u128 = 0;
    for salt in 0u8..2 {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        id.hash(&mut h);
        bits = (bits << 64) | u128::from(h.finish());
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = ALPHABET[((bits >> (6 * i)) & 63) as usize];
    }
    // `out` holds only alphabet bytes, so it always parses.
    std::str::from_utf8(&out)
        .ok()
        .and_then(|s| Sid::from_str(s).ok())
        .unwrap_or(Sid::ZERO)
}

impl Aliases {
    pub(crate) fn new(capacity: usize) -> Self {
        Aliases {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(16),
        }
    }

    fn remember(&self, alias: Sid, original: &str, node: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.originals.contains_key(&alias) {
            return;
        }
        inner
            .originals
            .insert(alias, (original.to_owned(), node.to_owned()));
        inner.order.push_back(alias);
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.originals.remove(&old);
            }
        }
    }

    /// The `Sid` for a socket id living on `node`: itself when it is a valid 16-character id,
    /// an alias otherwise.
    pub(crate) fn sid(&self, id: &str, node: &str) -> Sid {
        match Sid::from_str(id) {
            Ok(sid) => sid,
            Err(_) => {
                let a = alias(id);
                self.remember(a, id, node);
                a
            }
        }
    }

    /// The `Uid` for a node uid.
    pub(crate) fn uid(&self, node: &str) -> Uid {
        match Uid::from_str(node) {
            Ok(uid) => uid,
            Err(_) => {
                let a = alias(node);
                self.remember(a, node, node);
                Uid::from_str(a.as_str()).unwrap_or(Uid::ZERO)
            }
        }
    }

    /// The original id behind a `Sid` (itself when it is not an alias).
    pub(crate) fn original_sid(&self, sid: Sid) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .originals
            .get(&sid)
            .map_or_else(|| sid.to_string(), |(o, _)| o.clone())
    }

    /// The original node uid behind a `Uid`.
    #[cfg(test)]
    pub(crate) fn original_uid(&self, uid: Uid) -> String {
        let sid = Sid::from_str(uid.as_str()).unwrap_or(Sid::ZERO);
        self.original_sid(sid)
    }

    /// Forgets every alias of sockets that lived on `node`, and the node's own.
    pub(crate) fn forget_node(&self, node: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.originals.retain(|_, (_, n)| n != node);
        let Inner { originals, order } = &mut *inner;
        order.retain(|a| originals.contains_key(a));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map(|i| i.originals.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_ids_pass_through_and_foreign_ids_round_trip() {
        let a = Aliases::new(100);
        let native = Sid::new();
        assert_eq!(a.sid(native.as_str(), "n"), native);
        assert_eq!(a.original_sid(native), native.to_string());

        let node_sid = "huaItNCoU-pb6HbQAAAA";
        let s = a.sid(node_sid, "P0Imza");
        assert_eq!(s, a.sid(node_sid, "P0Imza"), "stable");
        assert_eq!(a.original_sid(s), node_sid);
        let u = a.uid("P0Imza");
        assert_eq!(a.original_uid(u), "P0Imza");
        let hex = a.uid("3f2a9c0d11e4b7a8");
        assert_eq!(hex.to_string(), "3f2a9c0d11e4b7a8");

        a.forget_node("P0Imza");
        assert_eq!(a.len(), 0);
        assert_eq!(a.original_sid(s), s.to_string());
    }

    #[test]
    fn bounded() {
        let a = Aliases::new(16);
        for i in 0..1000 {
            a.sid(&format!("{i:020}"), "n");
        }
        assert_eq!(a.len(), 16);
    }
}
