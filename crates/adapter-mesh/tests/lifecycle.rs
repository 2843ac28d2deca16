//! The mesh transport's life: nothing of it outlives a close or a drop, a peer announced again is
//! redialled at once, and a refusal by discovery is said in words.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use switchboard_adapter_mesh::{MeshOptions, MeshTransport, PeerInfo as Entry};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::{check, eventually};
use switchboard_wire::mesh::DiscoveryMessage;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

fn local() -> MeshOptions {
    MeshOptions::default()
        .bind([127, 0, 0, 1].into())
        .ws_port(0)
}

async fn discovery(options: DiscoveryOptions) -> (Discovery, RunningDiscovery) {
    let service = Discovery::new(options, None);
    let running = service
        .clone()
        .spawn_on(([127, 0, 0, 1], 0).into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (service, running)
}

async fn transport(options: MeshOptions) -> MeshTransport {
    MeshTransport::start(options)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Everything of `a` is gone: its port can be bound, `b` no longer has it as a peer, discovery no
/// longer lists it, and the runtime runs as many tasks as before `a` started.
async fn gone(port: SocketAddr, uid: &str, b: &MeshTransport, d: &Discovery, tasks: usize) {
    eventually(Duration::from_secs(3), async || {
        let listed = d.roster().iter().any(|p| p.server_id == uid);
        let peers = b.connected_peers();
        let bound = std::net::TcpListener::bind(port).is_ok();
        let alive = alive_tasks();
        check(
            !listed && peers.is_empty() && bound && alive <= tasks,
            || {
                format!(
                    "listed by discovery: {listed}, peers of b: {peers:?}, port free: {bound}, \
                 tasks alive: {alive} (before: {tasks})"
                )
            },
        )
    })
    .await;
}

async fn joined(a: &MeshTransport, b: &MeshTransport) {
    eventually(WAIT, async || {
        let (pa, pb) = (a.connected_peers(), b.connected_peers());
        check(pa == [b.uid()] && pb == [a.uid()], || {
            format!("a's peers {pa:?}, b's peers {pb:?}")
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transport_leaves_nothing_behind() {
    let (d, running) = discovery(DiscoveryOptions::default()).await;
    let b = transport(local().discovery(running.url())).await;
    eventually(WAIT, async || {
        check(d.roster().len() == 1, || "b is not registered".into())
    })
    .await;
    let tasks = alive_tasks();
    let a = transport(local().discovery(running.url())).await;
    joined(&a, &b).await;
    let (port, uid) = (a.local_addr(), a.uid().to_owned());
    drop(a);
    gone(port, &uid, &b, &d, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_transport_leaves_nothing_behind_though_handles_remain() {
    let (d, running) = discovery(DiscoveryOptions::default()).await;
    let b = transport(local().discovery(running.url())).await;
    eventually(WAIT, async || {
        check(d.roster().len() == 1, || "b is not registered".into())
    })
    .await;
    let tasks = alive_tasks();
    let a = transport(local().discovery(running.url())).await;
    let still_held = a.clone();
    joined(&a, &b).await;
    a.close();
    gone(a.local_addr(), a.uid(), &b, &d, tasks).await;
    assert!(still_held.connected_peers().is_empty());
}

/// A discovery service played by the test: it sends the rosters it is told to.
async fn scripted_discovery() -> (String, mpsc::UnboundedSender<Vec<Entry>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "ws://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Entry>>();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        // the pod registers first
        let _ = ws.next().await;
        while let Some(servers) = rx.recv().await {
            let update = DiscoveryMessage::Update { servers }.to_msgpack();
            if ws.send(Message::Binary(update.into())).await.is_err() {
                return;
            }
        }
    });
    (url, tx)
}

/// A peer played by the test: it accepts dials and reads each Hello, then neither reads nor
/// answers anything more (a Close included), like a stalled or partitioned process. Returns its
/// address and a counter of the Hellos it got.
async fn silent_peer() -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = format!(
        "ws://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let hellos = Arc::new(Mutex::new(0));
    let count = hellos.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                continue;
            };
            if let Some(Ok(Message::Binary(_))) = ws.next().await {
                *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            held.push(ws);
        }
    });
    (address, hellos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announced_again_is_redialled_at_once() {
    // a (smaller uid) dials b, a peer that stops answering once it has the Hello
    let (b_address, hellos) = silent_peer().await;
    let (url, rosters) = scripted_discovery().await;
    let a = transport(local().uid("00000000000000aa").discovery(url)).await;
    let both = vec![
        Entry {
            server_id: a.uid().to_owned(),
            address: a.address().to_owned(),
        },
        Entry {
            server_id: "00000000000000bb".into(),
            address: b_address,
        },
    ];
    let _ = rosters.send(both.clone());
    let dialled = async |n: usize| {
        eventually(WAIT, async || {
            let got = *hellos.lock().unwrap_or_else(|e| e.into_inner());
            let peers = a.connected_peers();
            check(got == n && peers == ["00000000000000bb"], || {
                format!("hellos {got} (want {n}), a's peers {peers:?}")
            })
        })
        .await;
    };
    dialled(1).await;
    // a roster without b (a discovery service restarting: b not registered again yet), then b is
    // back: a drops b without waiting for an answer b never gives, and dials it again now, not
    // after its 1-2 s redial delay
    let _ = rosters.send(both[..1].to_vec());
    let _ = rosters.send(both);
    let announced = Instant::now();
    dialled(2).await;
    let took = announced.elapsed();
    assert!(
        took < Duration::from_millis(900),
        "redialled {took:?} after the roster announced b again (Node's redial delay is 1-2 s)"
    );
}

/// Log lines of every test of this binary (installed once, process-wide, since the transport
/// logs from the runtime's threads).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Writer(sink.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_discovery_is_said_in_words() {
    let logs = logs();
    let (d, running) = discovery(DiscoveryOptions {
        auth_token: Some("right".into()),
        ..DiscoveryOptions::default()
    })
    .await;
    let a = transport(local().discovery(running.url()).auth_token("wrong")).await;
    eventually(WAIT, async || {
        let text =
            String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        check(
            text.contains("refused our MESH_AUTH_TOKEN") && text.contains("4401"),
            || format!("logs so far: {text}"),
        )
    })
    .await;
    assert!(
        d.roster().is_empty(),
        "a pod with a wrong token is not registered"
    );
    // and a health check can see it
    let refusals = a.discovery_refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].0, running.url());
    drop(a);
    // the right token: no refusal
    let b = transport(local().discovery(running.url()).auth_token("right")).await;
    eventually(WAIT, async || {
        let n = d.roster().len();
        check(n == 1, || format!("roster of {n}"))
    })
    .await;
    assert!(b.discovery_refusals().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hello_is_said_in_words() {
    let logs = logs();
    // b (larger uid) wants token "b"; a dials it with "a"
    let b = transport(local().uid("00000000000000bb").auth_token("b")).await;
    let a = transport(
        local()
            .uid("00000000000000aa")
            .auth_token("a")
            .static_peers(vec![Entry {
                server_id: b.uid().to_owned(),
                address: format!("ws://{}", b.local_addr()),
            }]),
    )
    .await;
    eventually(WAIT, async || {
        let text =
            String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        check(
            text.contains("refused our Hello (close 1002 hello-invalid)")
                && text.contains("MESH_AUTH_TOKEN"),
            || format!("logs so far: {text}"),
        )
    })
    .await;
    assert!(a.connected_peers().is_empty() && b.connected_peers().is_empty());
}
