//! The emitter: an immutable operator, as in Node (`emitter.to("a")` returns a new one).

use bytes::Bytes;
use fred::{clients::Client, interfaces::PubsubInterface, types::Value as RedisValue};
use serde::Serialize;
use switchboard_wire::{
    Flags, Opts, OptsOrder, PacketObject, Value, convert,
    redis::{ClassicBroadcast, ClassicChannels, ClassicRequest, RequestBody},
};

use crate::EmitterError;

/// Events a Socket.IO server reserves: `emit` refuses them, as Node's emitter does.
const RESERVED: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Emits to a Socket.IO cluster through redis with the classic protocol of
/// `@socket.io/redis-emitter` 5: it reaches Node servers (`@socket.io/redis-adapter` 8,
/// `createAdapter`) and Switchboard servers in classic mode alike.
#[derive(Clone, Debug)]
pub struct Emitter {
    client: Client,
    key: String,
    nsp: String,
    rooms: Vec<String>,
    except: Vec<String>,
    flags: Flags,
}

/// A payload and where to publish it.
#[derive(Debug, PartialEq, Eq)]
pub struct Publication {
    /// The redis channel.
    pub channel: String,
    /// The bytes.
    pub payload: Bytes,
}

fn normalize(nsp: &str) -> String {
    if nsp.starts_with('/') {
        nsp.to_owned()
    } else {
        format!("/{nsp}")
    }
}

impl Emitter {
    /// An emitter for namespace `/` with Node's default key `socket.io`. The client must be
    /// connected (`client.init().await`).
    pub fn new(client: Client) -> Self {
        Emitter {
            client,
            key: "socket.io".into(),
            nsp: "/".into(),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Flags::default(),
        }
    }

    /// The key prefix, as the servers' `key` option (default `socket.io`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// The emitter of namespace `nsp` (`admin` and `/admin` are the same), with no rooms or flags.
    pub fn of(&self, nsp: &str) -> Self {
        Emitter {
            nsp: normalize(nsp),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Flags::default(),
            ..self.clone()
        }
    }

    /// Targets a room (several calls: any of the rooms).
    pub fn to(&self, room: impl Into<String>) -> Self {
        let mut this = self.clone();
        let room = room.into();
        if !this.rooms.contains(&room) {
            this.rooms.push(room);
        }
        this
    }

    /// Same as [`to`](Self::to) (Node's `in`).
    pub fn in_(&self, room: impl Into<String>) -> Self {
        self.to(room)
    }

    /// Excludes the members of a room.
    pub fn except(&self, room: impl Into<String>) -> Self {
        let mut this = self.clone();
        let room = room.into();
        if !this.except.contains(&room) {
            this.except.push(room);
        }
        this
    }

    /// The event may be lost if a client is not ready.
    pub fn volatile(&self) -> Self {
        let mut this = self.clone();
        this.flags.set("volatile", Value::Bool(true));
        this
    }

    /// Whether to compress the event.
    pub fn compress(&self, compress: bool) -> Self {
        let mut this = self.clone();
        this.flags.set("compress", Value::Bool(compress));
        this
    }

    fn channels(&self) -> ClassicChannels {
        ClassicChannels::new(&self.key, &self.nsp)
    }

    fn target(&self) -> Opts {
        // join/leave/disconnect requests: `{rooms, except}`, no flags
        Opts {
            rooms: self.rooms.clone(),
            except: self.except.clone(),
            flags: None,
            order: OptsOrder::RoomsExceptFlags,
        }
    }

    /// What [`emit`](Self::emit) publishes.
    pub fn emit_publication(
        &self,
        event: &str,
        args: Vec<Value>,
    ) -> Result<Publication, EmitterError> {
        if RESERVED.contains(&event) {
            return Err(EmitterError::Reserved(event.to_owned()));
        }
        let mut data = vec![Value::from(event)];
        data.extend(args);
        let broadcast = ClassicBroadcast {
            uid: switchboard_wire::ids::EMITTER_UID.into(),
            packet: PacketObject {
                nsp: Some(self.nsp.clone()),
                ..PacketObject::event(data)
            },
            opts: Opts {
                rooms: self.rooms.clone(),
                except: self.except.clone(),
                flags: Some(self.flags.clone()),
                order: OptsOrder::RoomsFlagsExcept,
            },
        };
        Ok(Publication {
            channel: self.channels().for_rooms(&self.rooms),
            payload: Bytes::from(broadcast.to_msgpack()),
        })
    }

    fn request(&self, uid: Option<&str>, body: RequestBody) -> Publication {
        let request = ClassicRequest {
            uid: uid.map(str::to_owned),
            request_id: None,
            body,
        };
        Publication {
            channel: self.channels().request().to_owned(),
            payload: Bytes::from(request.encode()),
        }
    }

    /// What [`sockets_join`](Self::sockets_join) publishes.
    pub fn join_publication(&self, rooms: &[&str]) -> Publication {
        let rooms = rooms.iter().map(|r| r.to_string()).collect();
        self.request(
            None,
            RequestBody::RemoteJoin {
                opts: self.target(),
                rooms,
            },
        )
    }

    /// What [`sockets_leave`](Self::sockets_leave) publishes.
    pub fn leave_publication(&self, rooms: &[&str]) -> Publication {
        let rooms = rooms.iter().map(|r| r.to_string()).collect();
        self.request(
            None,
            RequestBody::RemoteLeave {
                opts: self.target(),
                rooms,
            },
        )
    }

    /// What [`disconnect_sockets`](Self::disconnect_sockets) publishes.
    pub fn disconnect_publication(&self, close: bool) -> Publication {
        self.request(
            None,
            RequestBody::RemoteDisconnect {
                opts: self.target(),
                close,
            },
        )
    }

    /// What [`server_side_emit`](Self::server_side_emit) publishes.
    pub fn server_side_publication(&self, event: &str, args: Vec<Value>) -> Publication {
        let mut data = vec![Value::from(event)];
        data.extend(args);
        self.request(
            Some(switchboard_wire::ids::EMITTER_UID),
            RequestBody::ServerSideEmit { data },
        )
    }

    async fn publish(&self, p: Publication) -> Result<(), EmitterError> {
        self.client
            .publish::<RedisValue, _, _>(p.channel, p.payload)
            .await?;
        Ok(())
    }

    /// Emits `event` with `args` (a tuple or `Vec` for several arguments, `()` for none; binary
    /// such as `bytes::Bytes` stays binary) to the targeted clients of every server.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<(), EmitterError> {
        self.emit_values(event, convert::to_args(args)?).await
    }

    /// Emits `event` with wire values.
    pub async fn emit_values(&self, event: &str, args: Vec<Value>) -> Result<(), EmitterError> {
        let p = self.emit_publication(event, args)?;
        self.publish(p).await
    }

    /// The targeted sockets join `rooms`.
    pub async fn sockets_join(&self, rooms: &[&str]) -> Result<(), EmitterError> {
        self.publish(self.join_publication(rooms)).await
    }

    /// The targeted sockets leave `rooms`.
    pub async fn sockets_leave(&self, rooms: &[&str]) -> Result<(), EmitterError> {
        self.publish(self.leave_publication(rooms)).await
    }

    /// The targeted sockets are disconnected (`close`: close the underlying connection too).
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitterError> {
        self.publish(self.disconnect_publication(close)).await
    }

    /// Emits `event` to the servers themselves (no answer: emitters cannot receive).
    pub async fn server_side_emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<(), EmitterError> {
        let p = self.server_side_publication(event, convert::to_args(args)?);
        self.publish(p).await
    }
}
