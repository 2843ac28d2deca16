//! Messages of the classic redis adapter and emitter: the broadcast triple, requests 0-9 and
//! their responses, each in the encoding Node uses (protocol.md §3.2-3.4).

use crate::{
    DecodeError, Limits, Opts, PacketObject, SocketDetails, Value,
    cluster::decode_value,
    fields::{self, Obj},
    json, msgpack,
};

/// A broadcast on `P#N#` / `P#N#<room>#`: the msgpack array `[uid, packet, opts]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassicBroadcast {
    /// Sender uid (6 characters from Node, `"emitter"` from emitters).
    pub uid: String,
    /// The packet; Node sets `nsp` in it.
    pub packet: PacketObject,
    /// Targets and flags.
    pub opts: Opts,
}

impl ClassicBroadcast {
    /// The wire value `[uid, packet, opts]`.
    pub fn to_value(&self) -> Value {
        Value::Array(vec![
            Value::Str(self.uid.clone()),
            self.packet.to_value(),
            self.opts.to_value(),
        ])
    }

    /// msgpack encoding (notepack-identical), written directly: the same bytes as encoding
    /// [`Self::to_value`], without building (and cloning into) the value.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.uid.len());
        msgpack::write_array_len(&mut out, 3);
        msgpack::write_str(&mut out, &self.uid);
        self.packet.write_msgpack(&mut out);
        self.opts.write_msgpack(&mut out);
        out
    }

    /// The sender's uid of a broadcast payload, read from its first bytes without decoding the
    /// rest: a server drops its own broadcasts (which its pattern subscription hands back) before
    /// paying for the whole decode. `None` when the payload does not start as `[uid, ...]` with a
    /// string uid (then decode it to learn why).
    pub fn peek_uid(bytes: &[u8]) -> Option<&str> {
        // an array of 3 (fixarray; array16/32 for an odd encoder), then the uid as a string
        let rest = match bytes {
            [0x93, rest @ ..] => rest,
            [0xdc, 0, 3, rest @ ..] => rest,
            [0xdd, 0, 0, 0, 3, rest @ ..] => rest,
            _ => return None,
        };
        let (len, rest) = match rest {
            [b @ 0xa0..=0xbf, rest @ ..] => (usize::from(b & 0x1f), rest),
            [0xd9, n, rest @ ..] => (usize::from(*n), rest),
            [0xda, a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => return None,
        };
        std::str::from_utf8(rest.get(..len)?).ok()
    }

    /// Decodes a broadcast payload.
    pub fn from_msgpack(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        Self::from_value(msgpack::from_slice(bytes, limits)?)
    }

    /// Reads `[uid, packet, opts]`.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let Value::Array(items) = value else {
            return Err(DecodeError::field(
                "broadcast",
                "an array [uid, packet, opts]",
            ));
        };
        let [uid, packet, opts]: [Value; 3] = items
            .try_into()
            .map_err(|_| DecodeError::field("broadcast", "an array of 3 items"))?;
        let Value::Str(uid) = uid else {
            return Err(DecodeError::field("broadcast[0]", "a uid string"));
        };
        Ok(ClassicBroadcast {
            uid,
            packet: PacketObject::from_value(packet)?,
            opts: Opts::from_value(opts)?,
        })
    }
}

/// The classic protocol's own request numbering (distinct from the cluster protocol's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum RequestType {
    /// 0, legacy: socket ids in rooms.
    Sockets = 0,
    /// 1: allRooms.
    AllRooms = 1,
    /// 2: socketsJoin.
    RemoteJoin = 2,
    /// 3: socketsLeave.
    RemoteLeave = 3,
    /// 4: disconnectSockets.
    RemoteDisconnect = 4,
    /// 5: fetchSockets.
    RemoteFetch = 5,
    /// 6: serverSideEmit (and its ack response).
    ServerSideEmit = 6,
    /// 7: broadcast with acks.
    Broadcast = 7,
    /// 8: response, client count of a broadcast with acks.
    BroadcastClientCount = 8,
    /// 9: response, one client ack.
    BroadcastAck = 9,
}

