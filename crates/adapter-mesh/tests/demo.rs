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
