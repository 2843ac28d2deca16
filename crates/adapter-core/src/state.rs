//! The adapter state the user builds (`SocketIo::builder().with_adapter::<A>(state)`), and the
//! serverSideEmit handle it hands out: socketioxide's `CoreAdapter` has no such method.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, Weak},
};

use futures_core::future::BoxFuture;
use serde::{Serialize, de::DeserializeOwned};
use switchboard_wire::{Value, convert};

use socketioxide::{adapter::Adapter, socket::Socket};
use socketioxide_core::Sid;
use switchboard_wire::SocketDetails;

use crate::{
    AdapterOptions, ClusterSocket, Error, Partial, RecordHandshake, Transport,
    sockets::{Fetched, Records, SocketOp},
};

/// What the serverSideEmit handle needs of a namespace's adapter.
pub(crate) trait NamespaceOps: Send + Sync {
    fn server_side_emit(&self, packet: Vec<Value>) -> Result<(), Error>;
    fn server_side_emit_with_ack(
        &self,
        packet: Vec<Value>,
    ) -> BoxFuture<'_, Result<Vec<Value>, Error>>;
    fn count_servers(&self) -> BoxFuture<'_, Result<usize, Error>>;
    /// The ids of this server's sockets in the namespace.
    fn live_sockets(&self) -> HashSet<Sid>;
    /// Every socket in `rooms` (all when `rooms` is empty) across the cluster,
    /// with the uid of its server and whether it is local; `Err` with what arrived on a timeout.
    fn fetch_details(&self, rooms: Vec<String>) -> BoxFuture<'_, Fetched>;
    /// An operation on the socket with id `id`, wherever it is.
    fn socket_op(&self, id: &str, op: SocketOp) -> Result<(), Error>;
}

type Handler = Arc<dyn Fn(ServerEvent) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Default)]
pub(crate) struct Registry {
    namespaces: Mutex<HashMap<String, Weak<dyn NamespaceOps>>>,
    handlers: Mutex<HashMap<(String, String), Handler>>,
    /// Handshakes and data of this server's sockets (opt-in).
    pub(crate) records: Records,
    max_handshake_bytes: usize,
    max_data_bytes: usize,
}

impl Registry {
    pub(crate) fn register(&self, nsp: &str, ops: Weak<dyn NamespaceOps>) {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nsp.to_owned(), ops);
    }

    pub(crate) fn unregister(&self, nsp: &str) {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(nsp);
    }

    fn get(&self, nsp: &str) -> Option<Arc<dyn NamespaceOps>> {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(nsp)
            .and_then(Weak::upgrade)
    }

    /// The ids of this server's sockets in `nsp`, if it has that namespace.
    pub(crate) fn live_sockets(&self, nsp: &str) -> Option<HashSet<Sid>> {
        self.get(nsp).map(|ops| ops.live_sockets())
    }

    pub(crate) fn handler(&self, nsp: &str, event: &str) -> Option<Handler> {
        self.handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(nsp.to_owned(), event.to_owned()))
            .cloned()
    }
}

/// The adapter state: a transport shared by every namespace, and the engine options.
///
/// Build one per server and pass it to `SocketIo::builder().with_adapter::<A>(state)`; keep a
/// [`ServerSide`] handle from [`ClusterState::server_side`] to talk to the other servers.
pub struct ClusterState<T: Transport> {
    pub(crate) transport: Arc<T>,
    pub(crate) config: AdapterOptions,
    pub(crate) registry: Arc<Registry>,
}

impl<T: Transport> ClusterState<T> {
    /// A state over `transport` with `config`.
    pub fn new(transport: T, config: AdapterOptions) -> Self {
        let registry = Arc::new(Registry {
            max_handshake_bytes: config.max_handshake_bytes,
            max_data_bytes: config.max_data_bytes,
            ..Registry::default()
        });
        ClusterState {
            transport: Arc::new(transport),
            config,
            registry,
        }
    }

