//! The cluster protocol of socket.io-adapter's `ClusterAdapter` (protocol.md §2): message types 1-13 in
//! the envelope `{type, data, uid, nsp}`, as JSON or msgpack.
//!
//! Used by the sharded redis adapter, the mesh adapter, the Node cluster adapter and (with
//! [`Dialect::Mongo`], where 13 is SESSION) the mongo adapter.

use crate::{
    DecodeError, Limits, Opts, PacketObject, SocketDetails, Value,
    fields::{self, Obj},
    json, msgpack,
};

/// The numeric message types of the cluster protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageType {
    /// A node starts (asks the others to answer with HEARTBEAT).
    InitialHeartbeat = 1,
    /// A node is alive.
    Heartbeat = 2,
    /// A broadcast (with a request id when acks are wanted).
    Broadcast = 3,
    /// Matching sockets join rooms.
    SocketsJoin = 4,
    /// Matching sockets leave rooms.
    SocketsLeave = 5,
    /// Matching sockets are disconnected.
    DisconnectSockets = 6,
    /// fetchSockets request.
    FetchSockets = 7,
    /// fetchSockets answer.
    FetchSocketsResponse = 8,
    /// serverSideEmit (a request when it has a request id).
    ServerSideEmit = 9,
    /// serverSideEmit answer.
    ServerSideEmitResponse = 10,
    /// How many clients a broadcast with acks reached on one node.
    BroadcastClientCount = 11,
    /// One client's ack.
    BroadcastAck = 12,
    /// A node closes (cluster dialect).
    AdapterClose = 13,
    /// A connection-state-recovery session (mongo dialect's 13).
    Session = 14,
}

impl MessageType {
    /// The number on the wire (SESSION is 13 in the mongo dialect).
    pub fn code(self) -> u8 {
        match self {
            MessageType::Session => 13,
            t => t as u8,
        }
    }

    /// Snake-case name, as used in metric labels (`broadcast_client_count`).
    pub fn name(self) -> &'static str {
        match self {
            MessageType::InitialHeartbeat => "initial_heartbeat",
            MessageType::Heartbeat => "heartbeat",
            MessageType::Broadcast => "broadcast",
            MessageType::SocketsJoin => "sockets_join",
            MessageType::SocketsLeave => "sockets_leave",
            MessageType::DisconnectSockets => "disconnect_sockets",
            MessageType::FetchSockets => "fetch_sockets",
            MessageType::FetchSocketsResponse => "fetch_sockets_response",
            MessageType::ServerSideEmit => "server_side_emit",
            MessageType::ServerSideEmitResponse => "server_side_emit_response",
            MessageType::BroadcastClientCount => "broadcast_client_count",
            MessageType::BroadcastAck => "broadcast_ack",
            MessageType::AdapterClose => "adapter_close",
            MessageType::Session => "session",
        }
    }

    /// Whether this type goes to the requester only (8, 10, 11, 12).
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageType::FetchSocketsResponse
                | MessageType::ServerSideEmitResponse
                | MessageType::BroadcastClientCount
                | MessageType::BroadcastAck
        )
    }

    /// Whether this type may carry binary (3, 8, 9, 10, 12): the sharded and streams adapters
    /// switch to msgpack for those when they do.
    pub fn may_carry_binary(self) -> bool {
        matches!(
            self,
            MessageType::Broadcast
                | MessageType::FetchSocketsResponse
                | MessageType::ServerSideEmit
                | MessageType::ServerSideEmitResponse
                | MessageType::BroadcastAck
        )
    }
}

/// Which numbering of type 13 a peer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// socket.io-adapter's `ClusterAdapter`: 13 is ADAPTER_CLOSE.
    #[default]
    Cluster,
    /// @socket.io/mongo-adapter: 13 is SESSION.
    Mongo,
}

/// One cluster-protocol message or response.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterMessage {
    /// Sender's server uid (`"emitter"` for emitters).
    pub uid: String,
    /// Namespace, e.g. `/` or `/admin`.
    pub nsp: String,
    /// The typed payload.
    pub body: Body,
}

