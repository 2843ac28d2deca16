//! Fault scenarios every transport with a broker runs: the broker stopped and started again under
//! two servers.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_adapter_core::{Liveness, Transport};

use crate::{
    TestClient, TestServer,
    server::converge,
    services::{RedisServer, SecantusDb},
    suite::WAIT,
    wait::{check, eventually},
};

/// A broker a test can stop and start again on the same address.
pub trait Restartable {
    /// Stops it: clients see their connections drop.
    fn stop(&mut self);
    /// Starts it again where it was.
    fn restart(&mut self);
}

impl Restartable for RedisServer {
    fn stop(&mut self) {
        RedisServer::stop(self);
    }
    fn restart(&mut self) {
        RedisServer::restart(self);
    }
}

impl Restartable for SecantusDb {
    fn stop(&mut self) {
        SecantusDb::stop(self);
    }
    fn restart(&mut self) {
        SecantusDb::restart(self);
    }
}

/// `broker` stopped and restarted under servers `a` and `b` (in one cluster over it, with
/// requests timing out well under [`WAIT`]): local delivery goes on while it is down, a request
/// does not hang, and once it is back broadcasts and requests flow both ways again. Returns how
/// long after the restart remote delivery resumed.
///
/// While the broker is down a request fails with an error when the transport counts servers
/// through the broker (`Liveness::Subscribers`); with heartbeats it fails at its timeout, or
/// answers with the local sockets alone once the other server was declared dead.
pub async fn survives_a_broker_restart<T: Transport, B: Restartable>(
    broker: &mut B,
    a: &TestServer<T>,
    b: &TestServer<T>,
    liveness: Liveness,
) -> Duration {
    converge(&[a, b], 2).await;
    let mut ca = TestClient::connect(a.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.io.emit("before", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("before", WAIT).await);

    broker.stop();
    // local delivery goes on
    let _ = a.io.emit("during", &2).await;
    assert!(
        ca.receives("during", WAIT).await,
        "local delivery must not stop"
    );
    // a request does not hang
    let fetched = tokio::time::timeout(WAIT, a.io.fetch_sockets()).await;
    let expected = match (&fetched, liveness) {
        (Ok(Err(_)), _) => true,
        (Ok(Ok(sockets)), Liveness::Heartbeat) => sockets.len() == 1,
        _ => false,
    };
    assert!(
        expected,
        "fetchSockets while the broker is down ({liveness:?}): {:?}",
        fetched.map(|r| r.map(|s| s.len()))
    );

    broker.restart();
    let back = Instant::now();
    // broadcasts flow again once the servers reconnected (and resubscribed, or reopened their
    // change streams)
    let mut n = 0;
    eventually(Duration::from_secs(30), async || {
        n += 1;
        let _ = a.io.emit("after", &n).await;
        let got = cb.receives("after", Duration::from_millis(200)).await;
        check(got, || {
            "broadcasts did not resume after the broker came back".into()
        })
    })
    .await;
    let resumed = back.elapsed();
    // each counts the other again, and the other direction and requests work too
    converge(&[a, b], 2).await;
    b.io.emit("back", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ca.receives("back", WAIT).await);
    let sockets =
        a.io.fetch_sockets()
            .await
            .unwrap_or_else(|e| panic!("requests work again: {e}"));
    assert_eq!(sockets.len(), 2);
    resumed
}
