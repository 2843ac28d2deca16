//! The mesh's metrics under their Node names, scraped from the `/metrics` endpoint.
#![cfg(feature = "prometheus")]

use std::time::Duration;

use prometheus::Registry;
use switchboard_adapter_core::{AdapterOptions, Metrics};
use switchboard_adapter_mesh::{
    MeshOptions, MeshTransport,
    metrics::{self, MeshMetrics},
};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions};
use switchboard_testkit::{converge, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = String::new();
    let _ = tcp.read_to_string(&mut body).await;
    body
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_metrics_have_the_node_names() {
    let discovery = Discovery::new(DiscoveryOptions::default(), None)
        .spawn_on(([127, 0, 0, 1], 0).into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let d = discovery.local_addr();
    let mut servers = Vec::new();
    let mut registries = Vec::new();
    for _ in 0..2 {
        let registry = Registry::new();
        let options = MeshOptions::default()
            .bind([127, 0, 0, 1].into())
            .ws_port(0)
            .discovery(format!("ws://{d}"))
            .metrics(MeshMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}")));
        let config = AdapterOptions::default()
            .heartbeat_interval(Duration::from_millis(100))
            .metrics(Metrics::new(&registry, "mesh").unwrap_or_else(|e| panic!("{e}")));
        servers.push(
            start(
                MeshTransport::start(options)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
                config,
            )
            .await,
        );
        registries.push(registry);
    }
    converge(&[&servers[0]], 2).await;
    servers[0]
        .io
        .emit("x", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = servers[0].io.fetch_sockets().await;
    let endpoint = metrics::serve(([127, 0, 0, 1], 0).into(), registries[0].clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = scrape(endpoint).await;
    assert_eq!(
        value(&text, "socketio_mesh_peers_connected "),
        1.0,
        "{text}"
    );
    assert_eq!(value(&text, "socketio_mesh_peers_expected "), 1.0);
    assert!(value(&text, "socketio_mesh_namespaces ") >= 1.0);
    assert!(
        value(
            &text,
            "socketio_mesh_messages_sent_total{type=\"broadcast\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            "socketio_mesh_messages_received_total{type=\"heartbeat\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            "socketio_mesh_request_duration_seconds_count{kind=\"fetchSockets\"}"
        ) >= 1.0
    );
}
