//! `cargo xtask bench [--quick] [--runs N] [--only a,b] [--scale] [--chart]`: Switchboard's transports against Node's
//! redis adapters and socketioxide-redis, with single-server baselines, in one run on this
//! machine. Implementations are interleaved (A B C…, A B C…) `--runs` times (3 by default, 1
//! with `--quick`); the report gives medians and min–max, and ratios to socketioxide-redis and to
//! Node classic. Writes `docs/benchmarks.md`, `docs/benchmarks/results.json` and the chart unless
//! `--quick`; `--chart` only redraws the chart from `results.json`. A full run with `--only`
//! re-measures those implementations and keeps the others' committed figures (the report says
//! when each was measured); `--scale` runs only the scale scenarios (servers, connections,
//! payload: `scale.rs`) and keeps the other figures. `--mongo` runs the MongoDB implementations instead, on a SecantusDB,
//! and writes `docs/benchmarks/mongo.md`.
#![allow(clippy::print_stdout)] // a command-line report

mod chart;
mod load;
mod mongo;
mod polling;
mod procs;
mod report;
mod scale;
mod scenarios;
mod shared;

use std::{net::SocketAddr, process::Command};

use anyhow::{Result, bail};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::services::{RedisServer, SecantusDb};

use crate::{
    procs::{Proc, bench_server, interop_dir, publish_ceiling, server},
    report::Results,
    scenarios::Figures,
    shared::arg,
};

/// How much each scenario does.
pub(crate) struct Sizes {
    clients: usize,
    warm: u64,
    blast: u64,
    paced: u64,
    path_small: u64,
    path_large: u64,
    requests: u32,
    polling_sessions: usize,
    polling_round_trips: u64,
    /// Events of the blast in the servers scenario (N = 2, 4, 8).
    scale_events: u64,
    /// Clients per server in the connections scenario.
    conns_per_server: usize,
    /// How long those clients stay idle before the broadcast.
    idle: std::time::Duration,
    /// Events of the 64 KiB and of the 1 MiB adapter path.
    payload_small: u64,
    payload_large: u64,
    /// How long a wait for deliveries goes on without progress before what is missing counts as
    /// lost: a few seconds for redis and the mesh; longer for MongoDB, where a slow server (the
    /// Python SecantusDB) delivers late rather than never, and late is measured as latency.
    stall: std::time::Duration,
}

const FULL: Sizes = Sizes {
    clients: 200,
    warm: 1_000,
    blast: 20_000,
    paced: 5_000,
    path_small: 20_000,
    path_large: 5_000,
    requests: 200,
    polling_sessions: 50,
    polling_round_trips: 40,
    scale_events: 10_000,
    conns_per_server: 5_000,
    idle: std::time::Duration::from_secs(30),
    payload_small: 2_000,
    payload_large: 200,
    stall: std::time::Duration::from_secs(3),
};

const QUICK: Sizes = Sizes {
    clients: 200,
    warm: 300,
    blast: 3_000,
    paced: 750,
    path_small: 5_000,
    path_large: 1_000,
    requests: 30,
    polling_sessions: 20,
    polling_round_trips: 20,
    scale_events: 2_000,
    conns_per_server: 1_000,
    idle: std::time::Duration::from_secs(5),
    payload_small: 300,
    payload_large: 30,
    stall: std::time::Duration::from_secs(3),
};

