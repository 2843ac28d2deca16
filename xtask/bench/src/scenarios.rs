//! The scenarios: blast, paced, adapter path, requests. Each starts fresh servers, runs, and
//! returns its figures by name.

use std::{collections::BTreeMap, net::SocketAddr, sync::atomic::Ordering, time::Duration};

use anyhow::Result;
use serde_json::{Value as Json, json};

use crate::{
    Sizes,
    load::{Control, Load},
    procs::{Proc, cpu_us, peak_rss_kib},
    shared::now_us,
};

pub(crate) type Figures = BTreeMap<String, f64>;

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

pub(crate) fn latency(f: &mut Figures, prefix: &str, mut l: Vec<u32>) {
    l.sort_unstable();
    f.insert(format!("{prefix}p50_ms"), percentile(&l, 0.50));
    f.insert(format!("{prefix}p99_ms"), percentile(&l, 0.99));
}

const LONG: Duration = Duration::from_secs(600);

/// Server A emits `warm` then `n` events of `size` bytes at `rate`/s (0: unpaced) to `clients`
/// connections spread over `servers`.
struct Emit {
    clients: usize,
    warm: u64,
    n: u64,
    size: usize,
    rate: u64,
    /// No delivery for this long ends a wait (see `Sizes::stall`).
    stall: Duration,
}

struct Outcome {
    load: Load,
    got: u64,
    wall_s: f64,
    server_cpu_us: Vec<u64>,
    redis_cpu_us: u64,
    client_cpu_us: u64,
}

async fn emit(
    servers: &[Proc],
    addrs: &[SocketAddr],
    redis: Option<u32>,
    e: &Emit,
) -> Result<Outcome> {
    let load = Load::connect(addrs, e.clients).await?;
    let ctl = Control::connect(addrs[0]).await?;
    let blast = |start: u64, count: u64| json!({"start": start, "count": count, "size": e.size, "rate": e.rate});
    ctl.call("blast", blast(0, e.warm), LONG).await?;
    let c = &load.counters;
    load.wait(&c.warm, e.warm * e.clients as u64, e.stall).await;
    load.measure_from(e.warm);
    let before: Vec<u64> = servers.iter().map(|p| cpu_us(p.pid())).collect();
    let redis_before = redis.map_or(0, cpu_us);
    let client_before = cpu_us(std::process::id());
    let t0 = now_us();
    ctl.call("blast", blast(e.warm, e.n), LONG).await?;
    let got = load
        .wait(&c.measured, e.n * e.clients as u64, e.stall)
        .await;
    let wall_s = c.last_us.load(Ordering::Relaxed).saturating_sub(t0) as f64 / 1e6;
    Ok(Outcome {
        got,
        wall_s,
        server_cpu_us: servers
            .iter()
            .zip(before)
            .map(|(p, b)| cpu_us(p.pid()).saturating_sub(b))
            .collect(),
        redis_cpu_us: redis.map_or(0, |pid| cpu_us(pid).saturating_sub(redis_before)),
        client_cpu_us: cpu_us(std::process::id()).saturating_sub(client_before),
        load,
    })
}

/// What blast and paced both report: server CPU per delivery, deliveries lost, peak RSS of the
/// larger server.
fn delivery_figures(servers: &[Proc], e: &Emit, o: &Outcome) -> Figures {
    let mut f = Figures::new();
    let total_cpu: u64 = o.server_cpu_us.iter().sum();
    f.insert(
        "cpu_us_per_delivery".into(),
        total_cpu as f64 / o.got.max(1) as f64,
    );
    f.insert(
        "lost".into(),
        (e.n * e.clients as u64).saturating_sub(o.got) as f64,
    );
    f.insert(
        "peak_rss_mib".into(),
        servers
            .iter()
            .map(|p| peak_rss_kib(p.pid()))
            .max()
            .unwrap_or(0) as f64
            / 1024.0,
    );
    f
}

/// Blast: every client gets every event, as fast as server A can emit.
pub(crate) async fn blast(servers: &[Proc], addrs: &[SocketAddr], s: &Sizes) -> Result<Figures> {
    blast_of(servers, addrs, s, s.blast).await
}

