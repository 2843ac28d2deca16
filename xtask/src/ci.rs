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

/// `cargo xtask bench [--quick] [--runs N] [--only names]`: builds the harness in release mode
/// and runs it (see `xtask/bench`).
pub(crate) fn bench(args: &[String]) -> Result<()> {
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "xtask-bench",
        "--bins",
    ])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), Into::into);
    let status = Command::new(target.join("release/bench"))
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("running the bench harness")?;
    if !status.success() {
        bail!("the bench harness failed ({status})");
    }
    Ok(())
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