/// The per-type payload (`data`) of a [`ClusterMessage`] (protocol.md §2.1).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Body {
    /// 1: no data.
    InitialHeartbeat,
    /// 2: no data.
    Heartbeat,
    /// 3: `{packet, [requestId], opts}`.
    Broadcast {
        /// The packet object.
        packet: PacketObject,
        /// Present when acks are wanted.
        request_id: Option<String>,
        /// Targets and flags.
        opts: Opts,
    },
    /// 4: `{opts, rooms}`.
    SocketsJoin {
        /// Which sockets.
        opts: Opts,
        /// Rooms to join.
        rooms: Vec<String>,
    },
    /// 5: `{opts, rooms}`.
    SocketsLeave {
        /// Which sockets.
        opts: Opts,
        /// Rooms to leave.
        rooms: Vec<String>,
    },
    /// 6: `{opts, close}`; `close` may be absent (false).
    DisconnectSockets {
        /// Which sockets.
        opts: Opts,
        /// Close the underlying connection too; `None` when the key was absent.
        close: Option<bool>,
    },
    /// 7: `{opts, requestId}`.
    FetchSockets {
        /// Which sockets.
        opts: Opts,
        /// Request id.
        request_id: String,
    },
    /// 8: `{requestId, sockets}`.
    FetchSocketsResponse {
        /// Request id.
        request_id: String,
        /// Matching local sockets of the responder.
        sockets: Vec<SocketDetails>,
    },
    /// 9: `{[requestId], packet: [event, ...args]}`.
    ServerSideEmit {
        /// Present when an answer is expected.
        request_id: Option<String>,
        /// `[event, ...args]`.
        packet: Vec<Value>,
    },
    /// 10: `{requestId, packet}` (the first callback argument).
    ServerSideEmitResponse {
        /// Request id.
        request_id: String,
        /// The answer.
        packet: Value,
    },
    /// 11: `{requestId, clientCount}`.
    BroadcastClientCount {
        /// Request id.
        request_id: String,
        /// How many local clients the broadcast reached.
        client_count: u64,
    },
    /// 12: `{requestId, packet}` (the first ack argument).
    BroadcastAck {
        /// Request id.
        request_id: String,
        /// The ack value.
        packet: Value,
    },
    /// 13 (cluster dialect): no data.
    AdapterClose,
    /// 13 (mongo dialect): a session `{sid, pid, rooms, data}` or tombstone `{pid, tombstone}`.
    Session(Value),
}