/// [`blast`] of `n` events.
pub(crate) async fn blast_of(
    servers: &[Proc],
    addrs: &[SocketAddr],
    s: &Sizes,
    n: u64,
) -> Result<Figures> {
    let e = Emit {
        clients: s.clients,
        warm: s.warm,
        n,
        size: 64,
        rate: 0,
        stall: s.stall,
    };
    let o = emit(servers, addrs, None, &e).await?;
    let mut f = delivery_figures(servers, &e, &o);
    f.insert("deliveries_per_s".into(), o.got as f64 / o.wall_s);
    f.insert(
        "client_cpu_pct".into(),
        o.client_cpu_us as f64 / (o.wall_s * 1e4),
    );
    latency(&mut f, "", o.load.latencies(None));
    Ok(f)
}

/// Paced: the same clients, `rate` events/s; latency on the emitting and the remote server.
pub(crate) async fn paced(servers: &[Proc], addrs: &[SocketAddr], s: &Sizes) -> Result<Figures> {
    let e = Emit {
        clients: s.clients,
        warm: 100,
        n: s.paced,
        size: 64,
        rate: 500,
        stall: s.stall,
    };
    let o = emit(servers, addrs, None, &e).await?;
    let mut f = delivery_figures(servers, &e, &o);
    latency(&mut f, "local_", o.load.latencies(Some(0)));
    if addrs.len() > 1 {
        latency(&mut f, "remote_", o.load.latencies(Some(1)));
    }
    Ok(f)
}

/// Adapter path: one client per server, unpaced, `size` bytes: cross-server events/s and CPU
/// per event on each server and on redis.
pub(crate) async fn adapter_path(
    servers: &[Proc],
    addrs: &[SocketAddr],
    redis: Option<u32>,
    size: usize,
    n: u64,
    stall: Duration,
) -> Result<Figures> {
    let e = Emit {
        clients: 2,
        // 200 events, at most ~4 MiB of them: a warm-up of 200 × 1 MiB would be a test of its own
        warm: (4 * 1024 * 1024 / size.max(1)).clamp(5, 200) as u64,
        n,
        size,
        rate: 0,
        stall,
    };
    let o = emit(servers, addrs, redis, &e).await?;
    let remote = o.load.latencies(Some(1)).len() as f64;
    let mut f = Figures::new();
    f.insert("events_per_s".into(), remote / o.wall_s);
    f.insert("lost".into(), n as f64 - remote);
    for (i, c) in o.server_cpu_us.iter().enumerate() {
        f.insert(
            format!("cpu_us_per_event_{}", ["a", "b"].get(i).unwrap_or(&"x")),
            *c as f64 / n as f64,
        );
    }
    if redis.is_some() {
        f.insert(
            "cpu_us_per_event_redis".into(),
            o.redis_cpu_us as f64 / n as f64,
        );
    }
    Ok(f)
}

fn times(reply: &Json) -> (Vec<u32>, f64) {
    let items = reply.as_array().cloned().unwrap_or_default();
    let t: Vec<u32> = items
        .iter()
        .filter_map(|x| x.get(0).and_then(Json::as_u64))
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
        .collect();
    let found = items
        .iter()
        .filter_map(|x| x.get(1).and_then(Json::as_f64))
        .sum::<f64>()
        / items.len().max(1) as f64;
    (t, found)
}

/// Requests across 3 servers with 10 clients each: fetchSockets and broadcast with acks.
pub(crate) async fn requests(addrs: &[SocketAddr], s: &Sizes) -> Result<Figures> {
    let load = Load::connect(addrs, 30).await?;
    let ctl = Control::connect(addrs[0]).await?;
    let mut f = Figures::new();
    for (event, prefix) in [("fetch", "fetch_"), ("acks", "acks_")] {
        let reply = ctl.call(event, json!(s.requests), LONG).await?;
        let (t, found) = times(&reply);
        latency(&mut f, prefix, t);
        f.insert(format!("{prefix}answers"), found);
    }
    drop(load);
    Ok(f)
}
