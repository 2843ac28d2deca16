//! Sockets as Node's `fetchSockets()` shows them, in both directions.
//!
//! socketioxide gives an adapter no access to a socket's handshake, and has no `socket.data`.
//! Opting in, a server records them here ([`ServerSide::record_handshakes`], a connect
//! middleware, and [`ServerSide::set_data`]) and answers other servers' fetchSockets with them;
//! without it, the handshake is empty and the data `{}` (today's behaviour). Records are bounded
//! (the handshake's headers and auth by [`AdapterOptions::max_handshake_bytes`], the data by
//! [`AdapterOptions::max_data_bytes`]) and swept when their socket is gone.
//!
//! [`ServerSideNamespace::fetch_sockets`] returns every socket of the cluster as a
//! [`ClusterSocket`]: the **original** id (Node's 20 characters), rooms, handshake and data, and
//! the remote operations; socketioxide's own `fetch_sockets` is unchanged.
//!
//! [`ServerSide::record_handshakes`]: crate::ServerSide::record_handshakes
//! [`ServerSide::set_data`]: crate::ServerSide::set_data
//! [`AdapterOptions::max_handshake_bytes`]: crate::AdapterOptions::max_handshake_bytes
//! [`AdapterOptions::max_data_bytes`]: crate::AdapterOptions::max_data_bytes
//! [`ServerSideNamespace::fetch_sockets`]: crate::ServerSideNamespace::fetch_sockets

use std::{
    collections::{HashMap, HashSet},
    fmt::Display,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, de::DeserializeOwned};
use socketioxide::{adapter::Adapter, handler::ConnectMiddleware, socket::Socket};
use socketioxide_core::{Sid, Value as SioValue};
use switchboard_wire::{Handshake, Limits, SocketDetails, Value, convert, json, msgpack};

use crate::{Error, state::Registry};

/// What this server recorded of one of its sockets.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) handshake: Handshake,
    pub(crate) data: Value,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            handshake: Handshake::default(),
            data: Value::map(),
        }
    }
}

/// Records of this server's sockets, by namespace and id.
#[derive(Default)]
pub(crate) struct Records {
    namespaces: Mutex<HashMap<String, NsRecords>>,
}

/// One namespace's records, and how many were left by its last sweep.
#[derive(Default)]
struct NsRecords {
    by_sid: HashMap<Sid, Record>,
    after_sweep: usize,
}

impl Records {
    pub(crate) fn get(&self, nsp: &str, sid: Sid) -> Option<Record> {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(nsp)
            .and_then(|ns| ns.by_sid.get(&sid))
            .cloned()
    }

    /// Changes (or creates) the record of `sid`, then, once a namespace's records doubled since
    /// its last sweep, forgets those of sockets gone from it (socketioxide says nothing when a
    /// socket disconnects): at most twice the live sockets (or 64), amortised O(1) per call.
    fn update(
        &self,
        nsp: &str,
        sid: Sid,
        live: impl FnOnce() -> Option<HashSet<Sid>>,
        f: impl FnOnce(&mut Record),
    ) {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        let ns = namespaces.entry(nsp.to_owned()).or_default();
        f(ns.by_sid.entry(sid).or_default());
        if ns.by_sid.len() < (2 * ns.after_sweep).max(64) {
            return;
        }
        // the live sockets come from socketioxide's own locks: not asked under ours
        drop(namespaces);
        let Some(live) = live() else { return };
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ns) = namespaces.get_mut(nsp) {
            ns.by_sid.retain(|s, _| *s == sid || live.contains(s));
            ns.after_sweep = ns.by_sid.len();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|ns| ns.by_sid.len())
            .sum()
    }
}

type AddressOf = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

/// A connect middleware recording each socket's handshake (headers, query, url, address, time,
/// auth) for the other servers' fetchSockets, as Node's `socket.handshake`. From
/// [`ServerSide::record_handshakes`](crate::ServerSide::record_handshakes); add it with
/// `handler.with(record)`.
#[derive(Clone)]
pub struct RecordHandshake {
    pub(crate) registry: Arc<Registry>,
    pub(crate) max_bytes: usize,
    pub(crate) address: Option<AddressOf>,
}

