//! The conformance suite: every user-visible operation across several servers with real
//! Socket.IO clients over TCP. Written once; each transport instantiates it with
//! [`conformance_suite!`](crate::conformance_suite) and its own [`Backend`] (servers in this
//! process) or [`Servers`] (for example servers as separate processes).
//!
//! Waits are deadlines on events, never fixed sleeps. "Did not receive" is checked with a fence:
//! the emitting server sends a marker afterwards, and everything a client got before the marker is
//! everything it got, because delivery is ordered along one path.

use std::{collections::BTreeSet, future::Future, time::Duration};

use serde_json::{Value as Json, json};

use crate::{
    client::{Event, TestClient},
    control::{Arg, Failure, Op, RemoteAction, Target, args},
    handle::Server,
    server,
    wait::{check, eventually},
};
use switchboard_adapter_core::{AdapterOptions, Transport};

/// Longest wait for anything that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// Engine options for the tests: short heartbeats so liveness tests stay quick.
pub fn test_options() -> AdapterOptions {
    AdapterOptions::default()
        .heartbeat_interval(Duration::from_millis(150))
        .heartbeat_timeout(Duration::from_millis(750))
        .requests_timeout(Duration::from_secs(3))
}

/// Where the suite gets its servers: every [`Backend`] is one (servers in this process); a
/// backend whose servers are processes implements it directly.
pub trait Servers: Sized + Send + Sync + 'static {
    /// A fresh, isolated cluster (its own bus, key prefix, collection or discovery service).
    fn cluster() -> impl Future<Output = Self> + Send;

    /// One more server of this cluster, with [`server::start`]'s app and [`test_options`].
    fn server(&self) -> impl Future<Output = Server> + Send;
}

/// A transport whose servers the suite runs in this process.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The transport under test.
    type Transport: Transport + Clone;

    /// A fresh, isolated cluster (its own bus, key prefix or collection).
    fn cluster() -> impl Future<Output = Self> + Send;

    /// A transport for one more server of this cluster.
    fn transport(&self) -> impl Future<Output = Self::Transport> + Send;

    /// Engine options for the tests.
    fn config(&self) -> AdapterOptions {
        test_options()
    }

    /// Kills the server using `transport`: it vanishes without saying goodbye. Only the crash
    /// tests call it.
    fn crash(transport: &Self::Transport);
}

impl<B: Backend> Servers for B {
    fn cluster() -> impl Future<Output = Self> + Send {
        <B as Backend>::cluster()
    }

    async fn server(&self) -> Server {
        let server = server::start(self.transport().await, self.config()).await;
        Server::local(server, B::crash)
    }
}

struct Cluster<S: Servers> {
    _backend: S,
    servers: Vec<Server>,
}

/// Waits until every server of `servers` counts `n` servers in `nsp`.
async fn converge_ns(servers: &[&Server], nsp: &str, n: usize) {
    eventually(WAIT, async || {
        let mut counts = Vec::new();
        for s in servers {
            counts.push(s.server_count(nsp).await);
        }
        check(counts.iter().all(|&c| c == n), || {
            format!("server counts of {nsp} are {counts:?}, not {n}")
        })
    })
    .await;
}

async fn converge(servers: &[&Server], n: usize) {
    converge_ns(servers, "/", n).await;
}

async fn cluster<S: Servers>(n: usize) -> Cluster<S> {
    let backend = S::cluster().await;
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(backend.server().await);
    }
    converge(&servers.iter().collect::<Vec<_>>(), n).await;
    Cluster {
        _backend: backend,
        servers,
    }
}

async fn client(s: &Server, nsp: &str, rooms: &[&str], name: &str) -> TestClient {
    TestClient::connect(
        s.addr,
        nsp,
        json!({ "rooms": rooms }),
        Some(json!({ "from": name })),
    )
    .await
    .unwrap_or_else(|e| panic!("client {name}: {e}"))
}

fn all() -> Target {
    Target::default()
}

/// `emit` that must succeed.
async fn emit(s: &Server, to: Target, event: &str, a: Vec<Arg>) {
    s.emit(to, event, a)
        .await
        .unwrap_or_else(|e| panic!("emit {event}: {e}"));
}

