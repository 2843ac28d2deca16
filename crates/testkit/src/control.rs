//! The conformance suite's operations as data, so a server can be driven in this process or in
//! another one: [`Op`] says what to do, [`apply`] does it on a [`TestServer`], [`serve_stdio`]
//! lets a server process take operations as JSON lines on stdin and answer on stdout.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize, ser::SerializeTuple};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::server::{TestAdapter, TestServer};
use switchboard_adapter_core::{Error, Transport};

/// Which sockets an operation is about: a namespace, rooms, excepted rooms, volatile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// Namespace (`/` by default).
    pub nsp: String,
    /// Rooms (none: the whole namespace).
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Rooms whose sockets are left out.
    #[serde(default)]
    pub except: Vec<String>,
    /// A volatile emit.
    #[serde(default)]
    pub volatile: bool,
}

impl Default for Target {
    fn default() -> Self {
        Target::nsp("/")
    }
}

impl Target {
    /// Every socket of namespace `nsp`.
    pub fn nsp(nsp: &str) -> Self {
        Target {
            nsp: nsp.to_owned(),
            rooms: Vec::new(),
            except: Vec::new(),
            volatile: false,
        }
    }

    /// Sockets of namespace `/` in `rooms`.
    pub fn rooms(rooms: &[&str]) -> Self {
        Target::default().to(rooms)
    }

    /// Adds rooms.
    pub fn to(mut self, rooms: &[&str]) -> Self {
        self.rooms.extend(rooms.iter().map(|r| (*r).to_owned()));
        self
    }

    /// Adds excepted rooms.
    pub fn except(mut self, rooms: &[&str]) -> Self {
        self.except.extend(rooms.iter().map(|r| (*r).to_owned()));
        self
    }

    /// Makes the emit volatile.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }
}

/// One event argument: JSON, or binary (sent as a binary attachment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arg {
    /// A JSON value.
    Json(Json),
    /// Bytes.
    Bin(Vec<u8>),
}

impl From<Json> for Arg {
    fn from(j: Json) -> Self {
        Arg::Json(j)
    }
}

/// JSON arguments.
pub fn args(values: impl IntoIterator<Item = Json>) -> Vec<Arg> {
    values.into_iter().map(Arg::Json).collect()
}

/// Serializes as a tuple: socketioxide spreads a tuple into the event's arguments.
struct Args<'a>(&'a [Arg]);

struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Args<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for a in self.0 {
            match a {
                Arg::Json(j) => t.serialize_element(j)?,
                Arg::Bin(b) => t.serialize_element(&Bin(b))?,
            }
        }
        t.end()
    }
}

/// What to do with one remote socket found by fetchSockets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RemoteAction {
    /// `socket.emit`.
    Emit {
        /// Event.
        event: String,
        /// Arguments.
        args: Vec<Arg>,
    },
    /// `socket.join`.
    Join {
        /// Rooms.
        rooms: Vec<String>,
    },
    /// `socket.leave`.
    Leave {
        /// Rooms.
        rooms: Vec<String>,
    },
    /// `socket.disconnect`.
    Disconnect,
}

