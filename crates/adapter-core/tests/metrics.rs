//! The Prometheus metrics of the engine, on two in-memory servers.
#![cfg(feature = "prometheus")]

use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::json;
use switchboard_adapter_core::{AdapterOptions, Metrics, memory::MemoryHub};
use switchboard_testkit::{TestClient, converge, start};

fn text(registry: &Registry) -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_messages_requests_and_nodes() {
    let hub = MemoryHub::new();
    let (ra, rb) = (Registry::new(), Registry::new());
    let config = |r: &Registry| {
        AdapterOptions::default()
            .heartbeat_interval(Duration::from_millis(100))
            .metrics(Metrics::new(r, "memory").unwrap_or_else(|e| panic!("{e}")))
    };
    let a = start(hub.transport(), config(&ra)).await;
    let b = start(hub.transport(), config(&rb)).await;
    converge(&[&a], 2).await;
    let mut client = TestClient::connect(b.addr, "/", json!({}), Some(json!(1)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.io.emit("x", &1).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(client.receives("x", Duration::from_secs(10)).await);
    let fetched = a.io.fetch_sockets().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fetched.len(), 1);

    let ta = text(&ra);
    let tb = text(&rb);
    assert!(
        value(
            &ta,
            "socketio_memory_messages_sent_total{type=\"broadcast\"}"
        ) >= 1.0,
        "{ta}"
    );
    assert!(
        value(
            &ta,
            "socketio_memory_messages_sent_total{type=\"fetch_sockets\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &ta,
            "socketio_memory_messages_received_total{type=\"fetch_sockets_response\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &tb,
            "socketio_memory_messages_received_total{type=\"broadcast\"}"
        ) >= 1.0,
        "{tb}"
    );
    assert!(
        value(
            &ta,
            "socketio_memory_request_duration_seconds_count{kind=\"fetchSockets\"}"
        ) >= 1.0
    );
    assert_eq!(value(&ta, "socketio_memory_nodes_alive{nsp=\"/\"}"), 1.0);
}