/// Emits a marker from `s` and returns, per client, the events that arrived before it.
async fn fence(s: &Server, clients: &mut [&mut TestClient]) -> Vec<Vec<Event>> {
    let marker = format!("fence-{}", rand::random::<u32>());
    emit(s, all(), &marker, Vec::new()).await;
    let mut out = Vec::new();
    for c in clients.iter_mut() {
        let before = c.until(&marker, WAIT).await;
        out.push(before.unwrap_or_else(|| panic!("fence {marker} never arrived")));
    }
    out
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

/// The acks that arrived (`Ok`) and the failed ones.
fn oks(results: &[Result<Json, String>]) -> Vec<&Json> {
    results.iter().filter_map(|r| r.as_ref().ok()).collect()
}

/// `io.emit` reaches every client of every server exactly once, arguments intact.
pub async fn broadcast_reaches_every_server<S: Servers>() {
    let c = cluster::<S>(3).await;
    let mut a = client(&c.servers[0], "/", &[], "a").await;
    let mut b = client(&c.servers[1], "/", &[], "b").await;
    let mut d = client(&c.servers[2], "/", &[], "c").await;
    let sent = vec![json!("world"), json!(1), json!({"k": [true, null]})];
    emit(&c.servers[0], all(), "hello", args(sent.clone())).await;
    for cl in [&mut a, &mut b, &mut d] {
        let e = cl
            .expect("hello", WAIT)
            .await
            .expect("hello on every server");
        assert_eq!(e.args, sent);
    }
    for before in fence(&c.servers[0], &mut [&mut a, &mut b, &mut d]).await {
        assert!(before.is_empty(), "duplicates: {:?}", names(&before));
    }
}

/// Rooms, several rooms without duplicates, except, and `socket.broadcast` across servers.
pub async fn rooms_except_and_broadcast_flag<S: Servers>() {
    let c = cluster::<S>(3).await;
    let mut a = client(&c.servers[0], "/", &["r1"], "a").await;
    let mut b = client(&c.servers[1], "/", &["r1", "r2"], "b").await;
    let mut d = client(&c.servers[2], "/", &["r2", "r3"], "d").await;
    let mut e = client(&c.servers[1], "/", &[], "e").await;
    let s0 = &c.servers[0];
    emit(s0, Target::rooms(&["r1", "r2"]), "multi", args([json!(1)])).await;
    let only_r1 = Target::rooms(&["r1"]).except(&["r2"]);
    emit(s0, only_r1, "only-r1", args([json!(2)])).await;
    emit(s0, all().except(&["r3"]), "not-r3", args([json!(3)])).await;
    let got = fence(s0, &mut [&mut a, &mut b, &mut d, &mut e]).await;
    assert_eq!(names(&got[0]), ["multi", "only-r1", "not-r3"]);
    assert_eq!(
        names(&got[1]),
        ["multi", "not-r3"],
        "once although in both rooms"
    );
    assert_eq!(names(&got[2]), ["multi"]);
    assert_eq!(names(&got[3]), ["not-r3"]);

    // a client on server 1 relays: everyone but itself, on every server, gets it
    b.emit("relay", vec![json!({"x": 1})]);
    for cl in [&mut a, &mut d, &mut e] {
        let ev = cl
            .expect("relayed", WAIT)
            .await
            .expect("relayed to the others");
        assert_eq!(ev.args, vec![json!({"x": 1})]);
    }
    let got = fence(&c.servers[1], &mut [&mut b]).await;
    assert!(
        !names(&got[0]).contains(&"relayed"),
        "the sender is excluded"
    );
}

/// Binary arguments arrive as binary attachments on remote servers.
pub async fn binary_payloads<S: Servers>() {
    let c = cluster::<S>(2).await;
    let mut b = client(&c.servers[1], "/", &[], "b").await;
    let payload = vec![Arg::Bin(vec![1, 2, 3]), Arg::Json(json!({"a": 1}))];
    emit(&c.servers[0], all(), "bin", payload).await;
    let e = b.expect("bin", WAIT).await.expect("binary event");
    assert_eq!(e.binaries, vec![vec![1, 2, 3]]);
    assert_eq!(e.args[0], json!({"_placeholder": true, "num": 0}));
    assert_eq!(e.args[1], json!({"a": 1}));
}

/// Namespaces are separate, dynamic namespaces included; volatile broadcasts cross servers.
pub async fn namespaces_and_volatile<S: Servers>() {
    let c = cluster::<S>(2).await;
    let mut root = client(&c.servers[1], "/", &[], "root").await;
    let mut admin = client(&c.servers[1], "/admin", &[], "admin").await;
    let mut dyn_a = client(&c.servers[0], "/dyn/42", &[], "dyn-a").await;
    let mut dyn_b = client(&c.servers[1], "/dyn/42", &[], "dyn-b").await;
    let s0 = &c.servers[0];
    emit(s0, Target::nsp("/admin"), "adm", args([json!(1)])).await;
    assert!(admin.receives("adm", WAIT).await);
    emit(s0, all().volatile(), "vol", args([json!(2)])).await;
    assert!(root.receives("vol", WAIT).await, "volatile crosses servers");
    // a dynamic namespace instance joins the cluster when its first client connects
    converge_ns(&c.servers.iter().collect::<Vec<_>>(), "/dyn/42", 2).await;
    emit(s0, Target::nsp("/dyn/42"), "dyn", args([json!(3)])).await;
    assert!(dyn_a.receives("dyn", WAIT).await);
    assert!(dyn_b.receives("dyn", WAIT).await);
    let got = fence(s0, &mut [&mut root]).await;
    assert!(
        !names(&got[0]).contains(&"adm") && !names(&got[0]).contains(&"dyn"),
        "{:?}",
        names(&got[0])
    );
}

/// Broadcast with acks: one ack per client on every server, ending as soon as all arrived;
/// a silent client only costs its own ack.
pub async fn broadcast_with_acks<S: Servers>() {
    let c = cluster::<S>(3).await;
    let _a = client(&c.servers[0], "/", &[], "a").await;
    let _b = client(&c.servers[1], "/", &[], "b").await;
    let _d = client(&c.servers[2], "/", &[], "d").await;
    let s0 = &c.servers[0];
    let started = tokio::time::Instant::now();
    let acks = tokio::time::timeout(
        WAIT,
        s0.emit_with_ack(all(), Some(30_000), "ask", args([json!(7)])),
    )
    .await
    .expect("the stream ends once every ack arrived, long before its 30 s timeout")
    .expect("emit with ack");
    assert!(started.elapsed() < WAIT);
    let from: BTreeSet<String> = oks(&acks)
        .iter()
        .map(|a| a["from"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        from,
        ["a", "b", "d"].into_iter().map(String::from).collect()
    );

    // a client on another server that never answers: the stream still ends, at its timeout, with
    // the others' acks and one timeout error for the missing one (as Node's callback gets one)
    let _silent = TestClient::connect(c.servers[2].addr, "/", json!({}), None)
        .await
        .expect("client");
    let results = tokio::time::timeout(
        WAIT,
        s0.emit_with_ack(all(), Some(800), "ask", args([json!(8)])),
    )
    .await
    .expect("ends at the timeout")
    .expect("emit with ack");
    assert_eq!(oks(&results).len(), 3);
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        errors.len(),
        1,
        "one timeout for the silent client: {results:?}"
    );
    assert!(errors[0].contains("timeout"), "{errors:?}");

    // acks to a room on other servers only
    let results = tokio::time::timeout(
        WAIT,
        s0.emit_with_ack(
            Target::rooms(&["nobody-here"]),
            None,
            "ask",
            args([json!(9)]),
        ),
    )
    .await
    .expect("ends")
    .expect("emit");
    assert!(results.is_empty());
}

/// fetchSockets across servers, and operations on one remote socket.
pub async fn fetch_sockets_and_remote_socket<S: Servers>() {
    let c = cluster::<S>(3).await;
    let mut a = client(&c.servers[0], "/", &["r"], "a").await;
    let mut b = client(&c.servers[1], "/", &["r"], "b").await;
    let mut d = client(&c.servers[2], "/", &[], "d").await;
    let s0 = &c.servers[0];
    let ids: BTreeSet<String> = s0
        .fetch_sockets(all())
        .await
        .expect("fetch")
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = [a.sid(), b.sid(), d.sid()]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(ids, expected);
    let in_r = s0
        .fetch_sockets(Target::rooms(&["r"]))
        .await
        .expect("fetch r");
    assert_eq!(in_r.len(), 2);

    let b_sid = b.sid().to_owned();
    let remote_b = |action| s0.remote(&b_sid, action);
    remote_b(RemoteAction::Emit {
        event: "direct".into(),
        args: args([json!("to-b")]),
    })
    .await
    .expect("remote emit");
    assert_eq!(
        b.expect("direct", WAIT).await.map(|e| e.args),
        Some(vec![json!("to-b")])
    );
    let vip = || vec!["vip".to_owned()];
    remote_b(RemoteAction::Join { rooms: vip() })
        .await
        .expect("remote join");
    emit(s0, Target::rooms(&["vip"]), "vip-only", args([json!(1)])).await;
    assert!(b.receives("vip-only", WAIT).await);
    // allRooms: Node's answer, where every socket is also in the room of its own id
    let rooms: BTreeSet<String> = s0.rooms().await.expect("rooms").into_iter().collect();
    let expected: BTreeSet<String> = ["r", "vip", a.sid(), b.sid(), d.sid()]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(rooms, expected);
    remote_b(RemoteAction::Leave { rooms: vip() })
        .await
        .expect("remote leave");
    emit(s0, Target::rooms(&["vip"]), "vip-again", args([json!(2)])).await;
    let got = fence(s0, &mut [&mut a, &mut b, &mut d]).await;
    assert!(
        names(&got[0]).is_empty() && names(&got[2]).is_empty(),
        "direct emit reached others: {got:?}"
    );
    assert!(!names(&got[1]).contains(&"vip-again"));
    remote_b(RemoteAction::Disconnect)
        .await
        .expect("remote disconnect");
    assert!(
        b.disconnected(WAIT).await,
        "the remote socket is disconnected"
    );
}

/// socketsJoin, socketsLeave and disconnectSockets reach every server.
pub async fn sockets_join_leave_disconnect<S: Servers>() {
    let c = cluster::<S>(3).await;
    let mut a = client(&c.servers[0], "/", &["r1"], "a").await;
    let mut b = client(&c.servers[1], "/", &["r1"], "b").await;
    let mut d = client(&c.servers[2], "/", &["r2"], "d").await;
    let s0 = &c.servers[0];
    let r9 = || vec!["r9".to_owned()];
    let r1 = || Target::rooms(&["r1"]);
    s0.call(Op::Join {
        to: r1(),
        rooms: r9(),
    })
    .await
    .expect("join");
    emit(s0, Target::rooms(&["r9"]), "nine", args([json!(9)])).await;
    assert!(a.receives("nine", WAIT).await && b.receives("nine", WAIT).await);
    s0.call(Op::Leave {
        to: r1(),
        rooms: r9(),
    })
    .await
    .expect("leave");
    emit(s0, Target::rooms(&["r9"]), "nine-again", args([json!(9)])).await;
    let got = fence(s0, &mut [&mut a, &mut b, &mut d]).await;
    assert!(
        got.iter()
            .all(|g| !names(g).contains(&"nine-again") && !names(g).contains(&"nine")),
        "{got:?}"
    );
    s0.call(Op::Disconnect {
        to: Target::rooms(&["r2"]),
    })
    .await
    .expect("disconnect");
    assert!(
        d.disconnected(WAIT).await,
        "the client on another server is disconnected"
    );
    let got = fence(s0, &mut [&mut a, &mut b]).await;
    assert!(got.iter().all(Vec::is_empty));
}

/// serverSideEmit with and without acks.
pub async fn server_side_emit<S: Servers>() {
    let c = cluster::<S>(3).await;
    for (i, s) in c.servers.iter().enumerate().skip(1) {
        s.call(Op::ServerSideOn {
            nsp: "/".into(),
            event: "ping".into(),
            tag: i as u64,
        })
        .await
        .expect("on");
    }
    let sender = &c.servers[0];
    let emit_op = |event: &str, arg: Json, ack: bool| {
        let (nsp, event, args) = ("/".to_owned(), event.to_owned(), vec![arg]);
        if ack {
            Op::ServerSideEmitWithAck { nsp, event, args }
        } else {
            Op::ServerSideEmit { nsp, event, args }
        }
    };
    sender
        .call(emit_op("ping", json!("no-ack"), false))
        .await
        .expect("emit");
    let mut seen = BTreeSet::new();
    eventually(WAIT, async || {
        for s in &c.servers[1..] {
            let calls = s.call(Op::ServerSideCalls).await.expect("calls");
            for call in calls.as_array().into_iter().flatten() {
                assert_eq!(call[1], json!("no-ack"));
                seen.insert(call[0].as_u64().unwrap_or(0));
            }
        }
        check(seen.len() == 2, || format!("handlers ran on {seen:?} only"))
    })
    .await;
    assert_eq!(seen, [1, 2].into_iter().collect());
    let replies = sender
        .call(emit_op("ping", json!("x"), true))
        .await
        .expect("answers");
    let mut replies: Vec<Json> = serde_json::from_value(replies).expect("a list");
    replies.sort_by_key(Json::to_string);
    assert_eq!(replies, vec![json!("pong-1-x"), json!("pong-2-x")]);
    // an event nobody handles gets no answer: the request times out and says so
    match sender.call(emit_op("unhandled", Json::Null, true)).await {
        Err(Failure::Timeout {
            answered: 0,
            expected: 2,
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// Closing a server is seen at once by the others (ADAPTER_CLOSE or unsubscribe).
pub async fn server_count_after_close<S: Servers>() {
    let c = cluster::<S>(3).await;
    c.servers[2].close().await;
    converge(&[&c.servers[0], &c.servers[1]], 2).await;
    let mut b = client(&c.servers[1], "/", &[], "b").await;
    emit(&c.servers[0], all(), "still", args([json!(1)])).await;
    assert!(b.receives("still", WAIT).await);
    // requests no longer wait for the closed server
    let sockets = c.servers[0]
        .fetch_sockets(all())
        .await
        .expect("fetch after close");
    assert_eq!(sockets.len(), 1);
}

/// A node killed mid-request does not make requests hang; the count converges.
pub async fn killed_node<S: Servers>() {
    let c = cluster::<S>(3).await;
    let _b = client(&c.servers[1], "/", &[], "b").await;
    let started = tokio::time::Instant::now();
    c.servers[2].crash();
    let fetched = tokio::time::timeout(WAIT, c.servers[0].fetch_sockets(all()))
        .await
        .expect("fetchSockets returns while a node is dead");
    match fetched {
        Ok(s) => assert_eq!(s.len(), 1),
        Err(Failure::Timeout { answered, expected }) => assert!(answered < expected),
        Err(e) => panic!("unexpected error {e}"),
    }
    assert!(started.elapsed() < WAIT);
    converge(&[&c.servers[0], &c.servers[1]], 2).await;
    let acks = tokio::time::timeout(
        WAIT,
        c.servers[0].emit_with_ack(all(), Some(30_000), "ask", args([json!(1)])),
    )
    .await
    .expect("does not wait for the dead")
    .expect("emit");
    assert_eq!(acks.len(), 1);
}

/// Instantiates the suite for a [`Backend`] or [`Servers`]: `conformance_suite!(MyBackend);` in
/// a test file.
/// `conformance_suite!(MyBackend, crash)` adds the tests that kill a node.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ty) => {
        $crate::conformance_tests!($backend;
            broadcast_reaches_every_server,
            rooms_except_and_broadcast_flag,
            binary_payloads,
            namespaces_and_volatile,
            broadcast_with_acks,
            fetch_sockets_and_remote_socket,
            sockets_join_leave_disconnect,
            server_side_emit,
            server_count_after_close
        );
    };
    ($backend:ty, crash) => {
        $crate::conformance_suite!($backend);
        $crate::conformance_tests!($backend; killed_node);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ty; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::suite::$name::<$backend>().await;
            }
        )+
    };
}
