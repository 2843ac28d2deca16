//! socket.io-mesh-adapter 2.x wire formats (protocol.md §8): discovery messages and peer frames.
//!
//! Discovery messages are msgpack maps. Peer frames are one kind byte (0 = Hello, 1 = Mesh)
//! followed by msgpack: a Hello map, or one cluster-protocol message.

use crate::{ClusterMessage, DecodeError, Dialect, Limits, Value, fields::Obj, msgpack};

/// One server in a discovery roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The server's uid (one per process).
    pub server_id: String,
    /// Its advertised WebSocket address, e.g. `ws://10.0.0.1:4000`.
    pub address: String,
}

/// A message between a pod and the discovery service.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryMessage {
    /// Pod → service, on every (re)connect: `{type: "register", serverId, address, [token]}`.
    Register {
        /// The pod's uid.
        server_id: String,
        /// The pod's WebSocket address.
        address: String,
        /// Shared secret, when the service requires one.
        token: Option<String>,
    },
    /// Service → pods: `{type: "update", servers}`, the full roster including the receiver.
    Update {
        /// Every registered server.
        servers: Vec<PeerInfo>,
    },
}

impl DiscoveryMessage {
    /// The wire value.
    pub fn to_value(&self) -> Value {
        let s = |v: &str| Value::Str(v.to_owned());
        match self {
            DiscoveryMessage::Register {
                server_id,
                address,
                token,
            } => {
                let mut e = vec![
                    ("type".to_owned(), s("register")),
                    ("serverId".to_owned(), s(server_id)),
                    ("address".to_owned(), s(address)),
                ];
                if let Some(t) = token {
                    e.push(("token".to_owned(), s(t)));
                }
                Value::Map(e)
            }
            DiscoveryMessage::Update { servers } => Value::Map(vec![
                ("type".to_owned(), s("update")),
                (
                    "servers".to_owned(),
                    Value::Array(
                        servers
                            .iter()
                            .map(|p| {
                                Value::Map(vec![
                                    ("serverId".to_owned(), s(&p.server_id)),
                                    ("address".to_owned(), s(&p.address)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ]),
        }
    }

    /// msgpack encoding.
    pub fn to_msgpack(&self) -> Vec<u8> {
        msgpack::to_vec(&self.to_value())
    }

    /// Decodes a discovery message; another `type` is [`DecodeError::Field`].
    pub fn from_msgpack(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let mut o = Obj::new(msgpack::from_slice(bytes, limits)?, "discovery")?;
        match o.string("type", "type")?.as_str() {
            "register" => Ok(DiscoveryMessage::Register {
                server_id: o.string("serverId", "serverId")?,
                address: o.string("address", "address")?,
                token: o.opt_string("token", "token")?,
            }),
            "update" => Ok(DiscoveryMessage::Update {
                servers: o
                    .array("servers", "servers")?
                    .into_iter()
                    .map(|p| {
                        let mut p = Obj::new(p, "servers[]")?;
                        Ok(PeerInfo {
                            server_id: p.string("serverId", "servers[].serverId")?,
                            address: p.string("address", "servers[].address")?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?,
            }),
            _ => Err(DecodeError::field("type", "\"register\" or \"update\"")),
        }
    }
}

/// The first byte of a peer frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// The initiator's handshake.
    Hello = 0,
    /// A cluster-protocol message.
    Mesh = 1,
}

/// The initiator's handshake: `{uid, address, [token]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The initiator's uid.
    pub uid: String,
    /// The initiator's advertised address.
    pub address: String,
    /// Shared secret, when the acceptor requires one.
    pub token: Option<String>,
}

/// A decoded peer frame.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// A Hello.
    Hello(Hello),
    /// A cluster message.
    Mesh(ClusterMessage),
    /// A frame of another kind (logged and ignored by Node).
    Unknown(u8),
}

impl Hello {
    /// The whole frame: `0x00` + msgpack.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut e = vec![
            ("uid".to_owned(), Value::Str(self.uid.clone())),
            ("address".to_owned(), Value::Str(self.address.clone())),
        ];
        if let Some(t) = &self.token {
            e.push(("token".to_owned(), Value::Str(t.clone())));
        }
        let mut out = vec![FrameKind::Hello as u8];
        msgpack::write_value(&mut out, &Value::Map(e));
        out
    }
}

/// The whole frame for a cluster message: `0x01` + msgpack.
pub fn mesh_frame(message: &ClusterMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(FrameKind::Mesh as u8);
    msgpack::write_value(&mut out, &message.to_value());
    out
}

/// Decodes a peer frame (at least 2 bytes: kind + payload).
pub fn decode_frame(bytes: &[u8], limits: &Limits) -> Result<Frame, DecodeError> {
    let (&kind, payload) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if payload.is_empty() {
        return Err(DecodeError::Truncated);
    }
    match kind {
        0 => {
            let mut o = Obj::new(msgpack::from_slice(payload, limits)?, "hello")?;
            Ok(Frame::Hello(Hello {
                uid: o.string("uid", "uid")?,
                address: o.opt_string("address", "address")?.unwrap_or_default(),
                token: o.opt_string("token", "token")?,
            }))
        }
        1 => Ok(Frame::Mesh(ClusterMessage::from_value(
            msgpack::from_slice(payload, limits)?,
            Dialect::Cluster,
        )?)),
        other => Ok(Frame::Unknown(other)),
    }
}
