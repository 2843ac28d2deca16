//! The conformance suite: every user-visible operation across several servers with real
//! Socket.IO clients over TCP. Written once; each transport instantiates it with
//! [`conformance_suite!`](crate::conformance_suite) and its own [`Backend`].
//!
//! Waits are deadlines on events, never fixed sleeps. "Did not receive" is checked with a fence:
//! the emitting server sends a marker afterwards, and everything a client got before the marker is
//! everything it got, because delivery is ordered along one path.

use std::{collections::BTreeSet, future::Future, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value as Json, json};

use super::{
    client::{Event, TestClient},
    server::{self, TestServer},
};
use crate::{Config, Error, Transport};

/// Longest wait for anything that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a transport provides to run the suite.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The transport under test.
    type Transport: Transport + Clone;

    /// A fresh, isolated cluster (its own bus, key prefix or collection).
    fn cluster() -> impl Future<Output = Self> + Send;

    /// A transport for one more server of this cluster.
    fn transport(&self) -> impl Future<Output = Self::Transport> + Send;

    /// Engine options for the tests: short heartbeats so liveness tests stay quick.
    fn config(&self) -> Config {
        Config::default()
            .heartbeat_interval(Duration::from_millis(150))
            .heartbeat_timeout(Duration::from_millis(750))
            .requests_timeout(Duration::from_secs(3))
    }

    /// Kills the server using `transport`: it vanishes without saying goodbye. Only the crash
    /// tests call it.
    fn crash(&self, transport: &Self::Transport);
}

struct Cluster<B: Backend> {
    backend: B,
    servers: Vec<TestServer<B::Transport>>,
}

async fn server_count<T: Transport>(s: &TestServer<T>) -> usize {
    s.server_side.of("/").server_count().await.unwrap_or(0)
}

/// Waits until every server of `servers` counts `n` servers.
async fn converge<T: Transport>(servers: &[&TestServer<T>], n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut counts = Vec::new();
        for s in servers {
            counts.push(server_count(s).await);
        }
        if counts.iter().all(|&c| c == n) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server counts {counts:?} never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn cluster<B: Backend>(n: usize) -> Cluster<B> {
    let backend = B::cluster().await;
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(server::start(backend.transport().await, backend.config()).await);
    }
    converge(&servers.iter().collect::<Vec<_>>(), n).await;
    Cluster { backend, servers }
}

async fn client<T: Transport>(
    s: &TestServer<T>,
    nsp: &str,
    rooms: &[&str],
    name: &str,
) -> TestClient {
    TestClient::connect(
        s.addr,
        nsp,
        json!({ "rooms": rooms }),
        Some(json!({ "from": name })),
    )
    .await
    .unwrap_or_else(|e| panic!("client {name}: {e}"))
}

