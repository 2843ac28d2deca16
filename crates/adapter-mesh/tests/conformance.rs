//! The engine's conformance suite on the mesh: servers in one process, each with its own peer
//! port, found through a mesh-discovery service on a free port.

use switchboard_adapter_mesh::{MeshOptions, MeshTransport};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::Backend;

struct Mesh {
    discovery: RunningDiscovery,
}

impl Backend for Mesh {
    type Transport = MeshTransport;

    async fn cluster() -> Self {
        // RUST_LOG=switchboard_adapter_mesh=debug shows the peers coming and going
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let discovery = Discovery::new(DiscoveryOptions::default(), None)
            .spawn_on(([127, 0, 0, 1], 0).into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Mesh { discovery }
    }

    async fn transport(&self) -> MeshTransport {
        let options = MeshOptions::default()
            .discovery(self.discovery.url())
            .bind([127, 0, 0, 1].into())
            .ws_port(0);
        MeshTransport::start(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn crash(t: &MeshTransport) {
        t.crash_for_tests();
    }
}

switchboard_testkit::conformance_suite!(Mesh, crash);
