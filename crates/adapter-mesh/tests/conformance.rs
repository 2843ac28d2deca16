//! The engine's conformance suite on the mesh: servers in one process, each with its own peer
//! port, found through a mesh-discovery service on a free port.

use std::net::SocketAddr;

use switchboard_adapter_core::testing::Backend;
use switchboard_adapter_mesh::{MeshOptions, MeshTransport};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions};
use tokio::net::TcpListener;

struct Mesh {
    discovery: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Backend for Mesh {
    type Transport = MeshTransport;

    async fn cluster() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let discovery = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(Discovery::new(DiscoveryOptions::default(), None).serve(
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Mesh {
            discovery,
            _stop: stop,
        }
    }

    async fn transport(&self) -> MeshTransport {
        let options = MeshOptions::default()
            .discovery(format!("ws://{}", self.discovery))
            .bind([127, 0, 0, 1].into())
            .ws_port(0);
        MeshTransport::start(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn crash(&self, t: &MeshTransport) {
        t.crash_for_tests();
    }
}

switchboard_adapter_core::conformance_suite!(Mesh, crash);
