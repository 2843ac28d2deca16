//! The peer port at the file descriptor limit: `accept()` fails with EMFILE while connections
//! wait in the backlog. The acceptor must pause (and log) instead of spinning on the error, and
//! serve again once descriptors are free. Alone in its test binary: it lowers the limit of the
//! whole process.

use std::time::Duration;

use futures_util::SinkExt;
use switchboard_adapter_mesh::{MeshOptions, MeshTransport};
use switchboard_testkit::{check, eventually, resources::cpu_share_at_fd_limit};
use switchboard_wire::mesh::Hello;
use tokio_tungstenite::{connect_async, tungstenite::Message};

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
    let share = cpu_share_at_fd_limit(port).await;
    eprintln!(
        "at the fd limit with ~80 connections in the backlog: this process used {:.0}% of a core",
        share * 100.0
    );
    assert!(
        share < 0.3,
        "the acceptor spins on accept() errors: {:.0}% of a core",
        share * 100.0
    );
    // descriptors back: the port serves peers again
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
