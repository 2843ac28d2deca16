//! A conformance-suite server in a process of its own (test harness, not a user example):
//! `cluster_suite_server --relay PATH [--slow-liveness]`. A cluster worker running the suite's
//! app, taking the suite's operations as JSON lines on stdin (`switchboard_testkit::control`).
//! `--slow-liveness` sets 30 s heartbeat and request timeouts, so that only the relay's notice
//! can end a request early when another worker dies.

use std::time::Duration;

use switchboard_adapter_cluster::{ClusterOptions, ClusterTransport};
use switchboard_testkit::{control, server, test_options};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let relay = args
        .iter()
        .position(|a| a == "--relay")
        .and_then(|i| args.get(i + 1))
        .ok_or_else(|| std::io::Error::other("--relay PATH"))?;
    let mut options = test_options();
    if args.iter().any(|a| a == "--slow-liveness") {
        options = options
            .heartbeat_timeout(Duration::from_secs(30))
            .requests_timeout(Duration::from_secs(30));
    }
    let transport = ClusterTransport::connect(relay, ClusterOptions::default())
        .await
        .map_err(std::io::Error::other)?;
    control::serve_stdio(server::start(transport, options).await).await;
    Ok(())
}
