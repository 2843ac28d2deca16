//! The demo of the README (`cargo xtask demo`) runs: three servers and a discovery service on
//! free ports, every scripted message crosses the mesh.

#[allow(dead_code, unreachable_pub)] // the example's `main` and items are not used here
#[path = "../examples/chat.rs"]
mod chat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs() {
    let received = chat::run(chat::Ports::FREE, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received.len(), 3);
    for (i, got) in received.iter().enumerate() {
        assert_eq!(got.len(), 3, "client {i} got {got:?}");
        for n in 1..=3 {
            assert!(
                got.iter()
                    .any(|l| l.starts_with(&format!("client-{n} via node-{n}"))),
                "client {i}: {got:?}"
            );
        }
    }
}

/// A taken port is named, with the way out, instead of an `AddrInUse` debug dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_named() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let err = chat::run(chat::Ports::with_discovery(port), true)
        .await
        .err()
        .unwrap_or_else(|| panic!("the demo started on a taken port"));
    let text = err.to_string();
    assert!(
        text.contains(&format!("port {port} (mesh-discovery) is taken"))
            && text.contains("--free-ports"),
        "{text}"
    );
}