impl std::fmt::Debug for RecordHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordHandshake")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl RecordHandshake {
    /// How to find the client's address in the request. By default a `std::net::SocketAddr`
    /// request extension (axum's `ConnectInfo` is its own type: with
    /// `into_make_service_with_connect_info::<SocketAddr>()`, pass
    /// `|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())`).
    pub fn address(
        mut self,
        address: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.address = Some(Arc::new(address));
        self
    }

    fn handshake(&self, parts: &http::request::Parts, auth: Option<&SioValue>) -> Handshake {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let issued = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        let mut headers: Vec<(String, Value)> = Vec::new();
        let mut size = 0;
        for name in parts.headers.keys() {
            let value = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            size += name.as_str().len() + value.len();
            if size > self.max_bytes {
                tracing::debug!(
                    "handshake headers over {} bytes: the rest not recorded",
                    self.max_bytes
                );
                break;
            }
            headers.push((name.as_str().to_owned(), Value::from(value)));
        }
        let query: Vec<(String, Value)> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), Value::from(percent_decode(v)))
            })
            .collect();
        let auth = auth
            .and_then(|a| auth_value(a, self.max_bytes))
            .unwrap_or_else(Value::map);
        let address = match &self.address {
            Some(f) => f(parts),
            None => parts
                .extensions
                .get::<std::net::SocketAddr>()
                .map(|a| a.ip().to_string()),
        };
        Handshake {
            headers: Value::Map(headers),
            time: switchboard_wire::Timestamp::from_millis(issued).to_date_string(),
            address: address.unwrap_or_default(),
            xdomain: parts.headers.contains_key(http::header::ORIGIN),
            secure: parts.uri.scheme_str() == Some("https"),
            issued,
            url: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            query: Value::Map(query),
            auth,
            extra: Vec::new(),
        }
    }
}

/// The CONNECT packet's auth as a wire value; `None` (recorded as `{}`) when it is not valid or
/// larger than `max` bytes.
fn auth_value(auth: &SioValue, max: usize) -> Option<Value> {
    let limits = Limits::DEFAULT;
    let value = match auth {
        SioValue::Str(text, bins) => {
            if text.len() > max {
                return None;
            }
            let bins: Vec<bytes::Bytes> = bins.iter().flatten().cloned().collect();
            json::from_str_with_attachments(text, &bins, &limits).ok()?
        }
        SioValue::Bytes(b) => {
            if b.len() > max {
                return None;
            }
            msgpack::from_slice(b, &limits).ok()?
        }
    };
    Some(value)
}

/// `%XX` and `+` decoded, as Node's query parser does; invalid sequences kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The marker of [`RecordHandshake`]'s middleware implementation.
#[doc(hidden)]
#[derive(Debug)]
pub struct RecordHandshakeMarker;

impl<A: Adapter> ConnectMiddleware<A, RecordHandshakeMarker> for RecordHandshake {
    async fn call<'a>(
        &'a self,
        s: Arc<Socket<A>>,
        auth: &'a Option<SioValue>,
    ) -> Result<(), Box<dyn Display + Send>> {
        let handshake = self.handshake(s.req_parts(), auth.as_ref());
        let registry = &self.registry;
        registry.records.update(
            s.ns(),
            s.id,
            || registry.live_sockets(s.ns()),
            |r| r.handshake = handshake,
        );
        Ok(())
    }
}

/// Sets the cluster-visible `data` of socket `sid` of `nsp` (see
/// [`ServerSide::set_data`](crate::ServerSide::set_data)).
pub(crate) fn set_data(
    registry: &Registry,
    max_bytes: usize,
    nsp: &str,
    sid: Sid,
    data: &(impl Serialize + ?Sized),
) -> Result<(), Error> {
    let value = convert::to_value(data)?;
    let size = msgpack::to_vec(&value).len();
    if size > max_bytes {
        return Err(Error::TooLarge {
            what: "socket data",
            size,
            max: max_bytes,
        });
    }
    registry
        .records
        .update(nsp, sid, || registry.live_sockets(nsp), |r| r.data = value);
    Ok(())
}