/// One implementation under test.
#[derive(Clone, Copy)]
pub(crate) struct Impl {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// `bench-server --impl <name>`.
    Rust(&'static str),
    /// `node bench-server.js --mode <mode>`.
    Node(&'static str),
}

pub(crate) const IMPLS: [Impl; 14] = [
    Impl {
        name: "switchboard redis classic",
        kind: Kind::Rust("switchboard-redis"),
    },
    Impl {
        name: "switchboard redis sharded",
        kind: Kind::Rust("switchboard-redis-sharded"),
    },
    Impl {
        name: "switchboard mesh",
        kind: Kind::Rust("switchboard-mesh"),
    },
    Impl {
        name: "switchboard cluster",
        kind: Kind::Rust("switchboard-cluster"),
    },
    Impl {
        name: "socketioxide-redis 0.4",
        kind: Kind::Rust("socketioxide-redis"),
    },
    Impl {
        name: "node redis-adapter classic",
        kind: Kind::Node("classic"),
    },
    Impl {
        name: "node redis-adapter sharded",
        kind: Kind::Node("sharded"),
    },
    Impl {
        name: "node cluster-adapter 0.3",
        kind: Kind::Node("cluster"),
    },
    Impl {
        name: "socketioxide, no adapter (1 server)",
        kind: Kind::Rust("socketioxide"),
    },
    Impl {
        name: "node, no adapter (1 server)",
        kind: Kind::Node("none"),
    },
    Impl {
        name: "switchboard sticky",
        kind: Kind::Rust("switchboard-sticky"),
    },
    Impl {
        name: "node sticky 2.0",
        kind: Kind::Node("sticky"),
    },
    Impl {
        name: "switchboard forward, round robin",
        kind: Kind::Rust("echo-forward"),
    },
    Impl {
        name: "switchboard, HAProxy sticky cookie",
        kind: Kind::Rust("echo-cookie"),
    },
];

impl Impl {
    /// A single server without adapter: a baseline for blast and paced only.
    pub(crate) fn single(&self) -> bool {
        matches!(self.kind, Kind::Rust("socketioxide") | Kind::Node("none"))
    }

    /// A sticky primary with 2 workers: the polling scenario only.
    pub(crate) fn sticky(&self) -> bool {
        matches!(
            self.kind,
            Kind::Rust("switchboard-sticky") | Kind::Node("sticky")
        )
    }

    /// Three servers behind HAProxy, the polling scenario only: `Some(true)` round robin with
    /// `switchboard-forward`, `Some(false)` the shipped sticky-cookie config without it.
    pub(crate) fn proxied(&self) -> Option<bool> {
        match self.kind {
            Kind::Rust("echo-forward") => Some(true),
            Kind::Rust("echo-cookie") => Some(false),
            _ => None,
        }
    }

    fn uses_redis(&self) -> bool {
        !self.single()
            && !self.sticky()
            && self.proxied().is_none()
            && !matches!(
                self.kind,
                Kind::Rust("switchboard-mesh" | "switchboard-cluster") | Kind::Node("cluster")
            )
            && !self.uses_mongo()
    }

    fn uses_mongo(&self) -> bool {
        mongo::IMPLS.iter().any(|m| m.kind == self.kind)
    }

    fn command(&self, redis: &str, discovery: &str, mongo: &str) -> Command {
        match self.kind {
            Kind::Rust(name) => {
                let mut c = Command::new(bench_server());
                c.args(["--impl", name, "--redis", redis, "--discovery", discovery]);
                c.args(["--mongo", mongo]);
                c
            }
            Kind::Node(mode) => {
                let mut c = Command::new("node");
                c.arg(interop_dir().join("bench-server.js"))
                    .args(["--mode", mode, "--redis", redis, "--mongo", mongo]);
                c
            }
        }
    }
}

/// The scenario of the sticky implementations.
pub(crate) const POLLING: &str = "polling through a sticky primary";
/// The scenario of the proxied implementations.
pub(crate) const POLLING_PROXY: &str = "polling behind HAProxy, 3 servers";

/// Starts `n` servers of `imp` (one for a single-server baseline) and waits until the cluster
/// formed.
/// The brokers of a run: redis always; with `--mongo`, one SecantusDB per implementation (a slow
/// implementation's backlog in the Python server must not weigh on the next one).
struct Brokers {
    redis: RedisServer,
    mongos: Vec<SecantusDb>,
    /// Which of `mongos` the implementation being measured uses.
    current: usize,
}

impl Brokers {
    fn mongo(&self) -> Option<&SecantusDb> {
        self.mongos.get(self.current)
    }

    fn mongo_url(&self) -> String {
        self.mongo().map(SecantusDb::url).unwrap_or_default()
    }

    /// The broker process whose CPU the adapter path reports.
    fn pid(&self, imp: &Impl) -> Option<u32> {
        if imp.uses_redis() {
            self.redis.pid()
        } else if imp.uses_mongo() {
            self.mongo().and_then(SecantusDb::pid)
        } else {
            None
        }
    }
}

/// What must live as long as a cluster's servers: the discovery service, the cluster primary
/// (Node's or the Switchboard relay) and its socket file.
struct Guard {
    _discovery: Option<RunningDiscovery>,
    primary: Option<Proc>,
    socket: Option<std::path::PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // a relay killed by the harness leaves its socket file
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn servers(
    imp: &Impl,
    n: usize,
    brokers: &Brokers,
) -> Result<(Vec<Proc>, Vec<SocketAddr>, Guard)> {
    let discovery = if imp.kind == Kind::Rust("switchboard-mesh") {
        let local = ([127, 0, 0, 1], 0).into();
        Some(
            Discovery::new(DiscoveryOptions::default(), None)
                .spawn_on(local)
                .await?,
        )
    } else {
        None
    };
    let url = discovery
        .as_ref()
        .map(RunningDiscovery::url)
        .unwrap_or_default();
    let n = if imp.single() { 1 } else { n };
    // the cluster transport's relay: a socket of its own per cluster, in a process of its own
    // (the primary, as Node's cluster primary is its relay)
    let relay = std::env::temp_dir().join(format!(
        "sb-bench-{}-{}.sock",
        std::process::id(),
        shared::now_us()
    ));
    let mut procs = Vec::new();
    let mut addrs = Vec::new();
    let mut primary = None;
    if imp.kind == Kind::Node("cluster") {
        // one primary forks the workers (Node's `cluster`); the primary is the relay
        let mut command = imp.command(&brokers.redis.url(), &url, &brokers.mongo_url());
        command.args(["--workers", &n.to_string()]);
        let (p, workers) = procs::cluster(command, n)?;
        primary = Some(p);
        for (w, a) in workers {
            procs.push(w);
            addrs.push(a);
        }
    }
    if imp.kind == Kind::Rust("switchboard-cluster") && n > 1 {
        let mut command = imp.command(&brokers.redis.url(), &url, &brokers.mongo_url());
        command.arg("--relay").arg(&relay).arg("--primary");
        primary = Some(server(command)?.0);
    }
    for _ in 0..n {
        if imp.kind == Kind::Node("cluster") {
            break;
        }
        let mut command = imp.command(&brokers.redis.url(), &url, &brokers.mongo_url());
        if imp.kind == Kind::Rust("switchboard-cluster") {
            command.arg("--relay").arg(&relay);
        }
        let (p, a) = server(command)?;
        procs.push(p);
        addrs.push(a);
    }
    let heartbeats = imp.uses_mongo()
        || matches!(
            imp.kind,
            Kind::Rust("switchboard-cluster") | Kind::Node("cluster")
        );
    if discovery.is_some() || (heartbeats && n > 1) {
        // the mesh connects asynchronously, mongo and cluster servers know each other by
        // heartbeats: wait until a fetchSockets sees every server
        let ctl = load::Control::connect(addrs[0]).await?;
        let _conns = load::Load::connect(&addrs, n).await?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let r = ctl
                .call(
                    "fetch",
                    serde_json::json!(1),
                    std::time::Duration::from_secs(10),
                )
                .await?;
            if r[0][1].as_u64() == Some(n as u64) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the cluster did not form");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    } else {
        // redis subscriptions settle within a moment; give them one
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    Ok((
        procs,
        addrs,
        Guard {
            _discovery: discovery,
            socket: (imp.kind == Kind::Rust("switchboard-cluster")).then_some(relay),
            primary,
        },
    ))
}

async fn run_impl(imp: &Impl, brokers: &Brokers, sizes: &Sizes) -> Result<Vec<(String, Figures)>> {
    let mut out = Vec::new();
    if let Some(forward) = imp.proxied() {
        out.push((
            POLLING_PROXY.into(),
            polling::proxied(forward, sizes).await?,
        ));
        return Ok(out);
    }
    if imp.sticky() {
        let mut command = imp.command(&brokers.redis.url(), "", &brokers.mongo_url());
        command.args(["--workers", "2"]);
        let (primary, addr) = server(command)?;
        out.push((POLLING.into(), polling::polling(addr, sizes).await?));
        drop(primary);
        return Ok(out);
    }
    shared::phase("blast");
    let (procs, addrs, _d) = servers(imp, 2, brokers).await?;
    out.push((
        "blast".into(),
        scenarios::blast(&procs, &addrs, sizes).await?,
    ));
    drop((procs, addrs, _d));
    shared::phase("paced");
    let (procs, addrs, _d) = servers(imp, 2, brokers).await?;
    out.push((
        "paced".into(),
        scenarios::paced(&procs, &addrs, sizes).await?,
    ));
    drop((procs, addrs, _d));
    if imp.single() {
        return Ok(out);
    }
    for (label, size, n) in [
        ("adapter path 64 B", 64, sizes.path_small),
        ("adapter path 4 KiB", 4096, sizes.path_large),
    ] {
        shared::phase(label);
        let (procs, addrs, _d) = servers(imp, 2, brokers).await?;
        // Node's cluster primary is its relay: in the broker column
        let broker_pid = _d.primary.as_ref().map(Proc::pid).or(brokers.pid(imp));
        out.push((
            label.into(),
            scenarios::adapter_path(&procs, &addrs, broker_pid, size, n, sizes.stall).await?,
        ));
    }
    shared::phase("requests");
    let (_procs, addrs, _d) = servers(imp, 3, brokers).await?;
    out.push(("requests".into(), scenarios::requests(&addrs, sizes).await?));
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let runs: usize = arg(&args, "--runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let only = arg(&args, "--only");
    let with_mongo = args.iter().any(|a| a == "--mongo");
    // only the scale scenarios (servers, connections, payload); the other figures are kept
    let scale_only = args.iter().any(|a| a == "--scale");
    let sizes = match (with_mongo, quick) {
        (false, false) => &FULL,
        (false, true) => &QUICK,
        (true, false) => &mongo::FULL,
        (true, true) => &mongo::QUICK,
    };
    if args.iter().any(|a| a == "--chart") {
        // redraw the chart of the committed full run
        let results = Results::load(sizes)?;
        if !results.draw_chart(&IMPLS) {
            bail!("no chart drawn");
        }
        return Ok(());
    }
    let node = interop_dir().join("node_modules/socket.io").is_dir();
    if !node {
        println!("(Node implementations skipped: run `npm ci` in xtask/interop)");
    }
    let all: &[Impl] = if with_mongo { &mongo::IMPLS } else { &IMPLS };
    let impls: Vec<Impl> = all
        .iter()
        .copied()
        .filter(|i| node || !matches!(i.kind, Kind::Node(_)))
        .filter(|i| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|w| i.name.contains(w.trim())))
        })
        .collect();
    // redis-server on a free port, without persistence (needs redis-server on the PATH)
    let mut brokers = Brokers {
        redis: RedisServer::start(),
        // secantusd-py on the PATH (`pip install secantusdb`; .ci/run puts one in target/)
        mongos: if with_mongo {
            impls.iter().map(|_| SecantusDb::start()).collect()
        } else {
            Vec::new()
        },
        current: 0,
    };
    if !with_mongo {
        // the connections scenario holds conns_per_server × 4 clients here and as many
        // connections in the servers (which inherit the limit)
        let limit = scale::raise_fd_limit(65_536);
        let wanted = (sizes.conns_per_server * scale::CONNECTION_SERVERS + 1_000) as u64;
        if limit < wanted {
            println!(
                "(descriptor limit {limit}, not raised: the connections scenario holds fewer clients)"
            );
        }
    }
    let mut results = Results::new(quick, runs, sizes);
    for run in 0..runs {
        for (i, imp) in impls.iter().enumerate() {
            println!("run {}/{runs}: {}", run + 1, imp.name);
            brokers.current = i;
            if !scale_only {
                match run_impl(imp, &brokers, sizes).await {
                    Ok(figures) => {
                        for (scenario, f) in figures {
                            results.add(imp.name, &scenario, f);
                        }
                    }
                    Err(e) => println!("  failed: {e:#}"),
                }
            }
            if !with_mongo {
                match scale::run(imp, &brokers, sizes).await {
                    Ok(figures) => {
                        for (scenario, f) in figures {
                            results.add(imp.name, &scenario, f);
                        }
                    }
                    Err(e) => println!("  scale scenarios failed: {e:#}"),
                }
            }
        }
        if with_mongo {
            let n = if quick { 2_000 } else { 10_000 };
            // the first implementation's server, idle now
            brokers.current = 0;
            match mongo::ceiling(&brokers.mongo_url(), n).await {
                Ok(per_s) => results.add_broker(Some(per_s)),
                Err(e) => println!("  SecantusDB ceiling failed: {e:#}"),
            }
        } else {
            results.add_broker(publish_ceiling(
                brokers.redis.port(),
                if quick { 100_000 } else { 1_000_000 },
            ));
        }
    }
    if (only.is_some() || scale_only) && !quick {
        // a partial full run: the other implementations keep their committed figures
        let file = if with_mongo {
            "mongo-results.json"
        } else {
            "results.json"
        };
        if let Ok(previous) = Results::load_from(file, sizes) {
            results.merge_previous(previous);
        }
    }
    let impls: Vec<Impl> = all.to_vec();
    if with_mongo {
        let markdown = results.markdown_mongo(&impls);
        println!("\n{markdown}");
        if !quick {
            results.write_mongo(&markdown)?;
        }
        return Ok(());
    }
    let markdown = results.markdown(&impls);
    println!("\n{markdown}");
    if !quick {
        results.write(&impls, &markdown)?;
    }
    Ok(())
}