/// One operation of the suite on one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `io.to(..).except(..).emit(event, ..args)`.
    Emit {
        /// Recipients.
        to: Target,
        /// Event.
        event: String,
        /// Arguments.
        args: Vec<Arg>,
    },
    /// `emitWithAck`: answers `[{"ok": ack} | {"err": why}]` once the stream ended.
    EmitWithAck {
        /// Recipients.
        to: Target,
        /// Event.
        event: String,
        /// Arguments.
        args: Vec<Arg>,
        /// `.timeout(..)`, milliseconds.
        timeout_ms: Option<u64>,
    },
    /// `fetchSockets`: answers the socket ids.
    FetchSockets {
        /// Whose sockets.
        to: Target,
    },
    /// `allRooms`.
    Rooms {
        /// Namespace.
        nsp: String,
    },
    /// `socketsJoin`.
    Join {
        /// Whose sockets.
        to: Target,
        /// Rooms to join.
        rooms: Vec<String>,
    },
    /// `socketsLeave`.
    Leave {
        /// Whose sockets.
        to: Target,
        /// Rooms to leave.
        rooms: Vec<String>,
    },
    /// `disconnectSockets`.
    Disconnect {
        /// Whose sockets.
        to: Target,
    },
    /// An operation on the socket `sid` found with fetchSockets.
    Remote {
        /// Namespace.
        nsp: String,
        /// The socket.
        sid: String,
        /// What to do.
        action: RemoteAction,
    },
    /// `serverCount`.
    ServerCount {
        /// Namespace.
        nsp: String,
    },
    /// Handles `event` from other servers: records `[tag, first argument, sender uid]` and, when
    /// asked, replies `pong-<tag>-<first argument>`.
    ServerSideOn {
        /// Namespace.
        nsp: String,
        /// Event.
        event: String,
        /// Names this server in records and replies.
        tag: u64,
    },
    /// The records of [`Op::ServerSideOn`] handlers so far (and forgets them).
    ServerSideCalls,
    /// `serverSideEmit` without ack.
    ServerSideEmit {
        /// Namespace.
        nsp: String,
        /// Event.
        event: String,
        /// Arguments.
        args: Vec<Json>,
    },
    /// `serverSideEmit` with ack: answers the replies.
    ServerSideEmitWithAck {
        /// Namespace.
        nsp: String,
        /// Event.
        event: String,
        /// Arguments.
        args: Vec<Json>,
    },
    /// `io.close()`.
    Close,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The engine's [`Error::Timeout`].
    Timeout {
        /// Nodes that answered.
        answered: usize,
        /// Nodes that were expected to.
        expected: usize,
    },
    /// Anything else, as text.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout { answered, expected } => {
                write!(f, "timeout: {answered} of {expected} answered")
            }
            Failure::Other(s) => f.write_str(s),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Timeout {
                answered, expected, ..
            } => Failure::Timeout { answered, expected },
            e => Failure::Other(e.to_string()),
        }
    }
}

fn other(e: impl std::fmt::Display) -> Failure {
    Failure::Other(e.to_string())
}

/// Records of [`Op::ServerSideOn`] handlers.
pub type Calls = Arc<Mutex<Vec<Json>>>;

type Operators<T> = socketioxide::operators::BroadcastOperators<TestAdapter<T>>;

fn operators<T: Transport>(
    s: &TestServer<T>,
    to: &Target,
    emit: bool,
) -> Result<Operators<T>, Failure> {
    let mut ops =
        s.io.of(&to.nsp)
            .ok_or_else(|| Failure::Other(format!("no namespace {}", to.nsp)))?;
    if !to.rooms.is_empty() {
        ops = if emit {
            ops.to(to.rooms.clone())
        } else {
            ops.within(to.rooms.clone())
        };
    }
    if !to.except.is_empty() {
        ops = ops.except(to.except.clone());
    }
    if to.volatile {
        ops = ops.volatile();
    }
    Ok(ops)
}

fn wire_to_json(v: &switchboard_wire::Value) -> Json {
    switchboard_adapter_core::from_value::<Json>(v).unwrap_or(Json::Null)
}