/// Sockets with their server's uid and whether they are local: all of them, or on a timeout
/// what arrived with the number of servers that answered and were expected.
pub(crate) type Fetched = Result<
    Result<Vec<(String, SocketDetails, bool)>, (Vec<(String, SocketDetails, bool)>, usize, usize)>,
    Error,
>;

/// A remote operation on one socket, wherever it is.
#[derive(Debug)]
pub(crate) enum SocketOp {
    Emit(Vec<Value>),
    Join(Vec<String>),
    Leave(Vec<String>),
    Disconnect,
}

/// A socket of the cluster, from
/// [`ServerSideNamespace::fetch_sockets`](crate::ServerSideNamespace::fetch_sockets): Node's
/// `RemoteSocket`, with the original id.
pub struct ClusterSocket {
    pub(crate) details: SocketDetails,
    pub(crate) server: String,
    pub(crate) local: bool,
    pub(crate) ns: crate::ServerSideNamespace,
}

impl std::fmt::Debug for ClusterSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSocket")
            .field("id", &self.details.id)
            .field("server", &self.server)
            .field("local", &self.local)
            .field("rooms", &self.details.rooms)
            .finish_non_exhaustive()
    }
}

impl ClusterSocket {
    /// The socket's id as its server knows it: 20 characters for a Node socket, 16 for a
    /// socketioxide one.
    pub fn id(&self) -> &str {
        &self.details.id
    }

    /// The uid of the server the socket is on (for this server's sockets, its own uid).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the socket is on this server.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The rooms it is in, its own id first.
    pub fn rooms(&self) -> &[String] {
        &self.details.rooms
    }

    /// Its handshake: what a Node server recorded, or what a Switchboard server recorded with
    /// [`ServerSide::record_handshakes`](crate::ServerSide::record_handshakes) (empty fields
    /// otherwise).
    pub fn handshake(&self) -> &Handshake {
        &self.details.handshake
    }

    /// Its `socket.data` as sent (`{}` when none was set).
    pub fn data(&self) -> &Value {
        &self.details.data
    }

    /// Its `socket.data` as `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        crate::from_value(&self.details.data)
    }

    /// Emits `event` with `args` to this socket (Node's `RemoteSocket.emit`).
    pub fn emit(&self, event: &str, args: &impl Serialize) -> Result<(), Error> {
        let mut packet = vec![Value::from(event)];
        packet.extend(convert::to_args(args)?);
        self.op(SocketOp::Emit(packet))
    }

    /// Makes the socket join `rooms`.
    pub fn join(&self, rooms: impl IntoIterator<Item = impl Into<String>>) -> Result<(), Error> {
        self.op(SocketOp::Join(rooms.into_iter().map(Into::into).collect()))
    }

    /// Makes the socket leave `rooms`.
    pub fn leave(&self, rooms: impl IntoIterator<Item = impl Into<String>>) -> Result<(), Error> {
        self.op(SocketOp::Leave(rooms.into_iter().map(Into::into).collect()))
    }

    /// Disconnects the socket.
    pub fn disconnect(&self) -> Result<(), Error> {
        self.op(SocketOp::Disconnect)
    }

    fn op(&self, op: SocketOp) -> Result<(), Error> {
        self.ns.socket_op(&self.details.id, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_gone_sockets_are_swept() {
        let records = Records::default();
        let mut live: std::collections::VecDeque<Sid> = std::collections::VecDeque::new();
        let mut peak = 0;
        for _ in 0..10_000 {
            let sid = Sid::new();
            live.push_back(sid);
            if live.len() > 10 {
                live.pop_front();
            }
            let now: HashSet<Sid> = live.iter().copied().collect();
            records.update("/", sid, || Some(now), |r| r.data = Value::from(1));
            peak = peak.max(records.len());
        }
        assert!(peak <= 64, "records of 10 live sockets peaked at {peak}");
        // another namespace's records are not touched by a sweep of `/`
        let other = Sid::new();
        records.update("/other", other, || Some(HashSet::new()), |_| {});
        for _ in 0..200 {
            records.update("/", Sid::new(), || Some(HashSet::new()), |_| {});
        }
        assert!(records.get("/other", other).is_some());
    }

    #[test]
    fn queries_are_decoded() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
