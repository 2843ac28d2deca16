//! The engine's conformance suite on the cluster transport: a relay in this process and every
//! server a worker connected to it over a Unix socket.

use std::path::PathBuf;

use switchboard_adapter_cluster::{ClusterOptions, ClusterTransport, Relay, RelayOptions};
use switchboard_testkit::Backend;

fn socket_path() -> PathBuf {
    switchboard_testkit::socket_path("sb-cluster-c")
}

struct InProcess {
    relay: Relay,
}

impl Backend for InProcess {
    type Transport = ClusterTransport;
    async fn cluster() -> Self {
        let relay = Relay::bind(socket_path(), RelayOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        InProcess { relay }
    }
    async fn transport(&self) -> ClusterTransport {
        ClusterTransport::connect(self.relay.path(), ClusterOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
    fn crash(t: &ClusterTransport) {
        t.crash_for_tests();
    }
}

mod in_process {
    switchboard_testkit::conformance_suite!(super::InProcess, crash);
}
