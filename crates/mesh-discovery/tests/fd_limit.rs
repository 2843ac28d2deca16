//! The discovery service at the file descriptor limit: `accept()` fails with EMFILE while
//! connections wait in the backlog. The listener must pause (and log) instead of spinning on the
//! error, and serve again once descriptors are free. Alone in its test binary: it lowers the limit
//! of the whole process.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions};
use switchboard_testkit::resources::cpu_share_at_fd_limit;
use switchboard_wire::{Limits, mesh::DiscoveryMessage};
use tokio::net::TcpListener;
use tokio_tungstenite::{connect_async, tungstenite::Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_pauses_at_the_fd_limit_instead_of_spinning() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let running = Discovery::new(DiscoveryOptions::default(), None)
        .spawn(listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = running.local_addr();
    let share = cpu_share_at_fd_limit(addr.port()).await;
    eprintln!(
        "at the fd limit with ~80 connections in the backlog: this process used {:.0}% of a core",
        share * 100.0
    );
    assert!(
        share < 0.3,
        "the listener spins on accept() errors: {:.0}% of a core",
        share * 100.0
    );
    // descriptors back: a pod registers and gets the roster
    let (mut ws, _) = connect_async(format!("ws://{addr}/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let register = DiscoveryMessage::Register {
        server_id: "pod-a".into(),
        address: "ws://pod-a:4000".into(),
        token: None,
    };
    ws.send(Message::Binary(register.to_msgpack().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let roster = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m
                && let Ok(DiscoveryMessage::Update { servers }) =
                    DiscoveryMessage::from_msgpack(&b, &Limits::DEFAULT)
            {
                return servers.into_iter().map(|s| s.server_id).collect::<Vec<_>>();
            }
        }
        Vec::new()
    })
    .await
    .unwrap_or_else(|_| panic!("no roster 15 s after the limit was lifted"));
    assert_eq!(roster, ["pod-a"]);
    running.shutdown();
}
