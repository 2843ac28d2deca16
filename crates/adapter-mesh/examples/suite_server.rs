//! A conformance-suite server in a process of its own (test harness, not a user example):
//! `suite_server --discovery ws://host:port`. Runs the suite's app on a mesh transport and takes
//! the suite's operations as JSON lines on stdin (`switchboard_testkit::control`).

use switchboard_adapter_mesh::{MeshOptions, MeshTransport};
use switchboard_testkit::{control, server, test_options};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut options = MeshOptions::default()
        .bind([127, 0, 0, 1].into())
        .ws_port(0);
    if let Some(d) = args
        .iter()
        .position(|a| a == "--discovery")
        .and_then(|i| args.get(i + 1))
    {
        options = options.discovery(d.clone());
    }
    let transport = MeshTransport::start(options)
        .await
        .map_err(std::io::Error::other)?;
    control::serve_stdio(server::start(transport, test_options()).await).await;
    Ok(())
}