impl Body {
    /// The message type of this payload.
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::InitialHeartbeat => MessageType::InitialHeartbeat,
            Body::Heartbeat => MessageType::Heartbeat,
            Body::Broadcast { .. } => MessageType::Broadcast,
            Body::SocketsJoin { .. } => MessageType::SocketsJoin,
            Body::SocketsLeave { .. } => MessageType::SocketsLeave,
            Body::DisconnectSockets { .. } => MessageType::DisconnectSockets,
            Body::FetchSockets { .. } => MessageType::FetchSockets,
            Body::FetchSocketsResponse { .. } => MessageType::FetchSocketsResponse,
            Body::ServerSideEmit { .. } => MessageType::ServerSideEmit,
            Body::ServerSideEmitResponse { .. } => MessageType::ServerSideEmitResponse,
            Body::BroadcastClientCount { .. } => MessageType::BroadcastClientCount,
            Body::BroadcastAck { .. } => MessageType::BroadcastAck,
            Body::AdapterClose => MessageType::AdapterClose,
            Body::Session(_) => MessageType::Session,
        }
    }

    /// The request id, for requests and responses that carry one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Body::Broadcast { request_id, .. } | Body::ServerSideEmit { request_id, .. } => {
                request_id.as_deref()
            }
            Body::FetchSockets { request_id, .. }
            | Body::FetchSocketsResponse { request_id, .. }
            | Body::ServerSideEmitResponse { request_id, .. }
            | Body::BroadcastClientCount { request_id, .. }
            | Body::BroadcastAck { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// The `data` value, `None` for types without data.
    pub fn data_value(&self) -> Option<Value> {
        let s = |v: &String| Value::Str(v.clone());
        let entries = match self {
            Body::InitialHeartbeat | Body::Heartbeat | Body::AdapterClose => return None,
            Body::Session(v) => return Some(v.clone()),
            Body::Broadcast {
                packet,
                request_id,
                opts,
            } => {
                let mut e = vec![("packet".to_owned(), packet.to_value())];
                if let Some(id) = request_id {
                    e.push(("requestId".to_owned(), s(id)));
                }
                e.push(("opts".to_owned(), opts.to_value()));
                e
            }
            Body::SocketsJoin { opts, rooms } | Body::SocketsLeave { opts, rooms } => vec![
                ("opts".to_owned(), opts.to_value()),
                ("rooms".to_owned(), fields::strings(rooms)),
            ],
            Body::DisconnectSockets { opts, close } => {
                let mut e = vec![("opts".to_owned(), opts.to_value())];
                if let Some(close) = close {
                    e.push(("close".to_owned(), Value::Bool(*close)));
                }
                e
            }
            Body::FetchSockets { opts, request_id } => vec![
                ("opts".to_owned(), opts.to_value()),
                ("requestId".to_owned(), s(request_id)),
            ],
            Body::FetchSocketsResponse {
                request_id,
                sockets,
            } => vec![
                ("requestId".to_owned(), s(request_id)),
                (
                    "sockets".to_owned(),
                    Value::Array(sockets.iter().map(SocketDetails::to_value).collect()),
                ),
            ],
            Body::ServerSideEmit { request_id, packet } => {
                let mut e = Vec::with_capacity(2);
                if let Some(id) = request_id {
                    e.push(("requestId".to_owned(), s(id)));
                }
                e.push(("packet".to_owned(), Value::Array(packet.clone())));
                e
            }
            Body::ServerSideEmitResponse { request_id, packet }
            | Body::BroadcastAck { request_id, packet } => vec![
                ("requestId".to_owned(), s(request_id)),
                ("packet".to_owned(), packet.clone()),
            ],
            Body::BroadcastClientCount {
                request_id,
                client_count,
            } => vec![
                ("requestId".to_owned(), s(request_id)),
                (
                    "clientCount".to_owned(),
                    Value::Int(i64::try_from(*client_count).unwrap_or(i64::MAX)),
                ),
            ],
        };
        Some(Value::Map(entries))
    }

    /// Reads the `data` of a message of type `code`.
    pub fn from_data(
        code: i64,
        data: Option<Value>,
        dialect: Dialect,
    ) -> Result<Self, DecodeError> {
        let mut d = match (code, data) {
            (1, _) => return Ok(Body::InitialHeartbeat),
            (2, _) => return Ok(Body::Heartbeat),
            (13, _) if dialect == Dialect::Cluster => return Ok(Body::AdapterClose),
            (13, Some(v)) => return Ok(Body::Session(v)),
            (3..=13, Some(v)) => Obj::new(v, "data")?,
            (3..=13, None) => return Err(DecodeError::field("data", "a map")),
            (other, _) => return Err(DecodeError::UnknownType(other)),
        };
        let opts = |d: &mut Obj| d.take("opts").map_or(Ok(Opts::default()), Opts::from_value);
        Ok(match code {
            3 => Body::Broadcast {
                packet: PacketObject::from_value(d.req("packet", "data.packet")?)?,
                request_id: d.opt_string("requestId", "data.requestId")?,
                opts: opts(&mut d)?,
            },
            4 | 5 => {
                let opts = opts(&mut d)?;
                let rooms = fields::rooms(d.take("rooms"), "data.rooms")?;
                if code == 4 {
                    Body::SocketsJoin { opts, rooms }
                } else {
                    Body::SocketsLeave { opts, rooms }
                }
            }
            6 => Body::DisconnectSockets {
                opts: opts(&mut d)?,
                close: d.opt_bool("close", "data.close")?,
            },
            7 => Body::FetchSockets {
                opts: opts(&mut d)?,
                request_id: d.string("requestId", "data.requestId")?,
            },
            8 => Body::FetchSocketsResponse {
                request_id: d.string("requestId", "data.requestId")?,
                sockets: d
                    .array("sockets", "data.sockets")?
                    .into_iter()
                    .map(SocketDetails::from_value)
                    .collect::<Result<_, _>>()?,
            },
            9 => Body::ServerSideEmit {
                request_id: d.opt_string("requestId", "data.requestId")?,
                packet: d.array("packet", "data.packet")?,
            },
            10 => Body::ServerSideEmitResponse {
                request_id: d.string("requestId", "data.requestId")?,
                packet: d.take("packet").unwrap_or(Value::Nil),
            },
            11 => Body::BroadcastClientCount {
                request_id: d.string("requestId", "data.requestId")?,
                client_count: d.int("clientCount", "data.clientCount").and_then(|c| {
                    u64::try_from(c).map_err(|_| DecodeError::field("data.clientCount", "a count"))
                })?,
            },
            // 12; a missing packet is an `undefined` ack argument that notepack dropped.
            _ => Body::BroadcastAck {
                request_id: d.string("requestId", "data.requestId")?,
                packet: d.take("packet").unwrap_or(Value::Nil),
            },
        })
    }
}

