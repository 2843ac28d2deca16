//! A primary in this process routing to workers that are processes of their own (the `sticky`
//! example: socketioxide with the cluster adapter, the relay here too), driven by real
//! socket.io-client 4.8 sessions (`xtask/interop/sticky-client.js`), by our WebSocket test
//! client and by raw HTTP: polling, upgrades and WebSocket across workers; a keep-alive agent
//! shared by two sessions of different workers; 1 MiB binaries over polling with both parsers;
//! least-connection counts through disconnects and a `kill -9`; 503 with no worker; bad and
//! slow request heads; the example's chat page (its long-polling script run by Node) across
//! workers.

use std::{net::SocketAddr, process::Command, time::Duration};

use serde_json::{Value as Json, json};
use switchboard_adapter_cluster::{Relay, RelayOptions};
use switchboard_sticky::{Balancing, Primary, PrimaryHandle, StickyMetrics, StickyOptions};
use switchboard_testkit::{
    TestClient, check, client::AckReply, eventually, example, services::interop_dir, socket_path,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
};

const WAIT: Duration = Duration::from_secs(20);

/// A primary with `n` workers of the `sticky` example, and their relay.
struct Cluster {
    handle: PrimaryHandle,
    registry: prometheus::Registry,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    _relay: Relay,
}

