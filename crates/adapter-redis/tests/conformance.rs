//! The engine's conformance suite on real redis: classic and sharded on a `redis-server`, sharded
//! on a 3-master Redis Cluster, each started by the fixture on free ports.

use switchboard_adapter_core::testing::Backend;
use switchboard_adapter_redis::{
    RedisOptions, RedisTransport,
    testing::{RedisCluster, RedisServer},
};

async fn transport(url: &str, options: RedisOptions) -> RedisTransport {
    RedisTransport::connect(url, options)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Classic pub/sub (Node's `createAdapter`).
struct Classic(RedisServer);

impl Backend for Classic {
    type Transport = RedisTransport;
    async fn cluster() -> Self {
        Classic(RedisServer::start())
    }
    async fn transport(&self) -> RedisTransport {
        transport(&self.0.url(), RedisOptions::classic()).await
    }
    fn crash(&self, t: &RedisTransport) {
        // a killed process's connections close: redis forgets its subscriptions
        crash(t);
    }
}

/// Sharded pub/sub (Node's `createShardedAdapter`, static mode) on a standalone redis.
struct Sharded(RedisServer);

impl Backend for Sharded {
    type Transport = RedisTransport;
    async fn cluster() -> Self {
        Sharded(RedisServer::start())
    }
    async fn transport(&self) -> RedisTransport {
        transport(&self.0.url(), RedisOptions::sharded()).await
    }
    fn crash(&self, t: &RedisTransport) {
        crash(t);
    }
}

/// Sharded pub/sub on a Redis Cluster.
struct ShardedCluster(RedisCluster);

impl Backend for ShardedCluster {
    type Transport = RedisTransport;
    async fn cluster() -> Self {
        ShardedCluster(RedisCluster::start())
    }
    async fn transport(&self) -> RedisTransport {
        transport(&self.0.url(), RedisOptions::sharded()).await
    }
    fn crash(&self, t: &RedisTransport) {
        crash(t);
    }
}

fn crash(t: &RedisTransport) {
    t.crash_for_tests();
}

mod classic {
    switchboard_adapter_core::conformance_suite!(super::Classic, crash);
}

mod sharded {
    switchboard_adapter_core::conformance_suite!(super::Sharded, crash);
}

mod sharded_cluster {
    switchboard_adapter_core::conformance_suite!(super::ShardedCluster);
}
