//! Medians, min–max and ratios of the runs, as a markdown report and JSON.

use std::{collections::BTreeMap, fmt::Write, process::Command};

use anyhow::Result;
use serde_json::json;

use crate::{Impl, POLLING, POLLING_PROXY, Sizes, scenarios::Figures};

mod scale;

const SIOXIDE_REDIS: &str = "socketioxide-redis 0.4";
const NODE_CLASSIC: &str = "node redis-adapter classic";
const NODE_STICKY: &str = "node sticky 2.0";
const SIOXIDE_ALONE: &str = "socketioxide, no adapter (1 server)";
const VS_NODE_STICKY: (&str, &str) = ("node sticky 2.0:round_trips_per_s", "vs Node sticky 2.0");
const VS_COOKIE: (&str, &str) = (
    "switchboard, HAProxy sticky cookie:round_trips_per_s",
    "vs cookie",
);

pub(crate) struct Results {
    quick: bool,
    runs: usize,
    sizes: String,
    /// (implementation, scenario) → one Figures per run.
    data: BTreeMap<(String, String), Vec<Figures>>,
    /// The broker's own ceiling per run: redis PUBLISH/s, or SecantusDB inserts/s.
    broker: Vec<f64>,
    /// When each implementation was measured (a run with `--only` keeps the others' figures).
    measured: BTreeMap<String, String>,
    /// When this run started.
    date: String,
}

fn median(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some((m, v[0], v[v.len() - 1]))
}

/// What the report's dates are kept by: the implementation, and apart from it its scale
/// scenarios (`--scale` measures only those).
fn measured_key(imp: &str, scenario: &str) -> String {
    if crate::scale::is_scale(scenario) {
        format!("{imp} (scale scenarios)")
    } else {
        imp.to_owned()
    }
}