impl Cluster {
    async fn start(n: usize, extra: &[&str], options: StickyOptions) -> Cluster {
        let path = socket_path("sb-sticky-relay");
        let relay = Relay::bind(&path, RelayOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut args = vec!["--relay".to_owned(), path.display().to_string()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let registry = prometheus::Registry::new();
        let metrics = StickyMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        let options = options
            .workers(n)
            .program(example("switchboard-sticky", "sticky"))
            .args(args)
            .metrics(metrics);
        let primary = Primary::bind("127.0.0.1:0", options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let handle = primary.handle();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = primary
                .run_until(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        let cluster = Cluster {
            handle,
            registry,
            stop: Some(stop),
            task,
            _relay: relay,
        };
        cluster.all_ready().await;
        cluster
    }

    async fn all_ready(&self) {
        eventually(WAIT, async || {
            let s = self.handle.sessions();
            check(s.iter().all(Option::is_some), || {
                format!("workers connected: {s:?}")
            })
        })
        .await;
    }

    fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    async fn sessions_are(&self, want: &[usize]) {
        let want: Vec<Option<usize>> = want.iter().map(|&n| Some(n)).collect();
        eventually(WAIT, async || {
            let s = self.handle.sessions();
            check(s == want, || format!("sessions {s:?}, want {want:?}"))
        })
        .await;
    }

    async fn total_is(&self, n: usize) {
        eventually(WAIT, async || {
            let s = self.handle.sessions();
            let total: usize = s.iter().flatten().sum();
            check(total == n, || format!("{total} sessions ({s:?}), want {n}"))
        })
        .await;
    }

    fn outcome(&self, name: &str) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "socketio_sticky_connections_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| m.get_label().iter().any(|l| l.value() == name))
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(WAIT, &mut self.task).await;
    }
}

/// Runs a scenario of `sticky-client.js` against the primary; its JSON result.
async fn node(cluster: &Cluster, scenario: &str, extra: &[&str]) -> Json {
    let mut args = vec![
        "sticky-client.js".to_owned(),
        cluster.url(),
        scenario.to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    node_script(&args).await
}

/// Runs a script of `xtask/interop`; the JSON line it prints.
async fn node_script(args: &[String]) -> Json {
    let out = tokio::process::Command::new("node")
        .current_dir(interop_dir())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("node: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn workers_of(result: &Json) -> Vec<u64> {
    let mut w: Vec<u64> = result["workers"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default();
    w.sort_unstable();
    w.dedup();
    w
}

/// One request on a connection of its own; the status and the body (workers close after
/// each response, the primary after its refusals).
async fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(request).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .unwrap_or_else(|_| panic!("no answer within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A polling handshake by hand; the session id.
async fn handshake(addr: SocketAddr) -> String {
    let (status, body) = http(
        addr,
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let start = body.find("\"sid\":\"").unwrap_or_else(|| panic!("{body}")) + 7;
    body[start..start + 16].to_owned()
}

async fn poll(addr: SocketAddr, sid: &str) -> (u16, String) {
    let request =
        format!("GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: test\r\n\r\n");
    http(addr, request.as_bytes()).await
}

/// A WebSocket client and the worker that greeted it.
async fn ws_client(addr: SocketAddr) -> (TestClient, u64) {
    let mut c = TestClient::connect(addr, "/", json!({}), AckReply::None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let hello = c
        .expect("hello", WAIT)
        .await
        .unwrap_or_else(|| panic!("no hello"));
    let worker = hello.args[0]["worker"]
        .as_u64()
        .unwrap_or_else(|| panic!("{:?}", hello.args));
    (c, worker)
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_clients_poll_upgrade_and_use_websocket_across_workers() {
    let cluster = Cluster::start(4, &[], StickyOptions::default()).await;
    let polling = node(&cluster, "polling", &[]).await;
    // 8 sessions, least-connection: every worker took some
    assert_eq!(workers_of(&polling), vec![0, 1, 2, 3], "{polling}");
    let upgrade = node(&cluster, "upgrade", &[]).await;
    assert!(workers_of(&upgrade).len() >= 2, "{upgrade}");
    let websocket = node(&cluster, "websocket", &[]).await;
    assert!(workers_of(&websocket).len() >= 2, "{websocket}");
    assert!(
        cluster.outcome("session") > 100,
        "polling requests routed by sid"
    );
    assert_eq!(cluster.outcome("unknown_sid"), 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_chats_across_workers_over_polling() {
    let cluster = Cluster::start(2, &[], StickyOptions::default()).await;
    let result = node_script(&["chat-page.js".to_owned(), cluster.url()]).await;
    let logs: Vec<String> = result["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Json::to_string)
        .collect();
    // two pages, two sessions, one on each worker (least-connection), the message on both
    assert_eq!(logs.len(), 2, "{result}");
    assert!(logs.iter().any(|l| l.contains("on worker 0")), "{result}");
    assert!(logs.iter().any(|l| l.contains("on worker 1")), "{result}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_agent_shared_by_two_sessions_reaches_each_owner() {
    let cluster = Cluster::start(2, &[], StickyOptions::default()).await;
    let result = node(&cluster, "keepalive", &[]).await;
    assert_eq!(workers_of(&result), vec![0, 1], "{result}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_binaries_cross_polling_whole_with_both_parsers() {
    for parser in [&[][..], &["--msgpack"][..]] {
        let cluster = Cluster::start(2, parser, StickyOptions::default()).await;
        let result = node(&cluster, "binary", parser).await;
        assert_eq!(
            result["sizes"].as_array().map(Vec::len),
            Some(3),
            "{result}"
        );
        cluster.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connection_counts_follow_disconnects_and_a_killed_worker() {
    let cluster = Cluster::start(4, &[], StickyOptions::default()).await;
    let addr = cluster.addr();
    let mut clients = Vec::new();
    for n in 1..=8 {
        clients.push(ws_client(addr).await);
        // WebSocket sessions are told by the worker's sweep: each counted before the next
        cluster.total_is(n).await;
    }
    cluster.sessions_are(&[2, 2, 2, 2]).await;
    // the clients of workers 0 and 1 leave
    let (leaving, mut staying): (Vec<_>, Vec<_>) = clients.into_iter().partition(|(_, w)| *w < 2);
    drop(leaving);
    cluster.sessions_are(&[0, 0, 2, 2]).await;
    // worker 2 killed: its clients lose their connections, it comes back empty
    let old = cluster.handle.pids()[2].unwrap_or_else(|| panic!("no pid"));
    assert!(
        Command::new("kill")
            .args(["-9", &old.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    );
    for (c, w) in &mut staying {
        if *w == 2 {
            assert!(c.disconnected(WAIT).await, "a client of the killed worker");
        }
    }
    cluster.sessions_are(&[0, 0, 0, 2]).await;
    let new = cluster.handle.pids()[2].unwrap_or_else(|| panic!("not restarted"));
    assert_ne!(new, old);
    // three new sessions go to the three empty workers, the restarted one among them
    let mut fresh = Vec::new();
    for n in 1..=3 {
        fresh.push(ws_client(addr).await);
        cluster.total_is(2 + n).await;
    }
    let mut took: Vec<u64> = fresh.iter().map(|(_, w)| *w).collect();
    took.sort_unstable();
    assert_eq!(took, vec![0, 1, 2]);
    cluster.sessions_are(&[1, 1, 1, 2]).await;
    drop((staying, fresh));
    cluster.sessions_are(&[0, 0, 0, 0]).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_polling_session_gets_an_error_and_stop_ends_every_worker() {
    let cluster = Cluster::start(2, &[], StickyOptions::default()).await;
    let addr = cluster.addr();
    let sid = handshake(addr).await;
    // the worker told the primary before its answer left: the next request is routed to it (the
    // primary may still be reading that word when the answer arrives, and waits for it)
    let (status, _) = poll(addr, &sid).await;
    assert_eq!(status, 200);
    let owner = cluster
        .handle
        .owner(&sid)
        .unwrap_or_else(|| panic!("{sid} unknown"));
    let pid = cluster.handle.pids()[owner].unwrap_or_else(|| panic!("no pid"));
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    );
    eventually(WAIT, async || {
        check(cluster.handle.owner(&sid).is_none(), || {
            "still owned".into()
        })
    })
    .await;
    let (status, body) = poll(addr, &sid).await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#)
    );
    cluster.all_ready().await;
    // graceful stop: every worker gone
    let pids: Vec<u32> = cluster.handle.pids().into_iter().flatten().collect();
    assert_eq!(pids.len(), 2);
    let handle = cluster.handle.clone();
    cluster.stop().await;
    assert_eq!(handle.pids(), vec![None, None]);
    for pid in pids {
        eventually(WAIT, async || {
            check(!alive(pid), || format!("{pid} still running"))
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_alive_answers_503() {
    let registry = prometheus::Registry::new();
    let metrics = StickyMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
    // a worker program that exits at once: never connected, restarted with a backoff
    let options = StickyOptions::default()
        .workers(2)
        .program("/bin/false")
        .args(Vec::<String>::new())
        .metrics(metrics);
    let primary = Primary::bind("127.0.0.1:0", options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = primary.local_addr();
    let task = tokio::spawn(primary.run_until(tokio::time::sleep(Duration::from_secs(60))));
    let (status, _) = http(addr, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(status, 503);
    eventually(WAIT, async || {
        let restarts: u64 = registry
            .gather()
            .iter()
            .filter(|f| f.name() == "socketio_sticky_worker_restarts_total")
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum();
        check(restarts >= 4, || format!("{restarts} restarts"))
    })
    .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_slow_heads_get_http_errors_without_stalling_others() {
    let options = StickyOptions::default()
        .head_timeout(Duration::from_secs(1))
        .max_head(1024)
        .balancing(Balancing::RoundRobin);
    let cluster = Cluster::start(1, &[], options).await;
    let addr = cluster.addr();
    // a head that never ends
    let mut slow = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    slow.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // others are served meanwhile
    let started = std::time::Instant::now();
    let sid = handshake(addr).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "held by the slow client"
    );
    assert_eq!(poll(addr, &sid).await.0, 200);
    let mut huge = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2000));
    huge.extend_from_slice(b"\r\n\r\n");
    let cases: [(&[u8], u16); 5] = [
        (b"hello there\r\n\r\n", 400),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00", 400),
        (&huge, 431),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        (
            b"GET /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA HTTP/1.1\r\n\r\n",
            400,
        ),
    ];
    for (request, want) in cases {
        let (status, body) = http(addr, request).await;
        assert_eq!(
            status,
            want,
            "{:?}: {body}",
            String::from_utf8_lossy(request)
        );
    }
    let mut rest = String::new();
    tokio::time::timeout(WAIT, slow.read_to_string(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("the slow head was never answered"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rest.starts_with("HTTP/1.1 408"), "{rest}");
    for (outcome, n) in [
        ("bad_request", 2),
        ("head_too_large", 1),
        ("http2", 1),
        ("unknown_sid", 1),
        ("head_timeout", 1),
    ] {
        assert_eq!(cluster.outcome(outcome), n, "{outcome}");
    }
    cluster.stop().await;
}
