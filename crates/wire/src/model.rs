//! The pieces every protocol shares: broadcast options, the packet object, socket details.

use crate::{
    DecodeError, Value,
    fields::{self, Obj},
};

/// Where a broadcast goes: the wire form of socket.io's `BroadcastOptions` (spec A.2).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Opts {
    /// Target rooms; empty means the whole namespace.
    pub rooms: Vec<String>,
    /// Rooms whose members are excluded.
    pub except: Vec<String>,
    /// The flags object; `None` when the sender omitted the key (classic requests, emitters).
    pub flags: Option<Flags>,
    /// The key order the sender used, kept for byte-identical re-encoding.
    pub order: OptsOrder,
}

/// Key order of an `opts` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OptsOrder {
    /// `rooms, except, flags`: what servers send.
    #[default]
    RoomsExceptFlags,
    /// `rooms, flags, except`: what the redis and mongo emitters send.
    RoomsFlagsExcept,
}

impl Opts {
    /// Options for a broadcast to `rooms`, with an empty flags object.
    pub fn to_rooms(rooms: Vec<String>) -> Self {
        Opts {
            rooms,
            flags: Some(Flags::default()),
            ..Opts::default()
        }
    }

    /// The flags, or an empty set when absent.
    pub fn flags(&self) -> &Flags {
        static EMPTY: Flags = Flags(Vec::new());
        self.flags.as_ref().unwrap_or(&EMPTY)
    }

    /// The flags, created empty when absent.
    pub fn flags_mut(&mut self) -> &mut Flags {
        self.flags.get_or_insert_with(Flags::default)
    }

    /// The wire value (`{rooms, except, flags}` in the recorded order).
    pub fn to_value(&self) -> Value {
        let rooms = ("rooms".to_owned(), fields::strings(&self.rooms));
        let except = ("except".to_owned(), fields::strings(&self.except));
        let flags = self
            .flags
            .as_ref()
            .map(|f| ("flags".to_owned(), Value::Map(f.0.clone())));
        let entries = match (self.order, flags) {
            (_, None) => vec![rooms, except],
            (OptsOrder::RoomsExceptFlags, Some(f)) => vec![rooms, except, f],
            (OptsOrder::RoomsFlagsExcept, Some(f)) => vec![rooms, f, except],
        };
        Value::Map(entries)
    }

    /// Appends the msgpack encoding of [`Self::to_value`] to `out`, without building the value.
    pub(crate) fn write_msgpack(&self, out: &mut Vec<u8>) {
        use crate::msgpack::{write_array_len, write_map_len, write_str, write_value};
        let strings = |out: &mut Vec<u8>, key: &str, items: &[String]| {
            write_str(out, key);
            write_array_len(out, items.len());
            for s in items {
                write_str(out, s);
            }
        };
        let flags = |out: &mut Vec<u8>, f: &Flags| {
            write_str(out, "flags");
            write_map_len(out, f.0.len());
            for (k, v) in &f.0 {
                write_str(out, k);
                write_value(out, v);
            }
        };
        write_map_len(out, 2 + usize::from(self.flags.is_some()));
        strings(out, "rooms", &self.rooms);
        match (self.order, &self.flags) {
            (_, None) => strings(out, "except", &self.except),
            (OptsOrder::RoomsExceptFlags, Some(f)) => {
                strings(out, "except", &self.except);
                flags(out, f);
            }
            (OptsOrder::RoomsFlagsExcept, Some(f)) => {
                flags(out, f);
                strings(out, "except", &self.except);
            }
        }
    }

    /// Reads an `opts` value; tolerates missing keys, unknown flags and numeric rooms.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut obj = Obj::new(value, "opts")?;
        let order = match (obj.position("flags"), obj.position("except")) {
            (Some(f), Some(e)) if f < e => OptsOrder::RoomsFlagsExcept,
            _ => OptsOrder::RoomsExceptFlags,
        };
        let rooms = fields::rooms(obj.take("rooms"), "opts.rooms")?;
        let except = fields::rooms(obj.take("except"), "opts.except")?;
        let flags = match obj.take("flags") {
            None | Some(Value::Nil) => None,
            Some(Value::Map(entries)) => Some(Flags(entries)),
            Some(_) => return Err(DecodeError::field("opts.flags", "a map")),
        };
        Ok(Opts {
            rooms,
            except,
            flags,
            order,
        })
    }
}

