//! `cargo xtask`: the one entry point for chores of the Switchboard workspace.
//!
//! ```text
//! cargo xtask ci      what CI runs: fmt --check, clippy -D warnings, every test
//! cargo xtask tidy    the house rules (also a #[test], so plain `cargo test` enforces them)
//! cargo xtask demo    the main job: a discovery service and three servers in a mesh, chatting
//! cargo xtask demo wire   the wire round-trip demo
//! cargo xtask bench   Switchboard against Node's adapters and socketioxide-redis (--quick: < 3 min)
//! ```

mod ci;
mod demo;
mod tidy;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("tidy") => {
            let problems = tidy::check(&workspace_root());
            for p in &problems {
                eprintln!("tidy: {p}");
            }
            if problems.is_empty() {
                eprintln!("tidy: ok");
                Ok(())
            } else {
                bail!("{} house-rule violations", problems.len())
            }
        }
        Some("demo") if args.get(1).map(String::as_str) == Some("wire") => demo::run(),
        Some("demo") if args.get(1).map(String::as_str) == Some("cluster") => {
            ci::sticky_demo(&args[2..])
        }
        Some("demo") => ci::mesh_demo(&args[1..]),
        Some("bench") => ci::bench(&args[1..]),
        other => bail!(
            "unknown task {other:?}\n\nusage: cargo xtask <task>\n  ci     fmt --check, clippy -D warnings, all tests (what CI runs)\n  tidy   check the house rules\n  demo   three servers in a mesh with discovery, chatting (demo wire: the wire round trip; demo cluster: one port, sticky + the cluster relay, 4 workers)\n  bench  Switchboard against Node's adapters and socketioxide-redis (--quick, --runs N, --only a,b; --mongo: the MongoDB adapters on a SecantusDB)"
        ),
    }
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