    /// The serverSideEmit handle: emit to other servers, await their answers, handle their events.
    pub fn server_side(&self) -> ServerSide {
        ServerSide {
            registry: self.registry.clone(),
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }
}

/// Talks to the other servers of the cluster (Node's `io.serverSideEmit` and
/// `io.on("event", ...)` for events from other servers).
#[derive(Clone)]
pub struct ServerSide {
    registry: Arc<Registry>,
}

impl ServerSide {
    /// A connect middleware recording each socket's handshake, so that other servers'
    /// fetchSockets (Node's, and [`ServerSideNamespace::fetch_sockets`]) see its headers, query,
    /// url, address, time and auth, as Node's `socket.handshake`:
    /// `io.ns("/", handler.with(server_side.record_handshakes()))`. Without it they see empty
    /// fields. Bounded by [`AdapterOptions::max_handshake_bytes`]; forgotten when the socket is
    /// gone.
    ///
    /// ```no_run
    /// use socketioxide::{SocketIo, extract::SocketRef, handler::ConnectHandler};
    /// use switchboard_adapter_core::{
    ///     AdapterOptions, ClusterAdapter, ClusterState,
    ///     memory::{MemoryHub, MemoryTransport},
    /// };
    /// type Adapter = ClusterAdapter<socketioxide::adapter::Emitter, MemoryTransport>;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let state = ClusterState::new(MemoryHub::new().transport(), AdapterOptions::default());
    /// let server_side = state.server_side();
    /// let (_layer, io) = SocketIo::builder().with_adapter::<Adapter>(state).build_layer();
    /// let ss = server_side.clone();
    /// let on_connect = move |socket: SocketRef<Adapter>| {
    ///     let ss = ss.clone();
    ///     async move {
    ///         // what other servers' fetchSockets see as socket.data
    ///         let _ = ss.set_data(&socket, &("user", "ada"));
    ///     }
    /// };
    /// io.ns("/", on_connect.with(server_side.record_handshakes())).await?;
    /// for s in server_side.of("/").fetch_sockets(["room1"]).await? {
    ///     println!("{} on {}: {:?}", s.id(), s.server(), s.data());
    ///     s.emit("hello", &"from a Rust server")?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn record_handshakes(&self) -> RecordHandshake {
        RecordHandshake {
            registry: self.registry.clone(),
            max_bytes: self.registry.max_handshake_bytes,
            address: None,
        }
    }

    /// Sets `socket`'s cluster-visible data, Node's `socket.data`: what other servers'
    /// fetchSockets see. Refused with an error when it does not serialise or is larger than
    /// [`AdapterOptions::max_data_bytes`]. Forgotten when the socket is gone.
    pub fn set_data<A: Adapter>(
        &self,
        socket: &Socket<A>,
        data: &(impl Serialize + ?Sized),
    ) -> Result<(), Error> {
        crate::sockets::set_data(
            &self.registry,
            self.registry.max_data_bytes,
            socket.ns(),
            socket.id,
            data,
        )
    }

    /// The handle for namespace `nsp` (e.g. `/`).
    pub fn of(&self, nsp: impl Into<String>) -> ServerSideNamespace {
        ServerSideNamespace {
            registry: self.registry.clone(),
            nsp: nsp.into(),
        }
    }
}

/// [`ServerSide`] for one namespace.
#[derive(Clone)]
pub struct ServerSideNamespace {
    registry: Arc<Registry>,
    nsp: String,
}

/// Arguments as a list (binary stays binary): a tuple or `Vec` is the list, `()` none, anything
/// else one argument.
fn to_args(args: &impl Serialize) -> Result<Vec<Value>, Error> {
    Ok(convert::to_args(args)?)
}

/// A wire value as `T` (binary as bytes).
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, Error> {
    Ok(convert::from_value(value)?)
}

impl ServerSideNamespace {
    fn ops(&self) -> Result<Arc<dyn NamespaceOps>, Error> {
        self.registry
            .get(&self.nsp)
            .ok_or_else(|| Error::UnknownNamespace(self.nsp.clone()))
    }

    /// Emits `event` with `args` to every other server, no answer expected.
    pub fn emit(&self, event: &str, args: &impl Serialize) -> Result<(), Error> {
        self.emit_values(event, to_args(args)?)
    }

