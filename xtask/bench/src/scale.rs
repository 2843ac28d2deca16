//! The scale scenarios: how cost grows with the number of servers, the number of connections and
//! the size of the events.
//!
//! - **servers N** (N = 2, 4, 8): the same clients spread evenly over N servers, the same blast
//!   from server A: deliveries/s and server CPU per delivery (all N servers' CPU).
//! - **connections**: `conns_per_server` clients on each of 4 servers (one server for a
//!   single-server baseline), idle for `idle`, then one broadcast to all: resident memory per
//!   connection (RSS growth ÷ connections), CPU while idle, and the time until the last client
//!   has the broadcast.
//! - **payload** (64 KiB, 1 MiB): the adapter path (one client per server, unpaced) with large
//!   events: MB/s across servers and CPU per MB on each server and the broker.

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use anyhow::Result;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use serde_json::json;

use crate::{
    Brokers, Impl, Kind, Sizes,
    load::{Control, Load},
    procs::{Proc, cpu_us, rss_kib},
    scenarios::{self, Figures},
    servers,
    shared::now_us,
};

/// The server counts of the servers scenario.
pub(crate) const SERVER_COUNTS: [usize; 3] = [2, 4, 8];

/// The name of the servers scenario with `n` servers.
pub(crate) fn servers_scenario(n: usize) -> String {
    format!("servers {n}")
}

/// The connections scenario.
pub(crate) const CONNECTIONS: &str = "connections";

/// Servers of the connections scenario (a single-server baseline runs one).
pub(crate) const CONNECTION_SERVERS: usize = 4;

/// The payload scenarios: name and event size.
pub(crate) const PAYLOADS: [(&str, usize); 2] = [
    ("adapter path 64 KiB", 64 * 1024),
    ("adapter path 1 MiB", 1024 * 1024),
];

/// A scenario of this module.
pub(crate) fn is_scale(scenario: &str) -> bool {
    scenario.starts_with("servers ")
        || scenario == CONNECTIONS
        || PAYLOADS.iter().any(|(name, _)| *name == scenario)
}

impl Impl {
    /// Measured in the scale scenarios (servers and payload): Switchboard redis and mesh,
    /// socketioxide-redis, Node's classic redis adapter.
    pub(crate) fn scales(&self) -> bool {
        matches!(
            self.kind,
            Kind::Rust(
                "switchboard-redis"
                    | "switchboard-redis-sharded"
                    | "switchboard-mesh"
                    | "socketioxide-redis"
            ) | Kind::Node("classic")
        )
    }
}

/// Raises this process's descriptor limit to its hard limit (with `CAP_SYS_RESOURCE`: to at
/// least `wanted`); the servers it starts inherit it. Returns the limit now in force.
pub(crate) fn raise_fd_limit(wanted: u64) -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    // root may raise the hard limit; anyone may raise the soft one up to it
    for maximum in [hard.max(wanted), hard] {
        let to = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        if setrlimit(Resource::Nofile, to).is_ok() {
            return maximum;
        }
    }
    limit.current.unwrap_or(0)
}

/// Every scale scenario of `imp`: servers, connections, payload.
pub(crate) async fn run(
    imp: &Impl,
    brokers: &Brokers,
    s: &Sizes,
) -> Result<Vec<(String, Figures)>> {
    let mut out = Vec::new();
    if imp.scales() {
        for n in SERVER_COUNTS {
            crate::shared::phase(&servers_scenario(n));
            let (procs, addrs, _guard) = servers(imp, n, brokers).await?;
            out.push((
                servers_scenario(n),
                scenarios::blast_of(&procs, &addrs, s, s.scale_events).await?,
            ));
        }
    }
    if imp.scales() || imp.single() {
        crate::shared::phase(CONNECTIONS);
        let (procs, addrs, _guard) = servers(imp, CONNECTION_SERVERS, brokers).await?;
        out.push((CONNECTIONS.into(), connections(&procs, &addrs, s).await?));
    }
    if imp.scales() {
        for (name, size) in PAYLOADS {
            let n = if size > 100_000 {
                s.payload_large
            } else {
                s.payload_small
            };
            crate::shared::phase(name);
            let (procs, addrs, guard) = servers(imp, 2, brokers).await?;
            let broker = guard.primary.as_ref().map(Proc::pid).or(brokers.pid(imp));
            let mut f = scenarios::adapter_path(&procs, &addrs, broker, size, n, s.stall).await?;
            per_megabyte(&mut f, size);
            out.push((name.into(), f));
        }
    }
    Ok(out)
}

