//! The peer port at the file descriptor limit: `accept()` fails with EMFILE while connections
//! wait in the backlog. The acceptor must pause (and log) instead of spinning on the error, and
//! serve again once descriptors are free. Alone in its test binary: it lowers the limit of the
//! whole process.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::SinkExt;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use switchboard_adapter_mesh::{MeshOptions, MeshTransport};
use switchboard_testkit::{check, eventually};
use switchboard_wire::mesh::Hello;
use tokio_tungstenite::{connect_async, tungstenite::Message};

/// CPU time of this process (user + system), from /proc, through a file opened beforehand (at
/// the limit, opening it would fail).
fn cpu_time(stat: &mut std::fs::File) -> Duration {
    use std::io::{Read, Seek};
    let mut text = String::new();
    let _ = stat.seek(std::io::SeekFrom::Start(0));
    let _ = stat.read_to_string(&mut text);
    let stat = text;
    // fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    // clock ticks: 100 per second on Linux
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acceptor_pauses_at_the_fd_limit_instead_of_spinning() {
    let transport = MeshTransport::start(
        MeshOptions::default()
            .bind([127, 0, 0, 1].into())
            .ws_port(0),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let port = transport.local_addr().port();
    let mut stat = std::fs::File::open("/proc/self/stat").unwrap_or_else(|e| panic!("{e}"));
    let limit = getrlimit(Resource::Nofile);
    // a few descriptors to spare, then none
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open_fds() + 24),
            maximum: limit.maximum,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    // 100 idle connections from another process (the backlog is 128) (which lifts its own limit)
    let script = format!(
        "import resource, socket, sys, time\n\
         h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))\n\
         s = [socket.create_connection(('127.0.0.1', {port})) for _ in range(100)]\n\
         print('connected', flush=True)\n\
         sys.stdin.read()\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut reader = BufReader::new(stdout);
    let ready = tokio::task::spawn_blocking(move || {
        let _ = reader.read_line(&mut line);
        line
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready.trim(), "connected");
    // the backlog holds connections the listener cannot take: measure what that costs
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!("python connected after {:?}", started.elapsed());
    let (cpu0, t0) = (cpu_time(&mut stat), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let share = cpu_time(&mut stat).saturating_sub(cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    eprintln!(
        "at the fd limit with ~80 connections in the backlog: this process used {:.0}% of a core",
        share * 100.0
    );
    // descriptors back: the port serves peers again
    setrlimit(Resource::Nofile, limit).unwrap_or_else(|e| panic!("{e}"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        share < 0.3,
        "the acceptor spins on accept() errors: {:.0}% of a core",
        share * 100.0
    );
    let uid = "00000000000000aa";
    let (mut ws, _) = connect_async(format!("ws://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let hello = Hello {
        uid: uid.into(),
        address: "ws://nowhere".into(),
        token: None,
    };
    ws.send(Message::Binary(hello.to_frame().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually(Duration::from_secs(15), async || {
        let peers = transport.connected_peers();
        check(peers == [uid], || format!("peers {peers:?}"))
    })
    .await;
}
