//! The report of the scale scenarios (`crate::scale`): tables across scenarios and their targets.

use std::fmt::Write;

use super::{Results, SIOXIDE_ALONE, num, table_head};
use crate::{
    Impl,
    scale::{CONNECTIONS, PAYLOADS, SERVER_COUNTS, servers_scenario},
};

/// A column of a table across scenarios.
enum Col {
    /// The median (min–max) of a metric of a scenario.
    Cell(String, &'static str),
    /// The ratio of two medians of the same implementation: (scenario, metric) ÷ (scenario, metric).
    Ratio((String, &'static str), (String, &'static str)),
    /// A metric minus the same metric of another implementation.
    Over(&'static str, String, &'static str),
}

impl Results {
    fn across(&self, out: &mut String, impls: &[Impl], title: &str, cols: &[(Col, String)]) {
        let present: Vec<&Impl> = impls
            .iter()
            .filter(|i| {
                cols.iter().any(|(c, _)| match c {
                    Col::Cell(scenario, _) => self
                        .data
                        .contains_key(&(i.name.to_owned(), scenario.clone())),
                    _ => false,
                })
            })
            .collect();
        if present.is_empty() {
            return;
        }
        table_head(out, title, cols.iter().map(|(_, h)| h.as_str()));
        for i in present {
            let _ = write!(out, "| {} |", i.name);
            for (c, _) in cols {
                let cell = match c {
                    Col::Cell(scenario, metric) => self.cell(i.name, scenario, metric),
                    Col::Ratio(a, b) => self
                        .ratio_of((i.name, &a.0, a.1), (i.name, &b.0, b.1))
                        .map_or("–".into(), |r| format!("{r:.2}×")),
                    Col::Over(base, scenario, metric) => {
                        match (
                            self.m(i.name, scenario, metric),
                            self.m(base, scenario, metric),
                        ) {
                            (Some(a), Some(b)) if i.name != *base => num(a - b),
                            _ => "–".into(),
                        }
                    }
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }

    /// The servers, connections and payload tables.
    pub(super) fn scale_markdown(&self, out: &mut String, impls: &[Impl]) {
        let s = |n: usize| servers_scenario(n);
        let mut cols = Vec::new();
        for n in SERVER_COUNTS {
            cols.push((
                Col::Cell(s(n), "deliveries_per_s"),
                format!("deliveries/s N={n}"),
            ));
        }
        for n in SERVER_COUNTS {
            cols.push((
                Col::Cell(s(n), "cpu_us_per_delivery"),
                format!("server CPU µs/delivery N={n}"),
            ));
        }
        cols.push((
            Col::Ratio((s(8), "cpu_us_per_delivery"), (s(2), "cpu_us_per_delivery")),
            "CPU/delivery N=8 ÷ N=2".into(),
        ));
        cols.push((Col::Cell(s(8), "lost"), "lost N=8".into()));
        self.across(
            out,
            impls,
            "servers (N = 2, 4, 8; the same clients spread evenly, one blast from server A)",
            &cols,
        );
        let c = || CONNECTIONS.to_owned();
        self.across(
            out,
            impls,
            "connections (idle clients on 4 servers, or on the single server of a baseline, then one broadcast)",
            &[
                (
                    Col::Cell(c(), "clients_per_server"),
                    "clients per server".into(),
                ),
                (
                    Col::Cell(c(), "rss_bytes_per_connection"),
                    "RSS bytes/connection".into(),
                ),
                (
                    Col::Over(SIOXIDE_ALONE, c(), "rss_bytes_per_connection"),
                    "over socketioxide without adapter".into(),
                ),
                (
                    Col::Cell(c(), "rss_mib_per_server"),
                    "RSS MiB per server".into(),
                ),
                (
                    Col::Cell(c(), "idle_cpu_ms_per_s"),
                    "idle CPU ms/s per server".into(),
                ),
                (
                    Col::Cell(c(), "broadcast_ms"),
                    "broadcast to all ms".into(),
                ),
                (Col::Cell(c(), "lost"), "lost".into()),
                (Col::Cell(c(), "connect_per_s"), "connects/s".into()),
            ],
        );
        for (scenario, _) in PAYLOADS {
            self.table(
                out,
                impls,
                scenario,
                &[
                    ("events_per_s", "cross-server events/s"),
                    ("mb_per_s", "MB/s"),
                    ("cpu_ms_per_mb_a", "CPU ms/MB A"),
                    ("cpu_ms_per_mb_b", "CPU ms/MB B"),
                    ("cpu_ms_per_mb_redis", "CPU ms/MB broker"),
                    ("lost", "lost"),
                    (
                        "switchboard redis classic:mb_per_s",
                        "vs Switchboard redis classic",
                    ),
                ],
            );
        }
    }

    /// The targets of the scale scenarios and of the per-message cost, as rows of the targets
    /// table.
    pub(super) fn scale_targets(&self, out: &mut String) {
        let sb = "switchboard redis classic";
        let mesh = "switchboard mesh";
        for imp in [sb, mesh] {
            self.target(
                out,
                &format!("servers: CPU/delivery at N=8 vs N=2, {imp}"),
                self.ratio_of(
                    (imp, &servers_scenario(8), "cpu_us_per_delivery"),
                    (imp, &servers_scenario(2), "cpu_us_per_delivery"),
                ),
                1.5,
                false,
            );
        }
        for imp in [sb, mesh] {
            let over = self
                .m(imp, CONNECTIONS, "rss_bytes_per_connection")
                .zip(self.m(SIOXIDE_ALONE, CONNECTIONS, "rss_bytes_per_connection"))
                .map(|(a, b)| a - b);
            self.target(
                out,
                &format!(
                    "connections: RSS bytes per connection over socketioxide without adapter, {imp}"
                ),
                over,
                1024.0,
                false,
            );
        }
        self.target(
            out,
            "adapter path 64 B: CPU/event on the emitting server, redis classic vs mesh",
            self.ratio_of(
                (sb, "adapter path 64 B", "cpu_us_per_event_a"),
                (mesh, "adapter path 64 B", "cpu_us_per_event_a"),
            ),
            1.2,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_table_head_has_a_rule_per_column() {
        let mut out = String::new();
        super::table_head(&mut out, "t", ["a", "b"].into_iter());
        assert_eq!(
            out,
            "\n### t\n\n| implementation | a | b |\n|---|---|---|\n"
        );
    }
}
