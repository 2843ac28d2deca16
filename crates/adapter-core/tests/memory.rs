//! The conformance suite on the in-memory transport, in both liveness modes.

use switchboard_adapter_core::{
    Liveness,
    memory::{MemoryHub, MemoryTransport},
};
use switchboard_testkit::Backend;

/// Heartbeat liveness, like Node's `ClusterAdapterWithHeartbeat`.
struct Heartbeats(MemoryHub);

impl Backend for Heartbeats {
    type Transport = MemoryTransport;
    async fn cluster() -> Self {
        Heartbeats(MemoryHub::new())
    }
    async fn transport(&self) -> MemoryTransport {
        self.0.transport()
    }
    fn crash(transport: &MemoryTransport) {
        transport.crash();
    }
}

/// Liveness from subscriber counts, like the redis adapters.
struct Subscribers(MemoryHub);

impl Backend for Subscribers {
    type Transport = MemoryTransport;
    async fn cluster() -> Self {
        Subscribers(MemoryHub::new())
    }
    async fn transport(&self) -> MemoryTransport {
        self.0.transport_with(Liveness::Subscribers)
    }
    fn crash(transport: &MemoryTransport) {
        transport.crash();
    }
}

mod heartbeat {
    switchboard_testkit::conformance_suite!(super::Heartbeats, crash);
}

mod subscribers {
    switchboard_testkit::conformance_suite!(super::Subscribers, crash);
}