impl ClusterMessage {
    /// A message from `uid` on namespace `nsp`.
    pub fn new(uid: impl Into<String>, nsp: impl Into<String>, body: Body) -> Self {
        ClusterMessage {
            uid: uid.into(),
            nsp: nsp.into(),
            body,
        }
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        self.body.message_type()
    }

    /// The envelope as a value: `{type, data?, uid, nsp}`.
    pub fn to_value(&self) -> Value {
        let mut entries = Vec::with_capacity(4);
        entries.push((
            "type".to_owned(),
            Value::Int(i64::from(self.message_type().code())),
        ));
        if let Some(data) = self.body.data_value() {
            entries.push(("data".to_owned(), data));
        }
        entries.push(("uid".to_owned(), Value::Str(self.uid.clone())));
        entries.push(("nsp".to_owned(), Value::Str(self.nsp.clone())));
        Value::Map(entries)
    }

    /// Reads an envelope; keys other than `type`, `data`, `uid`, `nsp` are ignored.
    pub fn from_value(value: Value, dialect: Dialect) -> Result<Self, DecodeError> {
        let mut obj = Obj::new(value, "message")?;
        let code = obj.int("type", "type")?;
        let uid = obj.string("uid", "uid")?;
        let nsp = obj.string("nsp", "nsp")?;
        let body = Body::from_data(code, obj.take("data"), dialect)?;
        Ok(ClusterMessage { uid, nsp, body })
    }

    /// JSON encoding (binary becomes `{"type":"Buffer",...}`, as in Node).
    pub fn to_json(&self) -> Vec<u8> {
        json::to_vec(&self.to_value())
    }

    /// msgpack encoding.
    pub fn to_msgpack(&self) -> Vec<u8> {
        msgpack::to_vec(&self.to_value())
    }

    /// The sharded redis / redis streams rule: JSON, unless the type may carry binary and does.
    pub fn to_json_unless_binary(&self) -> Vec<u8> {
        let value = self.to_value();
        let binary = self.message_type().may_carry_binary()
            && value.get("data").is_some_and(Value::has_binary);
        if binary {
            msgpack::to_vec(&value)
        } else {
            json::to_vec(&value)
        }
    }

    /// Decodes JSON or msgpack by the first byte (`{` is JSON), as Node receivers do.
    pub fn decode(bytes: &[u8], dialect: Dialect, limits: &Limits) -> Result<Self, DecodeError> {
        let value = decode_value(bytes, limits)?;
        Self::from_value(value, dialect)
    }
}

/// The first-byte rule of spec A.4: `{` (0x7b) is JSON, anything else msgpack.
pub fn decode_value(bytes: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    match bytes.first() {
        None => Err(DecodeError::Empty),
        Some(b'{') => json::from_slice(bytes, limits),
        Some(_) => msgpack::from_slice(bytes, limits),
    }
}