/// A request on `P-request#N#`: `{uid?, requestId?, type, ...}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassicRequest {
    /// Requester uid; absent in emitter join/leave/disconnect requests.
    pub uid: Option<String>,
    /// Request id, for requests that get answers (and legacy forms).
    pub request_id: Option<String>,
    /// The typed request.
    pub body: RequestBody,
}

/// The typed part of a [`ClassicRequest`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RequestBody {
    /// 0 `{rooms}` (no longer sent by Node 8.x, still answered).
    Sockets {
        /// Rooms to look in.
        rooms: Vec<String>,
    },
    /// 1 (no fields).
    AllRooms,
    /// 2 `{opts, rooms}`: matching sockets join `rooms`.
    RemoteJoin {
        /// Which sockets.
        opts: Opts,
        /// Rooms to join.
        rooms: Vec<String>,
    },
    /// 3 `{opts, rooms}`.
    RemoteLeave {
        /// Which sockets.
        opts: Opts,
        /// Rooms to leave.
        rooms: Vec<String>,
    },
    /// 4 `{opts, close}`.
    RemoteDisconnect {
        /// Which sockets.
        opts: Opts,
        /// Close the connection too.
        close: bool,
    },
    /// 2 legacy `{sid, room}`, answered with `{requestId}`.
    LegacyJoin {
        /// The socket.
        sid: String,
        /// The room.
        room: String,
    },
    /// 3 legacy `{sid, room}`, answered with `{requestId}`.
    LegacyLeave {
        /// The socket.
        sid: String,
        /// The room.
        room: String,
    },
    /// 4 legacy `{sid, close}`, answered with `{requestId}`.
    LegacyDisconnect {
        /// The socket.
        sid: String,
        /// Close the connection too.
        close: bool,
    },
    /// 5 `{opts}`.
    RemoteFetch {
        /// Which sockets.
        opts: Opts,
    },
    /// 6 `{data: [event, ...args]}`.
    ServerSideEmit {
        /// `[event, ...args]`.
        data: Vec<Value>,
    },
    /// 7 `{packet, opts}`, msgpack-encoded.
    Broadcast {
        /// The packet (with `nsp`).
        packet: PacketObject,
        /// Targets and flags (with `timeout`).
        opts: Opts,
    },
}

impl RequestBody {
    /// The request type number.
    pub fn request_type(&self) -> RequestType {
        match self {
            RequestBody::Sockets { .. } => RequestType::Sockets,
            RequestBody::AllRooms => RequestType::AllRooms,
            RequestBody::RemoteJoin { .. } | RequestBody::LegacyJoin { .. } => {
                RequestType::RemoteJoin
            }
            RequestBody::RemoteLeave { .. } | RequestBody::LegacyLeave { .. } => {
                RequestType::RemoteLeave
            }
            RequestBody::RemoteDisconnect { .. } | RequestBody::LegacyDisconnect { .. } => {
                RequestType::RemoteDisconnect
            }
            RequestBody::RemoteFetch { .. } => RequestType::RemoteFetch,
            RequestBody::ServerSideEmit { .. } => RequestType::ServerSideEmit,
            RequestBody::Broadcast { .. } => RequestType::Broadcast,
        }
    }
}

