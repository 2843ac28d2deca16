//! One host without sid routing: a primary that spreads every connection round robin
//! (`route_by_sid(false)`) to three workers of the `sticky` example that forward each other's
//! sessions with `switchboard-forward` (`--forward-secret`). Node's `socket.io-client` on
//! long-polling only makes acked round trips and chats across workers; the same primary with
//! workers that do not forward fails with "Session ID unknown": the negative control.

use std::{collections::BTreeSet, time::Duration};

use serde_json::{Value as Json, json};
use switchboard_adapter_cluster::{Relay, RelayOptions};
use switchboard_sticky::{Balancing, Primary, PrimaryHandle, StickyOptions};
use switchboard_testkit::{check, eventually, example, services::node_report, socket_path};
use tokio::sync::oneshot;

/// Runs a primary with three workers (forwarding when `forward`) until the returned sender is
/// dropped.
async fn primary(forward: bool) -> (PrimaryHandle, oneshot::Sender<()>, Relay) {
    let path = socket_path("sb-sticky-forward");
    let relay = Relay::bind(&path, RelayOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec!["--relay".to_owned(), path.display().to_string()];
    if forward {
        args.extend([
            "--forward-secret".into(),
            "a secret the workers share".into(),
        ]);
    }
    let options = StickyOptions::default()
        .workers(3)
        .balancing(Balancing::RoundRobin)
        .route_by_sid(false)
        .program(example("switchboard-sticky", "sticky"))
        .args(args);
    let primary = Primary::bind("127.0.0.1:0", options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let handle = primary.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = primary
            .run_until(async move {
                let _ = stopped.await;
            })
            .await;
    });
    eventually(Duration::from_secs(20), async || {
        let s = handle.sessions();
        check(s.iter().all(Option::is_some), || {
            format!("workers connected: {s:?}")
        })
    })
    .await;
    (handle, stop, relay)
}

/// `roundrobin-client.js` on polling only; its JSON line and whether it succeeded.
async fn clients(url: String) -> (bool, Json) {
    node_report("roundrobin-client.js", &[&url, "6", "10", "polling"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_forward_each_other_s_sessions_without_sid_routing() {
    let (handle, stop, _relay) = primary(true).await;
    let (ok, report) = clients(format!("http://{}", handle.local_addr())).await;
    eprintln!("forwarding workers: {report}");
    assert!(ok, "{report}");
    assert_eq!(report["roundtrips"], json!(60), "{report}");
    assert_eq!(
        report["received"],
        json!(36),
        "every line everywhere: {report}"
    );
    let workers: BTreeSet<&str> = report["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    assert!(workers.len() >= 2, "sessions on one worker only: {report}");
    drop(stop);

    // the negative control: the same primary, workers that do not forward
    let (handle, _stop, _relay) = primary(false).await;
    let (ok, report) = clients(format!("http://{}", handle.local_addr())).await;
    eprintln!("workers without forwarding: {report}");
    assert!(!ok, "round robin without forwarding should fail: {report}");
    assert_eq!(report["status"], json!(400), "{report}");
    assert!(
        report["body"]
            .as_str()
            .is_some_and(|b| b.contains("Session ID unknown")),
        "{report}"
    );
}
