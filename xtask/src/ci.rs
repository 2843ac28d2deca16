//! `cargo xtask ci`: formatting, lints with warnings as errors, and every test of the workspace;
//! and the cargo invocations of other tasks.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `cargo xtask demo`: the mesh chat example (its arguments passed on, e.g. `--once`).
pub(crate) fn mesh_demo(args: &[String]) -> Result<()> {
    let mut all = vec![
        "run",
        "--quiet",
        "-p",
        "switchboard-adapter-mesh",
        "--example",
        "chat",
        "--",
    ];
    all.extend(args.iter().map(String::as_str));
    cargo(&all)
}

pub(crate) fn run() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--all-features"])?;
    Ok(())
}