/// The `flags` object, in the order the sender set them; unknown flags are kept.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Flags(Vec<(String, Value)>);

impl Flags {
    /// All entries, in order.
    pub fn entries(&self) -> &[(String, Value)] {
        &self.0
    }

    /// The value of a flag.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Sets a flag, keeping its position if it was already set.
    pub fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    /// `volatile`: may be dropped if the client is not writable.
    pub fn volatile(&self) -> bool {
        self.get("volatile")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `compress`: the per-message deflate hint, when set.
    pub fn compress(&self) -> Option<bool> {
        self.get("compress").and_then(Value::as_bool)
    }

    /// `local`: never published.
    pub fn local(&self) -> bool {
        self.get("local").and_then(Value::as_bool).unwrap_or(false)
    }

    /// `timeout` in milliseconds (broadcast with acks, fetchSockets).
    pub fn timeout_ms(&self) -> Option<u64> {
        self.get("timeout")
            .and_then(Value::as_i64)
            .and_then(|t| u64::try_from(t).ok())
    }

    /// `expectSingleResponse`: an operation on one remote socket.
    pub fn expect_single_response(&self) -> bool {
        self.get("expectSingleResponse")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The unencoded socket.io packet object adapters carry (spec A.1): `{type, data, nsp?, id?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct PacketObject {
    /// Socket.IO packet type; in practice always 2 (EVENT), binary or not.
    pub kind: i64,
    /// `[eventName, ...args]`.
    pub data: Vec<Value>,
    /// The namespace; present in classic redis and emitter messages, absent in cluster messages.
    pub nsp: Option<String>,
    /// Ack id, only for private emits routed through the adapter.
    pub id: Option<i64>,
}

impl PacketObject {
    /// An EVENT packet.
    pub fn event(data: Vec<Value>) -> Self {
        PacketObject {
            kind: 2,
            data,
            nsp: None,
            id: None,
        }
    }

    /// The event name, `data[0]`, when it is a string.
    pub fn event_name(&self) -> Option<&str> {
        self.data.first().and_then(Value::as_str)
    }

    /// The wire value.
    pub fn to_value(&self) -> Value {
        let mut entries = Vec::with_capacity(4);
        entries.push(("type".to_owned(), Value::Int(self.kind)));
        entries.push(("data".to_owned(), Value::Array(self.data.clone())));
        if let Some(nsp) = &self.nsp {
            entries.push(("nsp".to_owned(), Value::Str(nsp.clone())));
        }
        if let Some(id) = self.id {
            entries.push(("id".to_owned(), Value::Int(id)));
        }
        Value::Map(entries)
    }

    /// Appends the msgpack encoding of [`Self::to_value`] to `out`, without building the value
    /// (nor cloning the arguments).
    pub(crate) fn write_msgpack(&self, out: &mut Vec<u8>) {
        use crate::msgpack::{write_array_len, write_map_len, write_str, write_value};
        write_map_len(
            out,
            2 + usize::from(self.nsp.is_some()) + usize::from(self.id.is_some()),
        );
        write_str(out, "type");
        write_value(out, &Value::Int(self.kind));
        write_str(out, "data");
        write_array_len(out, self.data.len());
        for v in &self.data {
            write_value(out, v);
        }
        if let Some(nsp) = &self.nsp {
            write_str(out, "nsp");
            write_str(out, nsp);
        }
        if let Some(id) = self.id {
            write_str(out, "id");
            write_value(out, &Value::Int(id));
        }
    }

    /// Reads a packet object.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut obj = Obj::new(value, "packet")?;
        let kind = obj.int("type", "packet.type")?;
        let data = obj.array("data", "packet.data")?;
        let nsp = obj.opt_string("nsp", "packet.nsp")?;
        let id = match obj.take("id") {
            None | Some(Value::Nil) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or(DecodeError::field("packet.id", "an integer"))?,
            ),
        };
        Ok(PacketObject {
            kind,
            data,
            nsp,
            id,
        })
    }
}

/// One socket as fetchSockets returns it: `{id, handshake, rooms, data}`.
#[derive(Clone, Debug, PartialEq)]
pub struct SocketDetails {
    /// The socket id (20 characters from Node, 16 from socketioxide).
    pub id: String,
    /// The handshake the client made.
    pub handshake: Handshake,
    /// Rooms the socket is in, its own id included.
    pub rooms: Vec<String>,
    /// The user's `socket.data`.
    pub data: Value,
}

impl SocketDetails {
    /// The wire value.
    pub fn to_value(&self) -> Value {
        Value::Map(vec![
            ("id".to_owned(), Value::Str(self.id.clone())),
            ("handshake".to_owned(), self.handshake.to_value()),
            ("rooms".to_owned(), fields::strings(&self.rooms)),
            ("data".to_owned(), self.data.clone()),
        ])
    }

    /// Reads socket details.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut obj = Obj::new(value, "sockets[]")?;
        Ok(SocketDetails {
            id: obj.string("id", "sockets[].id")?,
            handshake: match obj.take("handshake") {
                Some(h) => Handshake::from_value(h)?,
                None => Handshake::default(),
            },
            rooms: fields::rooms(obj.take("rooms"), "sockets[].rooms")?,
            data: obj.take("data").unwrap_or(Value::Nil),
        })
    }
}

/// socket.io's handshake object (minus `sessionStore`), every field Node user code may read.
#[derive(Clone, Debug, PartialEq)]
pub struct Handshake {
    /// Request headers: `{name: value}` (values are strings, or arrays for repeated headers).
    pub headers: Value,
    /// `Date.toString()` of the connection time, e.g. `Sun Nov 22 2026 02:00:27 GMT+0000 (Coordinated Universal Time)`.
    pub time: String,
    /// Remote address.
    pub address: String,
    /// Whether the request was cross-domain.
    pub xdomain: bool,
    /// Whether the connection is over TLS.
    pub secure: bool,
    /// Connection time, epoch milliseconds.
    pub issued: i64,
    /// Request URL.
    pub url: String,
    /// Query parameters: `{name: value}`.
    pub query: Value,
    /// The `auth` payload of the CONNECT packet.
    pub auth: Value,
    /// Any other keys (e.g. the mongo adapter's `sessionStore`), kept in order.
    pub extra: Vec<(String, Value)>,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake {
            headers: Value::map(),
            time: String::new(),
            address: String::new(),
            xdomain: false,
            secure: false,
            issued: 0,
            url: String::new(),
            query: Value::map(),
            auth: Value::map(),
            extra: Vec::new(),
        }
    }
}

impl Handshake {
    /// The wire value, keys in Node's order.
    pub fn to_value(&self) -> Value {
        let mut entries = vec![
            ("headers".to_owned(), self.headers.clone()),
            ("time".to_owned(), Value::Str(self.time.clone())),
            ("address".to_owned(), Value::Str(self.address.clone())),
            ("xdomain".to_owned(), Value::Bool(self.xdomain)),
            ("secure".to_owned(), Value::Bool(self.secure)),
            ("issued".to_owned(), Value::Int(self.issued)),
            ("url".to_owned(), Value::Str(self.url.clone())),
            ("query".to_owned(), self.query.clone()),
            ("auth".to_owned(), self.auth.clone()),
        ];
        entries.extend(self.extra.iter().cloned());
        Value::Map(entries)
    }

    /// Reads a handshake; missing fields take their defaults.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut obj = Obj::new(value, "handshake")?;
        let d = Handshake::default();
        let string = |v: Option<Value>, field| match v {
            None | Some(Value::Nil) => Ok(String::new()),
            Some(Value::Str(s)) => Ok(s),
            Some(_) => Err(DecodeError::field(field, "a string")),
        };
        Ok(Handshake {
            headers: obj.take("headers").unwrap_or(d.headers),
            time: string(obj.take("time"), "handshake.time")?,
            address: string(obj.take("address"), "handshake.address")?,
            xdomain: obj
                .opt_bool("xdomain", "handshake.xdomain")?
                .unwrap_or(false),
            secure: obj.opt_bool("secure", "handshake.secure")?.unwrap_or(false),
            issued: obj.take("issued").and_then(|v| v.as_i64()).unwrap_or(0),
            url: string(obj.take("url"), "handshake.url")?,
            query: obj.take("query").unwrap_or(d.query),
            auth: obj.take("auth").unwrap_or(d.auth),
            extra: obj.into_entries(),
        })
    }
}