/// Emits a marker from `s` and returns, per client, the events that arrived before it.
async fn fence<T: Transport>(
    s: &TestServer<T>,
    clients: &mut [&mut TestClient],
) -> Vec<Vec<Event>> {
    let marker = format!("fence-{}", rand::random::<u32>());
    s.io.emit(&marker, &()).await.expect("fence emit");
    let mut out = Vec::new();
    for c in clients.iter_mut() {
        let mut before = Vec::new();
        loop {
            let e = c
                .event(WAIT)
                .await
                .unwrap_or_else(|| panic!("fence {marker} never arrived"));
            if e.name == marker {
                break;
            }
            before.push(e);
        }
        out.push(before);
    }
    out
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

/// `io.emit` reaches every client of every server exactly once, arguments intact.
pub async fn broadcast_reaches_every_server<B: Backend>() {
    let c = cluster::<B>(3).await;
    let mut a = client(&c.servers[0], "/", &[], "a").await;
    let mut b = client(&c.servers[1], "/", &[], "b").await;
    let mut d = client(&c.servers[2], "/", &[], "c").await;
    c.servers[0]
        .io
        .emit("hello", &("world", 1, json!({"k": [true, null]})))
        .await
        .expect("emit");
    for cl in [&mut a, &mut b, &mut d] {
        let e = cl
            .expect("hello", WAIT)
            .await
            .expect("hello on every server");
        assert_eq!(
            e.args,
            vec![json!("world"), json!(1), json!({"k": [true, null]})]
        );
    }
    for before in fence(&c.servers[0], &mut [&mut a, &mut b, &mut d]).await {
        assert!(before.is_empty(), "duplicates: {:?}", names(&before));
    }
}

/// Rooms, several rooms without duplicates, except, and `socket.broadcast` across servers.
pub async fn rooms_except_and_broadcast_flag<B: Backend>() {
    let c = cluster::<B>(3).await;
    let mut a = client(&c.servers[0], "/", &["r1"], "a").await;
    let mut b = client(&c.servers[1], "/", &["r1", "r2"], "b").await;
    let mut d = client(&c.servers[2], "/", &["r2", "r3"], "d").await;
    let mut e = client(&c.servers[1], "/", &[], "e").await;
    let io = &c.servers[0].io;
    io.to(["r1", "r2"]).emit("multi", &1).await.expect("emit");
    io.to("r1")
        .except("r2")
        .emit("only-r1", &2)
        .await
        .expect("emit");
    io.except("r3").emit("not-r3", &3).await.expect("emit");
    let got = fence(&c.servers[0], &mut [&mut a, &mut b, &mut d, &mut e]).await;
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
pub async fn binary_payloads<B: Backend>() {
    let c = cluster::<B>(2).await;
    let mut b = client(&c.servers[1], "/", &[], "b").await;
    let payload = (Bytes::from_static(&[1, 2, 3]), json!({"a": 1}));
    c.servers[0].io.emit("bin", &payload).await.expect("emit");
    let e = b.expect("bin", WAIT).await.expect("binary event");
    assert_eq!(e.binaries, vec![vec![1, 2, 3]]);
    assert_eq!(e.args[0], json!({"_placeholder": true, "num": 0}));
    assert_eq!(e.args[1], json!({"a": 1}));
}

/// Namespaces are separate, dynamic namespaces included; volatile broadcasts cross servers.
pub async fn namespaces_and_volatile<B: Backend>() {
    let c = cluster::<B>(2).await;
    let mut root = client(&c.servers[1], "/", &[], "root").await;
    let mut admin = client(&c.servers[1], "/admin", &[], "admin").await;
    let mut dyn_a = client(&c.servers[0], "/dyn/42", &[], "dyn-a").await;
    let mut dyn_b = client(&c.servers[1], "/dyn/42", &[], "dyn-b").await;
    let io = &c.servers[0].io;
    io.of("/admin")
        .expect("/admin")
        .emit("adm", &1)
        .await
        .expect("emit");
    assert!(admin.receives("adm", WAIT).await);
    io.volatile().emit("vol", &2).await.expect("emit");
    assert!(root.receives("vol", WAIT).await, "volatile crosses servers");
    // a dynamic namespace instance joins the cluster when its first client connects
    converge_ns(&c, "/dyn/42").await;
    io.of("/dyn/42")
        .expect("dyn ns")
        .emit("dyn", &3)
        .await
        .expect("emit");
    assert!(dyn_a.receives("dyn", WAIT).await);
    assert!(dyn_b.receives("dyn", WAIT).await);
    let got = fence(&c.servers[0], &mut [&mut root]).await;
    assert!(
        !names(&got[0]).contains(&"adm") && !names(&got[0]).contains(&"dyn"),
        "{:?}",
        names(&got[0])
    );
}

async fn converge_ns<B: Backend>(c: &Cluster<B>, nsp: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut ok = true;
        for s in &c.servers {
            ok &= s.server_side.of(nsp).server_count().await.unwrap_or(0) == c.servers.len();
        }
        if ok {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{nsp} never joined the cluster"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Broadcast with acks: one ack per client on every server, ending as soon as all arrived;
/// a silent client only costs its own ack.
pub async fn broadcast_with_acks<B: Backend>() {
    let c = cluster::<B>(3).await;
    let _a = client(&c.servers[0], "/", &[], "a").await;
    let _b = client(&c.servers[1], "/", &[], "b").await;
    let _d = client(&c.servers[2], "/", &[], "d").await;
    let io = &c.servers[0].io;
    let started = tokio::time::Instant::now();
    let stream = io
        .timeout(Duration::from_secs(30))
        .emit_with_ack::<_, Json>("ask", &7)
        .await
        .expect("emit with ack");
    let acks: Vec<Json> = tokio::time::timeout(
        WAIT,
        stream.filter_map(|(_, r)| async move { r.ok() }).collect(),
    )
    .await
    .expect("the stream ends once every ack arrived, long before its 30 s timeout");
    assert!(started.elapsed() < WAIT);
    let from: BTreeSet<String> = acks
        .iter()
        .map(|a| a["from"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        from,
        ["a", "b", "d"].into_iter().map(String::from).collect()
    );

    // a client that never answers: the stream still ends, at its timeout, with the others' acks
    let _silent = TestClient::connect(c.servers[2].addr, "/", json!({}), None)
        .await
        .expect("client");
    let stream = io
        .timeout(Duration::from_millis(800))
        .emit_with_ack::<_, Json>("ask", &8)
        .await
        .expect("emit with ack");
    let results: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("ends at the timeout");
    assert_eq!(results.iter().filter(|(_, r)| r.is_ok()).count(), 3);

    // acks to a room on other servers only
    let stream = io
        .to("nobody-here")
        .emit_with_ack::<_, Json>("ask", &9)
        .await
        .expect("emit");
    let results: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("ends");
    assert!(results.is_empty());
}

/// fetchSockets across servers, and operations on one remote socket.
pub async fn fetch_sockets_and_remote_socket<B: Backend>() {
    let c = cluster::<B>(3).await;
    let mut a = client(&c.servers[0], "/", &["r"], "a").await;
    let mut b = client(&c.servers[1], "/", &["r"], "b").await;
    let mut d = client(&c.servers[2], "/", &[], "d").await;
    let io = &c.servers[0].io;
    let sockets = io.fetch_sockets().await.expect("fetch");
    let ids: BTreeSet<String> = sockets.iter().map(|s| s.data().id.to_string()).collect();
    let expected: BTreeSet<String> = [a.sid(), b.sid(), d.sid()]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(ids, expected);
    let in_r = io.within("r").fetch_sockets().await.expect("fetch r");
    assert_eq!(in_r.len(), 2);

    let remote_b = sockets
        .into_iter()
        .find(|s| s.data().id.as_str() == b.sid())
        .expect("b is listed");
    remote_b.emit("direct", &"to-b").await.expect("remote emit");
    assert_eq!(
        b.expect("direct", WAIT).await.map(|e| e.args),
        Some(vec![json!("to-b")])
    );
    remote_b.join("vip").await.expect("remote join");
    io.to("vip").emit("vip-only", &1).await.expect("emit");
    assert!(b.receives("vip-only", WAIT).await);
    let rooms = io.rooms().await.expect("rooms");
    assert!(
        rooms.iter().any(|r| r == "vip") && rooms.iter().any(|r| r == "r"),
        "{rooms:?}"
    );
    remote_b.leave("vip").await.expect("remote leave");
    io.to("vip").emit("vip-again", &2).await.expect("emit");
    let got = fence(&c.servers[0], &mut [&mut a, &mut b, &mut d]).await;
    assert!(
        names(&got[0]).is_empty() && names(&got[2]).is_empty(),
        "direct emit reached others: {got:?}"
    );
    assert!(!names(&got[1]).contains(&"vip-again"));
    remote_b.disconnect().await.expect("remote disconnect");
    assert!(
        b.disconnected(WAIT).await,
        "the remote socket is disconnected"
    );
}

/// socketsJoin, socketsLeave and disconnectSockets reach every server.
pub async fn sockets_join_leave_disconnect<B: Backend>() {
    let c = cluster::<B>(3).await;
    let mut a = client(&c.servers[0], "/", &["r1"], "a").await;
    let mut b = client(&c.servers[1], "/", &["r1"], "b").await;
    let mut d = client(&c.servers[2], "/", &["r2"], "d").await;
    let io = &c.servers[0].io;
    io.within("r1").join("r9").await.expect("join");
    io.to("r9").emit("nine", &9).await.expect("emit");
    assert!(a.receives("nine", WAIT).await && b.receives("nine", WAIT).await);
    io.within("r1").leave("r9").await.expect("leave");
    io.to("r9").emit("nine-again", &9).await.expect("emit");
    let got = fence(&c.servers[0], &mut [&mut a, &mut b, &mut d]).await;
    assert!(
        got.iter()
            .all(|g| !names(g).contains(&"nine-again") && !names(g).contains(&"nine")),
        "{got:?}"
    );
    io.within("r2").disconnect().await.expect("disconnect");
    assert!(
        d.disconnected(WAIT).await,
        "the client on another server is disconnected"
    );
    let got = fence(&c.servers[0], &mut [&mut a, &mut b]).await;
    assert!(got.iter().all(Vec::is_empty));
}

/// serverSideEmit with and without acks.
pub async fn server_side_emit<B: Backend>() {
    let c = cluster::<B>(3).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, s) in c.servers.iter().enumerate().skip(1) {
        let tx = tx.clone();
        s.server_side.of("/").on("ping", move |mut event| {
            let tx = tx.clone();
            async move {
                let arg: String = event.arg(0).unwrap_or_default();
                let _ = tx.send((i, arg.clone(), event.from().to_owned()));
                if event.wants_reply() {
                    let _ = event.reply(&format!("pong-{i}-{arg}"));
                }
            }
        });
    }
    let sender = &c.servers[0].server_side.of("/");
    sender.emit("ping", &("no-ack",)).expect("emit");
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        let (i, arg, _) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .ok()
            .flatten()
            .expect("handler ran");
        assert_eq!(arg, "no-ack");
        seen.insert(i);
    }
    assert_eq!(seen, [1, 2].into_iter().collect());
    let mut replies = sender
        .emit_with_ack("ping", &("x",))
        .await
        .expect("answers");
    replies.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        replies,
        vec![json!("pong-1-x"), json!("pong-2-x")]
            .into_iter()
            .map(|j| switchboard_wire::Value::from(j.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
    );
    // an event nobody handles gets no answer: the request times out and says so
    match sender.emit_with_ack("unhandled", &()).await {
        Err(Error::Timeout {
            answered: 0,
            expected: 2,
            ..
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// Closing a server is seen at once by the others (ADAPTER_CLOSE or unsubscribe).
pub async fn server_count_after_close<B: Backend>() {
    let c = cluster::<B>(3).await;
    c.servers[2].io.close().await;
    converge(&[&c.servers[0], &c.servers[1]], 2).await;
    let mut b = client(&c.servers[1], "/", &[], "b").await;
    c.servers[0].io.emit("still", &1).await.expect("emit");
    assert!(b.receives("still", WAIT).await);
    // requests no longer wait for the closed server
    let sockets = c.servers[0]
        .io
        .fetch_sockets()
        .await
        .expect("fetch after close");
    assert_eq!(sockets.len(), 1);
}

/// A node killed mid-request does not make requests hang; the count converges.
pub async fn killed_node<B: Backend>() {
    let c = cluster::<B>(3).await;
    let _b = client(&c.servers[1], "/", &[], "b").await;
    let started = tokio::time::Instant::now();
    c.backend.crash(&c.servers[2].transport);
    let fetched = tokio::time::timeout(WAIT, c.servers[0].io.fetch_sockets())
        .await
        .expect("fetchSockets returns while a node is dead");
    match fetched {
        Ok(s) => assert_eq!(s.len(), 1),
        Err(Error::Timeout {
            answered, expected, ..
        }) => assert!(answered < expected),
        Err(e) => panic!("unexpected error {e}"),
    }
    assert!(started.elapsed() < WAIT);
    converge(&[&c.servers[0], &c.servers[1]], 2).await;
    let stream = c.servers[0]
        .io
        .timeout(Duration::from_secs(30))
        .emit_with_ack::<_, Json>("ask", &1)
        .await
        .expect("emit");
    let acks: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("does not wait for the dead");
    assert_eq!(acks.len(), 1);
}

/// Instantiates the suite for a [`Backend`]: `conformance_suite!(MyBackend);` in a test file.
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
                $crate::testing::suite::$name::<$backend>().await;
            }
        )+
    };
}
