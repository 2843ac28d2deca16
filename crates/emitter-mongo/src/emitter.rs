//! The emitter: an immutable operator, as in Node (`emitter.to("a")` returns a new one).

use mongodb::{
    Collection,
    bson::{Document, RawDocumentBuf},
};
use serde::Serialize;
use switchboard_wire::{
    Body, ClusterMessage, Flags, Opts, OptsOrder, PacketObject, Timestamp, Value, convert, mongo,
};

use crate::EmitterError;

/// MongoDB's largest document.
pub const MAX_DOCUMENT_SIZE: usize = 16 * 1024 * 1024;

/// Events a Socket.IO server reserves: `emit` refuses them, as Node's emitter does.
const RESERVED: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Emits to a Socket.IO cluster through MongoDB with the documents of `@socket.io/mongo-emitter`
/// 0.2: it reaches Node servers (`@socket.io/mongo-adapter` 0.4) and Switchboard servers
/// (`switchboard-adapter-mongo`) on the same collection alike.
#[derive(Clone, Debug)]
pub struct Emitter {
    collection: Collection<Document>,
    add_created_at_field: bool,
    nsp: String,
    rooms: Vec<String>,
    except: Vec<String>,
    flags: Flags,
}

fn normalize(nsp: &str) -> String {
    if nsp.starts_with('/') {
        nsp.to_owned()
    } else {
        format!("/{nsp}")
    }
}

/// Now, for `createdAt`.
fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(ms)
}

impl Emitter {
    /// An emitter for namespace `/` on the collection the servers use (Node's
    /// `new Emitter(collection)`).
    pub fn new(collection: Collection<Document>) -> Self {
        Emitter {
            collection,
            add_created_at_field: false,
            nsp: "/".into(),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Flags::default(),
        }
    }

    /// Node's `addCreatedAtField`: a `createdAt` date on every document, for a collection with a
    /// TTL index (without it the TTL monitor never removes the emitter's documents). Default false.
    pub fn add_created_at_field(mut self, yes: bool) -> Self {
        self.add_created_at_field = yes;
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

    fn target(&self) -> Opts {
        // join/leave/disconnect: `{rooms, except}`, no flags
        Opts {
            rooms: self.rooms.clone(),
            except: self.except.clone(),
            flags: None,
            order: OptsOrder::RoomsExceptFlags,
        }
    }

    /// The document of `body`: `{type, data, uid: "emitter", nsp[, createdAt]}`.
    fn document(&self, body: Body) -> Document {
        let message = ClusterMessage::new(switchboard_wire::ids::EMITTER_UID, &self.nsp, body);
        mongo::to_document(&message, self.add_created_at_field.then(now))
    }

    /// What [`emit`](Self::emit) inserts.
    pub fn emit_document(&self, event: &str, args: Vec<Value>) -> Result<Document, EmitterError> {
        if RESERVED.contains(&event) {
            return Err(EmitterError::Reserved(event.to_owned()));
        }
        let mut data = vec![Value::from(event)];
        data.extend(args);
        Ok(self.document(Body::Broadcast {
            packet: PacketObject {
                nsp: Some(self.nsp.clone()),
                ..PacketObject::event(data)
            },
            request_id: None,
            opts: Opts {
                rooms: self.rooms.clone(),
                except: self.except.clone(),
                flags: Some(self.flags.clone()),
                order: OptsOrder::RoomsFlagsExcept,
            },
        }))
    }

    /// What [`sockets_join`](Self::sockets_join) inserts.
    pub fn join_document(&self, rooms: &[&str]) -> Document {
        self.document(Body::SocketsJoin {
            opts: self.target(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        })
    }

    /// What [`sockets_leave`](Self::sockets_leave) inserts.
    pub fn leave_document(&self, rooms: &[&str]) -> Document {
        self.document(Body::SocketsLeave {
            opts: self.target(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        })
    }

    /// What [`disconnect_sockets`](Self::disconnect_sockets) inserts.
    pub fn disconnect_document(&self, close: bool) -> Document {
        self.document(Body::DisconnectSockets {
            opts: self.target(),
            close: Some(close),
        })
    }

    /// What [`server_side_emit`](Self::server_side_emit) inserts.
    pub fn server_side_document(&self, event: &str, args: Vec<Value>) -> Document {
        let mut packet = vec![Value::from(event)];
        packet.extend(args);
        self.document(Body::ServerSideEmit {
            request_id: None,
            packet,
        })
    }

    async fn insert(&self, doc: Document) -> Result<(), EmitterError> {
        let raw = RawDocumentBuf::try_from(&doc)?;
        let size = raw.as_bytes().len();
        if size > MAX_DOCUMENT_SIZE {
            return Err(EmitterError::TooLarge(size));
        }
        self.collection
            .clone_with_type::<RawDocumentBuf>()
            .insert_one(raw)
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
        let doc = self.emit_document(event, args)?;
        self.insert(doc).await
    }

    /// The targeted sockets join `rooms`.
    pub async fn sockets_join(&self, rooms: &[&str]) -> Result<(), EmitterError> {
        self.insert(self.join_document(rooms)).await
    }

    /// The targeted sockets leave `rooms`.
    pub async fn sockets_leave(&self, rooms: &[&str]) -> Result<(), EmitterError> {
        self.insert(self.leave_document(rooms)).await
    }

    /// The targeted sockets are disconnected (`close`: close the underlying connection too).
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitterError> {
        self.insert(self.disconnect_document(close)).await
    }

    /// Emits `event` to the servers themselves (no answer: emitters cannot receive).
    pub async fn server_side_emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<(), EmitterError> {
        let doc = self.server_side_document(event, convert::to_args(args)?);
        self.insert(doc).await
    }
}
