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
        Some("demo") if args[1..].iter().any(|a| a == "--help" || a == "-h") => {
            #[allow(clippy::print_stdout)] // usage, asked for
            {
                println!("{DEMO_USAGE}");
            }
            Ok(())
        }
        Some("demo") if args.get(1).map(String::as_str) == Some("wire") => demo::run(),
        Some("demo") if args.get(1).map(String::as_str) == Some("cluster") => {
            ci::sticky_demo(&args[2..])
        }
        Some("demo") => ci::mesh_demo(&args[1..]),
        Some("bench") => ci::bench(&args[1..]),
        other => bail!(
            "unknown task {other:?}\n\nusage: cargo xtask <task>\n  ci     fmt --check, clippy -D warnings, all tests (what CI runs)\n  tidy   check the house rules\n  demo   three servers in a mesh with discovery, chatting (demo wire: the wire round trip; demo cluster: one port, sticky + the cluster relay, 4 workers)\n  bench  Switchboard against Node's adapters and socketioxide-redis (--quick, --runs N, --only a,b; --scale: only the servers, connections and payload scenarios; --mongo: the MongoDB adapters on a SecantusDB)"
        ),
    }
}

const DEMO_USAGE: &str = "\
usage: cargo xtask demo [--once] [--free-ports]
       cargo xtask demo wire
       cargo xtask demo cluster [--port P] [--workers N]

demo           a mesh-discovery service and three Switchboard servers on a mesh, in one process:
               scripted clients chat across the servers, then the chat pages stay up
               (http://127.0.0.1:3001, 3002, 3003; discovery on 8000, mesh ports 4001-4003)
               until Ctrl-C
  --once         stop after the scripted round (what the tests run)
  --free-ports   let the system pick every port (when 3001-3003, 4001-4003 or 8000 are taken);
                 the pages and their links say which
demo wire      one io.to(\"room1\").emit(..) in every protocol Switchboard speaks, decoded again,
               and Node's own bytes re-encoded identically
demo cluster   one port (3000), a sticky primary passing connections to 4 workers joined by the
               cluster relay; a chat page on http://127.0.0.1:3000

The first run builds the demo: a few minutes on a small machine.";

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