/// Adds MB/s and CPU µs per MB (10⁶ bytes of event payload) to adapter-path figures.
fn per_megabyte(f: &mut Figures, size: usize) {
    let mb_per_event = size as f64 / 1e6;
    let derived: Vec<(String, f64)> = f
        .iter()
        .filter_map(|(k, v)| {
            if k == "events_per_s" {
                Some(("mb_per_s".to_owned(), v * mb_per_event))
            } else {
                k.strip_prefix("cpu_us_per_event_")
                    .map(|who| (format!("cpu_ms_per_mb_{who}"), v / mb_per_event / 1000.0))
            }
        })
        .collect();
    f.extend(derived);
}

/// Many idle clients, then one broadcast (see the module docs).
async fn connections(servers: &[Proc], addrs: &[SocketAddr], s: &Sizes) -> Result<Figures> {
    // the load client holds every connection: within this process's descriptor limit (20,000
    // on the machines here, whose hard limit the harness may not raise), with room to spare
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let room = usize::try_from(limit.saturating_sub(500)).unwrap_or(usize::MAX) / addrs.len();
    let per_server = s.conns_per_server.min(room);
    let ctl = Control::connect(addrs[0]).await?;
    let settle = Duration::from_secs(2);
    tokio::time::sleep(settle).await;
    let before: Vec<u64> = servers.iter().map(|p| rss_kib(p.pid())).collect();
    let t = std::time::Instant::now();
    let load = Load::connect_many(addrs, per_server * addrs.len(), 200).await?;
    let connect_s = t.elapsed().as_secs_f64();
    // what the handshakes allocated and freed settles
    tokio::time::sleep(settle).await;
    let connected: Vec<u64> = servers.iter().map(|p| rss_kib(p.pid())).collect();
    let cpu0: Vec<u64> = servers.iter().map(|p| cpu_us(p.pid())).collect();
    let idle_from = std::time::Instant::now();
    tokio::time::sleep(s.idle).await;
    let idle_s = idle_from.elapsed().as_secs_f64();
    let idle_cpu: Vec<f64> = servers
        .iter()
        .zip(&cpu0)
        .map(|(p, c)| cpu_us(p.pid()).saturating_sub(*c) as f64 / 1000.0 / idle_s)
        .collect();
    let idle_rss: Vec<u64> = servers.iter().map(|p| rss_kib(p.pid())).collect();

    // one broadcast to every client, from server A
    load.measure_from(0);
    let clients = (per_server * addrs.len()) as u64;
    let t0 = now_us();
    ctl.call(
        "blast",
        json!({"start": 0, "count": 1, "size": 64, "rate": 0}),
        Duration::from_secs(60),
    )
    .await?;
    let got = load.wait(&load.counters.measured, clients, s.stall).await;
    let last = load.counters.last_us.load(Ordering::Relaxed);

    let mut f = Figures::new();
    let growth: Vec<f64> = before
        .iter()
        .zip(&connected)
        .map(|(b, a)| a.saturating_sub(*b) as f64 * 1024.0 / per_server as f64)
        .collect();
    f.insert("rss_bytes_per_connection".into(), mean(&growth));
    f.insert(
        "rss_mib_per_server".into(),
        idle_rss.iter().max().copied().unwrap_or(0) as f64 / 1024.0,
    );
    f.insert("idle_cpu_ms_per_s".into(), mean(&idle_cpu));
    f.insert(
        "broadcast_ms".into(),
        last.saturating_sub(t0) as f64 / 1000.0,
    );
    f.insert("lost".into(), clients.saturating_sub(got) as f64);
    f.insert("connect_per_s".into(), clients as f64 / connect_s);
    f.insert("clients_per_server".into(), per_server as f64);
    drop(load);
    Ok(f)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_figures_get_megabyte_rates() {
        let mut f = Figures::new();
        f.insert("events_per_s".into(), 100.0);
        f.insert("cpu_us_per_event_a".into(), 2_000.0);
        f.insert("lost".into(), 0.0);
        per_megabyte(&mut f, 1_000_000);
        assert_eq!(f.get("mb_per_s"), Some(&100.0));
        // 2,000 µs per 1 MB event: 2 ms per MB
        assert_eq!(f.get("cpu_ms_per_mb_a"), Some(&2.0));
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn the_scale_scenarios_are_known_by_name() {
        assert!(is_scale(&servers_scenario(8)));
        assert!(is_scale(CONNECTIONS));
        assert!(is_scale("adapter path 1 MiB"));
        assert!(!is_scale("adapter path 64 B"));
        assert!(!is_scale("blast"));
    }
}