/// A table's title and header rows: `implementation` then `headers`.
fn table_head<'a>(out: &mut String, title: &str, headers: impl Iterator<Item = &'a str>) {
    let _ = writeln!(out, "\n### {title}\n");
    let mut rule = String::from("|---|");
    let _ = write!(out, "| implementation |");
    for h in headers {
        let _ = write!(out, " {h} |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "\n{rule}");
}

fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Results {
    pub(crate) fn new(quick: bool, runs: usize, s: &Sizes) -> Self {
        Results {
            quick,
            runs,
            sizes: format!(
                "{} clients; blast {} + {} warm-up events; paced {} events at 500/s; adapter path {} × 64 B and {} × 4 KiB; {} requests of each kind{}",
                s.clients,
                s.blast,
                s.warm,
                s.paced,
                s.path_small,
                s.path_large,
                s.requests,
                if s.polling_sessions > 0 {
                    format!(
                        "; polling {} sessions × {} round trips",
                        s.polling_sessions, s.polling_round_trips
                    )
                } else {
                    String::new()
                }
            ) + &if s.scale_events > 0 {
                format!(
                    "; servers N = 2, 4, 8: {} events; connections: {} per server, idle {} s; adapter path {} × 64 KiB and {} × 1 MiB",
                    s.scale_events,
                    s.conns_per_server,
                    s.idle.as_secs(),
                    s.payload_small,
                    s.payload_large
                )
            } else {
                String::new()
            },
            data: BTreeMap::new(),
            broker: Vec::new(),
            measured: BTreeMap::new(),
            date: shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }

    pub(crate) fn add(&mut self, imp: &str, scenario: &str, f: Figures) {
        self.measured
            .entry(measured_key(imp, scenario))
            .or_insert_with(|| self.date.clone());
        self.data
            .entry((imp.to_owned(), scenario.to_owned()))
            .or_default()
            .push(f);
    }

    pub(crate) fn add_broker(&mut self, per_s: Option<f64>) {
        self.broker.extend(per_s);
    }

    /// (median, min, max) of `metric`.
    fn stat(&self, imp: &str, scenario: &str, metric: &str) -> Option<(f64, f64, f64)> {
        let runs = self.data.get(&(imp.to_owned(), scenario.to_owned()))?;
        median(runs.iter().filter_map(|f| f.get(metric).copied()).collect())
    }

    fn cell(&self, imp: &str, scenario: &str, metric: &str) -> String {
        match self.stat(imp, scenario, metric) {
            None => "–".into(),
            Some((m, lo, hi)) if self.runs > 1 && lo != hi => {
                format!("{} ({}–{})", num(m), num(lo), num(hi))
            }
            Some((m, _, _)) => num(m),
        }
    }

    fn ratio(&self, imp: &str, base: &str, scenario: &str, metric: &str) -> String {
        match (
            self.stat(imp, scenario, metric),
            self.stat(base, scenario, metric),
        ) {
            (Some((a, _, _)), Some((b, _, _))) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "–".into(),
        }
    }

    fn table(&self, out: &mut String, impls: &[Impl], scenario: &str, cols: &[(&str, &str)]) {
        let present: Vec<&Impl> = impls
            .iter()
            .filter(|i| {
                self.data
                    .contains_key(&(i.name.to_owned(), scenario.to_owned()))
            })
            .collect();
        if present.is_empty() {
            return;
        }
        table_head(out, scenario, cols.iter().map(|(_, h)| *h));
        for i in present {
            let _ = write!(out, "| {} |", i.name);
            for (metric, _) in cols {
                let cell = match metric.split_once(':') {
                    Some((base, m)) => self.ratio(i.name, base, scenario, m),
                    None => self.cell(i.name, scenario, metric),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }

    fn target(&self, out: &mut String, what: &str, value: Option<f64>, goal: f64, at_least: bool) {
        let verdict = match value {
            Some(v) if (at_least && v >= goal) || (!at_least && v <= goal) => {
                format!("{v:.2} — met")
            }
            Some(v) => format!("{v:.2} — **missed**"),
            None => "not measured".into(),
        };
        let _ = writeln!(
            out,
            "| {what} | {} {goal} | {verdict} |",
            if at_least { "≥" } else { "≤" }
        );
    }

    fn m(&self, imp: &str, scenario: &str, metric: &str) -> Option<f64> {
        self.stat(imp, scenario, metric).map(|s| s.0)
    }

    fn ratio_of(&self, a: (&str, &str, &str), b: (&str, &str, &str)) -> Option<f64> {
        Some(self.m(a.0, a.1, a.2)? / self.m(b.0, b.1, b.2)?)
    }

    /// The command, date, machine and sizes.
    fn header(&self, out: &mut String, command: &str) {
        let cpu = shell(
            "sh",
            &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
        );
        let _ = writeln!(
            out,
            "Command: `{command}{}` ({} run{}, interleaved; median and min–max). Date: {}. Machine: {} cores ({}), {}. Node {}, {}.\n\nSizes: {}.",
            if self.quick { " --quick" } else { "" },
            self.runs,
            if self.runs == 1 { "" } else { "s" },
            shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            shell("nproc", &[]),
            cpu.trim(),
            shell(
                "sh",
                &["-c", "free -g | awk '/Mem:/ {print $2 \" GiB RAM\"}'"]
            ),
            shell("node", &["--version"]),
            shell("sh", &["-c", "redis-server --version | cut -d' ' -f1-3"]),
            self.sizes,
        );
    }

    pub(crate) fn markdown(&self, impls: &[Impl]) -> String {
        let mut out = String::new();
        self.header(&mut out, "cargo xtask bench");
        self.dates(&mut out);
        self.table(
            &mut out,
            impls,
            "blast",
            &[
                ("deliveries_per_s", "deliveries/s"),
                ("cpu_us_per_delivery", "server CPU µs/delivery"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("peak_rss_mib", "peak RSS MiB"),
                ("lost", "lost"),
                ("client_cpu_pct", "load client CPU %"),
                (
                    "socketioxide-redis 0.4:deliveries_per_s",
                    "vs socketioxide-redis",
                ),
                (
                    "node redis-adapter classic:deliveries_per_s",
                    "vs Node classic",
                ),
            ],
        );
        self.table(
            &mut out,
            impls,
            "paced",
            &[
                ("local_p50_ms", "emitting p50 ms"),
                ("local_p99_ms", "emitting p99 ms"),
                ("remote_p50_ms", "remote p50 ms"),
                ("remote_p99_ms", "remote p99 ms"),
                ("cpu_us_per_delivery", "server CPU µs/delivery"),
                ("peak_rss_mib", "peak RSS MiB"),
                ("lost", "lost"),
                (
                    "socketioxide-redis 0.4:remote_p99_ms",
                    "remote p99 vs socketioxide-redis",
                ),
                (
                    "node redis-adapter classic:remote_p99_ms",
                    "remote p99 vs Node classic",
                ),
            ],
        );
        for scenario in ["adapter path 64 B", "adapter path 4 KiB"] {
            self.table(
                &mut out,
                impls,
                scenario,
                &[
                    ("events_per_s", "cross-server events/s"),
                    ("cpu_us_per_event_a", "CPU µs/event A"),
                    ("cpu_us_per_event_b", "CPU µs/event B"),
                    ("cpu_us_per_event_redis", "CPU µs/event broker"),
                    ("lost", "lost"),
                    (
                        "switchboard redis classic:events_per_s",
                        "vs Switchboard redis classic",
                    ),
                ],
            );
        }
        self.table(
            &mut out,
            impls,
            "requests",
            &[
                ("fetch_p50_ms", "fetchSockets p50 ms"),
                ("fetch_p99_ms", "fetchSockets p99 ms"),
                ("fetch_answers", "sockets found"),
                ("acks_p50_ms", "broadcast with acks p50 ms"),
                ("acks_p99_ms", "broadcast with acks p99 ms"),
                ("acks_answers", "acks"),
            ],
        );
        for (scenario, vs) in [(POLLING, VS_NODE_STICKY), (POLLING_PROXY, VS_COOKIE)] {
            let columns = [
                ("round_trips_per_s", "round trips/s"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                (
                    "connections_per_round_trip",
                    "TCP connections per round trip",
                ),
                ("failed_sessions", "failed sessions"),
                vs,
            ];
            self.table(&mut out, impls, scenario, &columns);
        }
        self.scale_markdown(&mut out, impls);
        if let Some((m, lo, hi)) = median(self.broker.clone()) {
            let _ = writeln!(
                out,
                "\nBroker ceiling (`redis-benchmark` PUBLISH 64 B, 20 connections, pipeline 16): {} requests/s ({}–{}).",
                num(m),
                num(lo),
                num(hi)
            );
        }
        let _ = writeln!(
            out,
            "\n### Targets (Switchboard redis classic, ratios in this run)\n\n| target | goal | measured |\n|---|---|---|"
        );
        let sb = "switchboard redis classic";
        let mesh = "switchboard mesh";
        // (target, measured (implementation, scenario, metric), baseline, goal, at least)
        let targets = [
            (
                "blast deliveries/s vs socketioxide-redis",
                (sb, "blast", "deliveries_per_s"),
                (SIOXIDE_REDIS, "blast", "deliveries_per_s"),
                3.0,
                true,
            ),
            (
                "blast deliveries/s vs socketioxide without adapter",
                (sb, "blast", "deliveries_per_s"),
                (SIOXIDE_ALONE, "blast", "deliveries_per_s"),
                0.5,
                true,
            ),
            (
                "blast CPU/delivery vs socketioxide without adapter",
                (sb, "blast", "cpu_us_per_delivery"),
                (SIOXIDE_ALONE, "blast", "cpu_us_per_delivery"),
                2.0,
                false,
            ),
            (
                "paced remote p99 vs socketioxide-redis",
                (sb, "paced", "remote_p99_ms"),
                (SIOXIDE_REDIS, "paced", "remote_p99_ms"),
                1.0,
                false,
            ),
            (
                "paced remote p99 vs Node classic",
                (sb, "paced", "remote_p99_ms"),
                (NODE_CLASSIC, "paced", "remote_p99_ms"),
                0.4,
                false,
            ),
            (
                "adapter path 64 B: mesh vs Switchboard redis classic",
                (mesh, "adapter path 64 B", "events_per_s"),
                (sb, "adapter path 64 B", "events_per_s"),
                1.3,
                true,
            ),
            (
                "blast deliveries/s: cluster vs mesh",
                ("switchboard cluster", "blast", "deliveries_per_s"),
                (mesh, "blast", "deliveries_per_s"),
                1.0,
                true,
            ),
            (
                "adapter path 64 B: cluster vs mesh",
                ("switchboard cluster", "adapter path 64 B", "events_per_s"),
                (mesh, "adapter path 64 B", "events_per_s"),
                1.0,
                true,
            ),
            (
                "polling round trips/s: sticky vs Node sticky 2.0",
                ("switchboard sticky", POLLING, "round_trips_per_s"),
                (NODE_STICKY, POLLING, "round_trips_per_s"),
                1.0,
                true,
            ),
            (
                "peak RSS per server vs socketioxide-redis (blast)",
                (sb, "blast", "peak_rss_mib"),
                (SIOXIDE_REDIS, "blast", "peak_rss_mib"),
                1.5,
                false,
            ),
            (
                "peak RSS per server vs socketioxide-redis (paced, no backlog)",
                (sb, "paced", "peak_rss_mib"),
                (SIOXIDE_REDIS, "paced", "peak_rss_mib"),
                1.5,
                false,
            ),
        ];
        for (what, measured, baseline, goal, at_least) in targets {
            self.target(
                &mut out,
                what,
                self.ratio_of(measured, baseline),
                goal,
                at_least,
            );
        }
        self.scale_targets(&mut out);
        out
    }

    /// The report of `cargo xtask bench --mongo`.
    pub(crate) fn markdown_mongo(&self, impls: &[Impl]) -> String {
        use crate::mongo::{NODE, SIOXIDE, SWITCHBOARD};
        let mut out = String::new();
        self.header(&mut out, "cargo xtask bench --mongo");
        self.dates(&mut out);
        let vs = |metric: &'static str| {
            [
                (format!("{NODE}:{metric}"), "vs Node mongo-adapter"),
                (format!("{SIOXIDE}:{metric}"), "vs socketioxide-mongodb"),
            ]
        };
        let with = |cols: &[(&'static str, &'static str)], metric: &'static str| {
            let mut all: Vec<(String, &str)> =
                cols.iter().map(|(m, h)| ((*m).to_owned(), *h)).collect();
            all.extend(vs(metric));
            all
        };
        let tables: [(&str, Vec<(String, &str)>); 5] = [
            (
                "blast",
                with(
                    &[
                        ("deliveries_per_s", "deliveries/s"),
                        ("cpu_us_per_delivery", "server CPU µs/delivery"),
                        ("p50_ms", "p50 ms"),
                        ("p99_ms", "p99 ms"),
                        ("peak_rss_mib", "peak RSS MiB"),
                        ("lost", "lost"),
                        ("client_cpu_pct", "load client CPU %"),
                    ],
                    "deliveries_per_s",
                ),
            ),
            (
                "paced",
                with(
                    &[
                        ("local_p50_ms", "emitting p50 ms"),
                        ("local_p99_ms", "emitting p99 ms"),
                        ("remote_p50_ms", "remote p50 ms"),
                        ("remote_p99_ms", "remote p99 ms"),
                        ("cpu_us_per_delivery", "server CPU µs/delivery"),
                        ("lost", "lost"),
                    ],
                    "remote_p99_ms",
                ),
            ),
            (
                "adapter path 64 B",
                with(
                    &[
                        ("events_per_s", "cross-server events/s"),
                        ("cpu_us_per_event_a", "CPU µs/event A"),
                        ("cpu_us_per_event_b", "CPU µs/event B"),
                        ("cpu_us_per_event_redis", "CPU µs/event SecantusDB"),
                        ("lost", "lost"),
                    ],
                    "events_per_s",
                ),
            ),
            (
                "adapter path 4 KiB",
                with(
                    &[
                        ("events_per_s", "cross-server events/s"),
                        ("cpu_us_per_event_a", "CPU µs/event A"),
                        ("cpu_us_per_event_b", "CPU µs/event B"),
                        ("cpu_us_per_event_redis", "CPU µs/event SecantusDB"),
                        ("lost", "lost"),
                    ],
                    "events_per_s",
                ),
            ),
            (
                "requests",
                vec![
                    ("fetch_p50_ms".into(), "fetchSockets p50 ms"),
                    ("fetch_p99_ms".into(), "fetchSockets p99 ms"),
                    ("fetch_answers".into(), "sockets found"),
                    ("acks_p50_ms".into(), "broadcast with acks p50 ms"),
                    ("acks_p99_ms".into(), "broadcast with acks p99 ms"),
                    ("acks_answers".into(), "acks"),
                ],
            ),
        ];
        for (scenario, cols) in &tables {
            let cols: Vec<(&str, &str)> = cols.iter().map(|(m, h)| (m.as_str(), *h)).collect();
            self.table(&mut out, impls, scenario, &cols);
        }
        if let Some((m, lo, hi)) = median(self.broker.clone()) {
            let _ = writeln!(
                out,
                "\nSecantusDB ceiling (one client inserting 64 B documents with `insertMany` batches of 256, counted by a change stream watcher): {} documents/s ({}–{}).",
                num(m),
                num(lo),
                num(hi)
            );
        }
        let _ = writeln!(
            out,
            "\n### Targets (Switchboard mongo, ratios in this run)\n\n| target | goal | measured |\n|---|---|---|"
        );
        for (base, label) in [
            (NODE, "Node mongo-adapter"),
            (SIOXIDE, "socketioxide-mongodb"),
        ] {
            for (what, scenario, metric, at_least) in [
                ("blast deliveries/s", "blast", "deliveries_per_s", true),
                ("blast CPU/delivery", "blast", "cpu_us_per_delivery", false),
                (
                    "adapter path 64 B events/s",
                    "adapter path 64 B",
                    "events_per_s",
                    true,
                ),
            ] {
                self.target(
                    &mut out,
                    &format!("{what} vs {label}"),
                    self.ratio_of((SWITCHBOARD, scenario, metric), (base, scenario, metric)),
                    1.0,
                    at_least,
                );
            }
        }
        out
    }

    /// `docs/benchmarks/mongo.md` (the report under its preamble) and
    /// `docs/benchmarks/mongo-results.json`.
    pub(crate) fn write_mongo(&self, markdown: &str) -> Result<()> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks");
        std::fs::create_dir_all(&dir)?;
        let runs: Vec<_> = self
            .data
            .iter()
            .map(|((imp, scenario), figures)| {
                json!({"implementation": imp, "scenario": scenario, "runs": figures})
            })
            .collect();
        let json = json!({
            "runs": self.runs,
            "sizes": self.sizes,
            "results": runs,
            "secantusdb_inserts_per_s": self.broker,
            "measured": self.measured,
        });
        std::fs::write(
            dir.join("mongo-results.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        let preamble = std::fs::read_to_string(dir.join("mongo-preamble.md"))
            .unwrap_or_else(|_| "# MongoDB benchmarks\n".into());
        std::fs::write(
            dir.join("mongo.md"),
            format!("{preamble}\n## Results\n\n{markdown}"),
        )?;
        Ok(())
    }

    /// Draws `docs/benchmarks/chart.png`; false (and says why) when it cannot.
    pub(crate) fn draw_chart(&self, impls: &[Impl]) -> bool {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let rows =
            |scenario: &str, metric: &str, fallback: Option<&str>| -> Vec<crate::chart::Row> {
                impls
                    .iter()
                    // the sticky rows have a scenario of their own, not charted
                    .filter(|i| !i.sticky() && i.proxied().is_none())
                    .map(|i| {
                        let v = self
                            .m(i.name, scenario, metric)
                            .or_else(|| fallback.and_then(|f| self.m(i.name, scenario, f)));
                        (i.name.to_owned(), v)
                    })
                    .collect()
            };
        let panels = [
            (
                "Blast: deliveries/s (higher is better)",
                "deliveries per second",
                rows("blast", "deliveries_per_s", None),
            ),
            (
                "Paced: p99 latency on the remote server (lower is better)",
                "ms (single server: its own clients)",
                rows("paced", "remote_p99_ms", Some("local_p99_ms")),
            ),
            (
                "Adapter path 64 B: cross-server events/s",
                "events per second",
                rows("adapter path 64 B", "events_per_s", None),
            ),
        ];
        match crate::chart::draw(&docs.join("benchmarks/chart.png"), &panels) {
            Ok(()) => true,
            Err(e) => {
                println!("no chart: {e:#}");
                false
            }
        }
    }

    /// The figures of a full run, from `docs/benchmarks/results.json`.
    pub(crate) fn load(s: &Sizes) -> Result<Self> {
        Self::load_from("results.json", s)
    }

    /// The figures of a full run, from `docs/benchmarks/<file>`.
    pub(crate) fn load_from(file: &str, s: &Sizes) -> Result<Self> {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            docs.join("benchmarks").join(file),
        )?)?;
        let mut results = Results::new(false, 3, s);
        for r in json["results"].as_array().into_iter().flatten() {
            let runs: Vec<Figures> = serde_json::from_value(r["runs"].clone())?;
            for f in runs {
                results.add(
                    r["implementation"].as_str().unwrap_or_default(),
                    r["scenario"].as_str().unwrap_or_default(),
                    f,
                );
            }
        }
        results.measured = json["measured"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        for key in ["redis_publish_per_s", "secantusdb_inserts_per_s"] {
            results.broker.extend(
                json[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_f64()),
            );
        }
        Ok(results)
    }

    /// Keeps `previous`'s figures of what this run did not measure: other implementations
    /// (`--only`), the other group of scenarios (`--scale`).
    pub(crate) fn merge_previous(&mut self, previous: Results) {
        let measured_now: std::collections::BTreeSet<String> =
            self.measured.keys().cloned().collect();
        for ((imp, scenario), runs) in previous.data {
            let key = measured_key(&imp, &scenario);
            if !measured_now.contains(&key) {
                let date = previous
                    .measured
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| "the previous full run".to_owned());
                self.measured.insert(key, date);
                self.data.insert((imp, scenario), runs);
            }
        }
    }

    /// A line saying when each implementation was measured, when that differs.
    fn dates(&self, out: &mut String) {
        let mut by_date: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (imp, date) in &self.measured {
            by_date.entry(date.as_str()).or_default().push(imp.as_str());
        }
        if by_date.len() > 1 {
            let _ = writeln!(
                out,
                "\nMeasured in more than one session (`--only` re-measures some implementations and keeps the others): {}.",
                by_date
                    .iter()
                    .map(|(d, imps)| {
                        let on = if d.starts_with("the ") { "in" } else { "on" };
                        format!("{} {on} {d}", imps.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }

    /// `docs/benchmarks.md` (the report under a fixed preamble) and `docs/benchmarks/results.json`.
    pub(crate) fn write(&self, impls: &[Impl], markdown: &str) -> Result<()> {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        std::fs::create_dir_all(docs.join("benchmarks"))?;
        let chart = if self.draw_chart(impls) {
            "\n![blast throughput, paced p99 and adapter path per implementation](benchmarks/chart.png)\n"
        } else {
            ""
        };
        let runs: Vec<_> = self
            .data
            .iter()
            .map(|((imp, scenario), figures)| {
                json!({"implementation": imp, "scenario": scenario, "runs": figures})
            })
            .collect();
        let json = json!({
            "runs": self.runs,
            "sizes": self.sizes,
            "results": runs,
            "redis_publish_per_s": self.broker,
            "measured": self.measured,
        });
        std::fs::write(
            docs.join("benchmarks/results.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        let preamble = std::fs::read_to_string(docs.join("benchmarks/preamble.md"))
            .unwrap_or_else(|_| "# Benchmarks\n".into());
        std::fs::write(
            docs.join("benchmarks.md"),
            format!("{preamble}\n## Results\n{chart}\n{markdown}"),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{median, num};

    #[test]
    fn medians_ignore_missing_figures_and_keep_the_range() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(
            median(vec![4.0, 1.0, f64::NAN, 2.0, 3.0]),
            Some((2.5, 1.0, 4.0))
        );
        assert_eq!(median(vec![f64::NAN]), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(2_345_678.0), "2.35M");
        assert_eq!(num(43_210.0), "43k");
        assert_eq!(num(512.3), "512");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(0.456), "0.46");
    }
}
