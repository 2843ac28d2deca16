//! The engine's conformance suite on real redis: classic and sharded on a `redis-server`, sharded
//! on a 3-master Redis Cluster, each started by the fixture on free ports.

use switchboard_adapter_redis::{RedisOptions, RedisTransport};
use switchboard_testkit::Backend;
use switchboard_testkit::services::{RedisCluster, RedisServer};

async fn transport(url: &str, options: RedisOptions) -> RedisTransport {
    RedisTransport::connect(url, options)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// A backend over a redis fixture in a mode; `crash` behaves like a killed process: its
/// connections close and redis forgets its subscriptions.
macro_rules! backend {
    ($(#[$doc:meta])* $name:ident, $fixture:ty, $options:expr) => {
        $(#[$doc])*
        struct $name($fixture);

        impl Backend for $name {
            type Transport = RedisTransport;
            async fn cluster() -> Self {
                $name(<$fixture>::start())
            }
            async fn transport(&self) -> RedisTransport {
                transport(&self.0.url(), $options).await
            }
            fn crash(t: &RedisTransport) {
                t.crash_for_tests();
            }
        }
    };
}

backend!(
    /// Classic pub/sub (Node's `createAdapter`).
    Classic, RedisServer, RedisOptions::classic()
);
backend!(
    /// Sharded pub/sub (Node's `createShardedAdapter`, static mode) on a standalone redis.
    Sharded, RedisServer, RedisOptions::sharded()
);
backend!(
    /// Sharded pub/sub on a Redis Cluster.
    ShardedCluster, RedisCluster, RedisOptions::sharded()
);

mod classic {
    switchboard_testkit::conformance_suite!(super::Classic, crash);
}

mod sharded {
    switchboard_testkit::conformance_suite!(super::Sharded, crash);
}

mod sharded_cluster {
    switchboard_testkit::conformance_suite!(super::ShardedCluster);
}