/// Does `op` on `s`.
pub async fn apply<T: Transport>(
    s: &TestServer<T>,
    calls: &Calls,
    op: Op,
) -> Result<Json, Failure> {
    match op {
        Op::Emit { to, event, args } => {
            operators(s, &to, true)?
                .emit(&event, &Args(&args))
                .await
                .map_err(other)?;
            Ok(Json::Null)
        }
        Op::EmitWithAck {
            to,
            event,
            args,
            timeout_ms,
        } => {
            let mut ops = operators(s, &to, true)?;
            if let Some(ms) = timeout_ms {
                ops = ops.timeout(Duration::from_millis(ms));
            }
            let stream = ops
                .emit_with_ack::<_, Json>(&event, &Args(&args))
                .await
                .map_err(other)?;
            let acks: Vec<Json> = stream
                .map(|(_, r)| match r {
                    Ok(v) => json!({ "ok": v }),
                    Err(e) => json!({ "err": e.to_string() }),
                })
                .collect()
                .await;
            Ok(Json::Array(acks))
        }
        Op::FetchSockets { to } => {
            let sockets = operators(s, &to, false)?.fetch_sockets().await?;
            Ok(sockets
                .iter()
                .map(|r| Json::from(r.data().id.as_str()))
                .collect())
        }
        Op::Rooms { nsp } => {
            let rooms = operators(s, &Target::nsp(&nsp), false)?.rooms().await?;
            Ok(rooms.iter().map(|r| Json::from(r.as_ref())).collect())
        }
        Op::Join { to, rooms } => {
            operators(s, &to, false)?.join(rooms).await?;
            Ok(Json::Null)
        }
        Op::Leave { to, rooms } => {
            operators(s, &to, false)?.leave(rooms).await?;
            Ok(Json::Null)
        }
        Op::Disconnect { to } => {
            operators(s, &to, false)?
                .disconnect()
                .await
                .map_err(other)?;
            Ok(Json::Null)
        }
        Op::Remote { nsp, sid, action } => {
            let socket = operators(s, &Target::nsp(&nsp), false)?
                .fetch_sockets()
                .await?
                .into_iter()
                .find(|r| r.data().id.as_str() == sid)
                .ok_or_else(|| Failure::Other(format!("no socket {sid}")))?;
            match action {
                RemoteAction::Emit { event, args } => {
                    socket.emit(&event, &Args(&args)).await.map_err(other)?;
                }
                RemoteAction::Join { rooms } => socket.join(rooms).await?,
                RemoteAction::Leave { rooms } => socket.leave(rooms).await?,
                RemoteAction::Disconnect => socket.disconnect().await.map_err(other)?,
            }
            Ok(Json::Null)
        }
        Op::ServerCount { nsp } => Ok(Json::from(s.server_side.of(nsp).server_count().await?)),
        Op::ServerSideOn { nsp, event, tag } => {
            let calls = calls.clone();
            s.server_side.of(nsp).on(&event, move |mut e| {
                let calls = calls.clone();
                async move {
                    let arg: String = e.arg(0).unwrap_or_default();
                    calls.lock().unwrap_or_else(|p| p.into_inner()).push(json!([
                        tag,
                        arg,
                        e.from()
                    ]));
                    if e.wants_reply() {
                        let _ = e.reply(&format!("pong-{tag}-{arg}"));
                    }
                }
            });
            Ok(Json::Null)
        }
        Op::ServerSideCalls => Ok(Json::Array(std::mem::take(
            &mut *calls.lock().unwrap_or_else(|p| p.into_inner()),
        ))),
        Op::ServerSideEmit { nsp, event, args } => {
            s.server_side.of(nsp).emit(&event, &args)?;
            Ok(Json::Null)
        }
        Op::ServerSideEmitWithAck { nsp, event, args } => {
            let replies = s.server_side.of(nsp).emit_with_ack(&event, &args).await?;
            Ok(replies.iter().map(wire_to_json).collect())
        }
        Op::Close => {
            s.io.close().await;
            Ok(Json::Null)
        }
    }
}

/// A request line: `{"id": n, "op": {...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// Matches the response.
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// A response line: `{"id": n, "result": {"Ok": ..} | {"Err": ..}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What happened.
    pub result: Result<Json, Failure>,
}

/// Serves a server process: answers request 0 with `{"ready": <port>}`, then applies each
/// request line of stdin (concurrently) and prints its response line. Returns when stdin closes.
pub async fn serve_stdio<T: Transport>(server: TestServer<T>) {
    let server = Arc::new(server);
    let calls = Calls::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Response>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(r) = rx.recv().await {
            let mut line = serde_json::to_vec(&r).unwrap_or_default();
            line.push(b'\n');
            if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
                return;
            }
        }
    });
    let _ = tx.send(Response {
        id: 0,
        result: Ok(json!({ "ready": server.addr.port() })),
    });
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("bad request line: {e}");
                continue;
            }
        };
        let (server, calls, tx) = (server.clone(), calls.clone(), tx.clone());
        tokio::spawn(async move {
            let result = apply(&server, &calls, req.op).await;
            let _ = tx.send(Response { id: req.id, result });
        });
    }
    drop(tx);
    let _ = writer.await;
}
