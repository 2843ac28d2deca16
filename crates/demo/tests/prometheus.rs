//! The observability files of `docs/deploy/`, for real: `promtool check config` accepts the
//! shipped `prometheus.yml` (and the compose demo's); Debian's Prometheus, with the shipped file
//! (only its ports and interval replaced), scrapes a discovery service and three demo servers on a
//! mesh with clients and traffic; and every PromQL query of the shipped Grafana dashboard returns
//! at least one series from it.

use std::{path::PathBuf, time::Duration};

use prometheus::Registry;
use serde_json::{Value as Json, json};
use switchboard_demo::{Backend, DemoOptions, RunningDemo};
use switchboard_mesh_discovery::{Discovery, DiscoveryMetrics, DiscoveryOptions};
use switchboard_testkit::{TestClient, check, eventually, services::Prometheus};
use tokio::net::TcpListener;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy")
}

/// A demo server on the mesh of `discovery` (its metrics on its own `/metrics`).
async fn pod(name: &str, discovery: &str) -> RunningDemo {
    switchboard_demo::start(DemoOptions {
        name: name.into(),
        addr: ([127, 0, 0, 1], 0).into(),
        backend: Backend::Mesh {
            discovery: discovery.into(),
            ws_port: 0,
            server_address: None,
            auth_token: None,
        },
        forward: None,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_mesh_and_every_dashboard_query_answers() {
    if !Prometheus::installed() {
        // .ci/run installs it; a developer machine may not have it
        eprintln!("SKIPPED: prometheus is not installed (apt-get install prometheus)");
        return;
    }
    let shipped = deploy().join("prometheus.yml");
    Prometheus::check_config(&shipped).unwrap_or_else(|e| panic!("promtool: {e}"));
    // and the compose demo's
    let compose = deploy().join("../../docker/prometheus.yml");
    Prometheus::check_config(&compose).unwrap_or_else(|e| panic!("promtool: {e}"));

    // discovery with its metrics, three pods, clients and some traffic of every kind
    let registry = Registry::new();
    let metrics = DiscoveryMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
    let discovery = Discovery::new(DiscoveryOptions::default(), Some(metrics))
        .spawn(
            TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // the mesh's `/metrics` endpoint serves any registry
    let discovery_metrics =
        switchboard_adapter_mesh::metrics::serve(([127, 0, 0, 1], 0).into(), registry)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
    let url = discovery.url();
    let pods = [
        pod("one", &url).await,
        pod("two", &url).await,
        pod("three", &url).await,
    ];
    let mut clients = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        clients.push(
            TestClient::connect(p.addr(), "/", json!({ "name": format!("c{i}") }), None)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    // chat lines (broadcasts) and `who` (fetchSockets across the cluster: requests)
    let traffic = async |clients: &mut Vec<TestClient>| {
        for c in clients.iter_mut() {
            c.emit("chat", vec![json!({ "text": "hi" })]);
            let _ = c.emit_with_ack("who", vec![], Duration::from_secs(5)).await;
        }
    };

    // the shipped file, with only the ports and the interval replaced
    let text = std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("{e}"));
    let mut config = text
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{discovery_metrics}"));
    for (i, p) in pods.iter().enumerate() {
        config = config.replace(
            &format!("127.0.0.1:{}", 9101 + i),
            &format!("127.0.0.1:{}", p.addr().port()),
        );
    }
    let prom = Prometheus::start(&config);
    traffic(&mut clients).await;
    eventually(Duration::from_secs(30), async || {
        let up = prom.query("sum(up)").await;
        let n = up
            .as_ref()
            .ok()
            .and_then(|r| r.first())
            .and_then(|s| s["value"][1].as_str())
            .map(str::to_owned);
        check(n.as_deref() == Some("4"), || format!("targets up: {up:?}"))
    })
    .await;

    // every query of the dashboard answers with at least one series
    let dashboard: Json = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana-dashboard.json"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    for q in &queries {
        eventually(Duration::from_secs(30), async || {
            // keep traffic flowing for rates over the last minute
            traffic(&mut clients).await;
            let result = prom.query(q).await;
            check(result.as_ref().is_ok_and(|r| !r.is_empty()), || {
                format!("{q}: {result:?}")
            })
        })
        .await;
        eprintln!("ok: {q}");
    }
    for p in pods {
        p.shutdown().await;
    }
}