impl ClassicRequest {
    /// The wire value, keys in Node's order.
    pub fn to_value(&self) -> Value {
        let mut e = Vec::with_capacity(6);
        if let Some(uid) = &self.uid {
            e.push(("uid".to_owned(), Value::Str(uid.clone())));
        }
        if let Some(id) = &self.request_id {
            e.push(("requestId".to_owned(), Value::Str(id.clone())));
        }
        e.push((
            "type".to_owned(),
            Value::Int(self.body.request_type() as i64),
        ));
        let mut put = |k: &str, v: Value| e.push((k.to_owned(), v));
        match &self.body {
            RequestBody::Sockets { rooms } => put("rooms", fields::strings(rooms)),
            RequestBody::AllRooms => {}
            RequestBody::RemoteJoin { opts, rooms } | RequestBody::RemoteLeave { opts, rooms } => {
                put("opts", opts.to_value());
                put("rooms", fields::strings(rooms));
            }
            RequestBody::RemoteDisconnect { opts, close } => {
                put("opts", opts.to_value());
                put("close", Value::Bool(*close));
            }
            RequestBody::LegacyJoin { sid, room } | RequestBody::LegacyLeave { sid, room } => {
                put("sid", Value::Str(sid.clone()));
                put("room", Value::Str(room.clone()));
            }
            RequestBody::LegacyDisconnect { sid, close } => {
                put("sid", Value::Str(sid.clone()));
                put("close", Value::Bool(*close));
            }
            RequestBody::RemoteFetch { opts } => put("opts", opts.to_value()),
            RequestBody::ServerSideEmit { data } => put("data", Value::Array(data.clone())),
            RequestBody::Broadcast { packet, opts } => {
                put("packet", packet.to_value());
                put("opts", opts.to_value());
            }
        }
        Value::Map(e)
    }

    /// Encodes as Node does: msgpack for a broadcast with acks (type 7), JSON otherwise.
    pub fn encode(&self) -> Vec<u8> {
        let value = self.to_value();
        if matches!(self.body, RequestBody::Broadcast { .. }) {
            msgpack::to_vec(&value)
        } else {
            json::to_vec(&value)
        }
    }

    /// Decodes a request (JSON if the first byte is `{`, else msgpack).
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        Self::from_value(decode_value(bytes, limits)?)
    }

    /// Reads a request value.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut o = Obj::new(value, "request")?;
        let uid = o.opt_string("uid", "uid")?;
        let request_id = o.opt_string("requestId", "requestId")?;
        let code = o.int("type", "type")?;
        let opts = |o: &mut Obj| o.take("opts").map_or(Ok(Opts::default()), Opts::from_value);
        let legacy = !o.has("opts") && o.has("sid");
        let body = match code {
            0 => RequestBody::Sockets {
                rooms: fields::rooms(o.take("rooms"), "rooms")?,
            },
            1 => RequestBody::AllRooms,
            2 | 3 if legacy => {
                let sid = o.string("sid", "sid")?;
                let room = fields::room(o.req("room", "room")?, "room")?;
                if code == 2 {
                    RequestBody::LegacyJoin { sid, room }
                } else {
                    RequestBody::LegacyLeave { sid, room }
                }
            }
            2 | 3 => {
                let opts = opts(&mut o)?;
                let rooms = fields::rooms(o.take("rooms"), "rooms")?;
                if code == 2 {
                    RequestBody::RemoteJoin { opts, rooms }
                } else {
                    RequestBody::RemoteLeave { opts, rooms }
                }
            }
            4 if legacy => RequestBody::LegacyDisconnect {
                sid: o.string("sid", "sid")?,
                close: o.opt_bool("close", "close")?.unwrap_or(false),
            },
            4 => RequestBody::RemoteDisconnect {
                opts: opts(&mut o)?,
                close: o.opt_bool("close", "close")?.unwrap_or(false),
            },
            5 => RequestBody::RemoteFetch {
                opts: opts(&mut o)?,
            },
            6 => RequestBody::ServerSideEmit {
                data: o.array("data", "data")?,
            },
            7 => RequestBody::Broadcast {
                packet: PacketObject::from_value(o.req("packet", "packet")?)?,
                opts: opts(&mut o)?,
            },
            other => return Err(DecodeError::UnknownType(other)),
        };
        Ok(ClassicRequest {
            uid,
            request_id,
            body,
        })
    }
}

/// A response on `P-response#N#[uid#]`; matched to its request by `requestId` only.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassicResponse {
    /// The request id answered.
    pub request_id: String,
    /// The typed answer.
    pub body: ResponseBody,
}