    /// Emits `event` with wire values (binary preserved) to every other server.
    pub fn emit_values(&self, event: &str, args: Vec<Value>) -> Result<(), Error> {
        let mut packet = vec![Value::from(event)];
        packet.extend(args);
        self.ops()?.server_side_emit(packet)
    }

    /// Emits `event` and waits for one answer per other server (or `requestsTimeout`, then
    /// [`Error::Timeout`] with the answers that arrived).
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: &impl Serialize,
    ) -> Result<Vec<Value>, Error> {
        let mut packet = vec![Value::from(event)];
        packet.extend(to_args(args)?);
        let ops = self.ops()?;
        ops.server_side_emit_with_ack(packet).await
    }

    /// Every socket of the cluster in any of `rooms` (all sockets when `rooms` is empty), with
    /// its original id, rooms, handshake and data, and the remote operations on it: Node's
    /// `io.in(rooms).fetchSockets()`. When a server does not answer within `requestsTimeout`:
    /// [`Error::Timeout`] with [`Partial::ClusterSockets`].
    pub async fn fetch_sockets(
        &self,
        rooms: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Vec<ClusterSocket>, Error> {
        let rooms = rooms.into_iter().map(Into::into).collect();
        let ops = self.ops()?;
        let sockets = |found: Vec<(String, SocketDetails, bool)>| -> Vec<ClusterSocket> {
            found
                .into_iter()
                .map(|(server, details, local)| ClusterSocket {
                    details,
                    server,
                    local,
                    ns: self.clone(),
                })
                .collect()
        };
        match ops.fetch_details(rooms).await? {
            Ok(found) => Ok(sockets(found)),
            Err((found, answered, expected)) => Err(Error::Timeout {
                answered,
                expected,
                partial: Partial::ClusterSockets(sockets(found)),
            }),
        }
    }

    pub(crate) fn socket_op(&self, id: &str, op: SocketOp) -> Result<(), Error> {
        self.ops()?.socket_op(id, op)
    }

    /// Number of servers in the cluster, this one included.
    pub async fn server_count(&self) -> Result<usize, Error> {
        let ops = self.ops()?;
        ops.count_servers().await
    }

    /// Handles `event` sent by other servers (replaces a previous handler of the same event).
    pub fn on<F, Fut>(&self, event: &str, handler: F)
    where
        F: Fn(ServerEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |e| Box::pin(handler(e)));
        self.registry
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((self.nsp.clone(), event.to_owned()), handler);
    }
}

/// Sends the answer to a serverSideEmit with ack.
pub(crate) type Replier = Box<dyn FnOnce(Value) + Send>;

/// An event another server sent with serverSideEmit.
pub struct ServerEvent {
    pub(crate) from: String,
    pub(crate) event: String,
    pub(crate) args: Vec<Value>,
    pub(crate) reply: Option<Replier>,
}

impl std::fmt::Debug for ServerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEvent")
            .field("from", &self.from)
            .field("event", &self.event)
            .field("args", &self.args)
            .field("wants_reply", &self.reply.is_some())
            .finish()
    }
}

impl ServerEvent {
    /// Uid of the sending server (`"emitter"` for emitters).
    pub fn from(&self) -> &str {
        &self.from
    }

    /// The event name.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The arguments, as sent.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// Argument `i` as `T`.
    pub fn arg<T: DeserializeOwned>(&self, i: usize) -> Result<T, Error> {
        from_value(self.args.get(i).unwrap_or(&Value::Nil))
    }

    /// Whether the sender waits for an answer.
    pub fn wants_reply(&self) -> bool {
        self.reply.is_some()
    }

    /// Answers the sender (the first answer only counts, as in Node).
    pub fn reply(&mut self, value: &impl Serialize) -> Result<(), Error> {
        self.reply_value(convert::to_value(value)?);
        Ok(())
    }

    /// Answers with a wire value.
    pub fn reply_value(&mut self, value: Value) {
        if let Some(reply) = self.reply.take() {
            reply(value);
        }
    }
}
