//! What the engine's errors say when an operation cannot run.

use switchboard_adapter_core::{Error, memory::MemoryHub};
use switchboard_testkit::{start, test_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_on_an_unknown_namespace_names_it() {
    let hub = MemoryHub::new();
    let server = start(hub.transport(), test_options()).await;
    let sent = server.server_side.of("/nope").emit("x", &());
    assert!(
        matches!(&sent, Err(Error::UnknownNamespace(n)) if n == "/nope"),
        "{sent:?}"
    );
    let text = sent.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(text, "no namespace /nope on this server");
    // the namespaces the server has work
    assert!(server.server_side.of("/").emit("x", &()).is_ok());
}