/// The typed part of a [`ClassicResponse`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ResponseBody {
    /// Answer to 0: `{requestId, sockets: [sid]}`.
    SocketIds(Vec<String>),
    /// Answer to 5: `{requestId, sockets: [SocketDetails]}`.
    Sockets(Vec<SocketDetails>),
    /// Answer to 1: `{requestId, rooms}`.
    Rooms(Vec<String>),
    /// Answer to a legacy join/leave/disconnect: `{requestId}`.
    Done,
    /// Answer to 6 with ack: `{type: 6, requestId, data}`.
    ServerSideEmit(Value),
    /// Part of the answer to 7: `{type: 8, requestId, clientCount}`.
    ClientCount(u64),
    /// Part of the answer to 7: `{type: 9, requestId, packet}`, msgpack-encoded.
    Ack(Value),
}

impl ClassicResponse {
    /// The wire value, keys in Node's order.
    pub fn to_value(&self) -> Value {
        let id = ("requestId".to_owned(), Value::Str(self.request_id.clone()));
        let ty = |t: i64| ("type".to_owned(), Value::Int(t));
        let entries = match &self.body {
            ResponseBody::SocketIds(ids) => vec![id, ("sockets".to_owned(), fields::strings(ids))],
            ResponseBody::Sockets(s) => vec![
                id,
                (
                    "sockets".to_owned(),
                    Value::Array(s.iter().map(SocketDetails::to_value).collect()),
                ),
            ],
            ResponseBody::Rooms(r) => vec![id, ("rooms".to_owned(), fields::strings(r))],
            ResponseBody::Done => vec![id],
            ResponseBody::ServerSideEmit(v) => vec![ty(6), id, ("data".to_owned(), v.clone())],
            ResponseBody::ClientCount(c) => vec![
                ty(8),
                id,
                (
                    "clientCount".to_owned(),
                    Value::Int(i64::try_from(*c).unwrap_or(i64::MAX)),
                ),
            ],
            ResponseBody::Ack(v) => vec![ty(9), id, ("packet".to_owned(), v.clone())],
        };
        Value::Map(entries)
    }

    /// Encodes as Node does: msgpack for an ack (type 9), JSON otherwise.
    pub fn encode(&self) -> Vec<u8> {
        let value = self.to_value();
        if matches!(self.body, ResponseBody::Ack(_)) {
            msgpack::to_vec(&value)
        } else {
            json::to_vec(&value)
        }
    }

    /// Decodes a response (JSON if the first byte is `{`, else msgpack).
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        Self::from_value(decode_value(bytes, limits)?)
    }

    /// Reads a response value, recognising its kind by its `type` or its keys.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut o = Obj::new(value, "response")?;
        let request_id = o.string("requestId", "requestId")?;
        let body = match o.take("type").map(|t| t.as_i64()) {
            Some(Some(6)) => ResponseBody::ServerSideEmit(o.take("data").unwrap_or(Value::Nil)),
            Some(Some(8)) => ResponseBody::ClientCount(
                u64::try_from(o.int("clientCount", "clientCount")?)
                    .map_err(|_| DecodeError::field("clientCount", "a count"))?,
            ),
            Some(Some(9)) => ResponseBody::Ack(o.take("packet").unwrap_or(Value::Nil)),
            Some(Some(other)) => return Err(DecodeError::UnknownType(other)),
            Some(None) => return Err(DecodeError::field("type", "an integer")),
            None => {
                if o.has("rooms") {
                    ResponseBody::Rooms(fields::rooms(o.take("rooms"), "rooms")?)
                } else if o.has("sockets") {
                    let sockets = o.array("sockets", "sockets")?;
                    if sockets.first().is_some_and(|s| s.as_str().is_some()) {
                        ResponseBody::SocketIds(
                            sockets
                                .into_iter()
                                .map(|s| fields::room(s, "sockets[]"))
                                .collect::<Result<_, _>>()?,
                        )
                    } else {
                        ResponseBody::Sockets(
                            sockets
                                .into_iter()
                                .map(SocketDetails::from_value)
                                .collect::<Result<_, _>>()?,
                        )
                    }
                } else {
                    ResponseBody::Done
                }
            }
        };
        Ok(ClassicResponse { request_id, body })
    }
}
