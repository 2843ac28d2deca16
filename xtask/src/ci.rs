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
    eprintln!(
        "building and starting the mesh demo (the first build takes a few minutes; \
         `cargo xtask demo --help` for the options)"
    );
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

/// `cargo xtask demo cluster [--port P] [--workers N]`: the one-host variant, a sticky primary
/// with the cluster relay and N workers on one port (3000 and 4 by default), a chat page on it.
pub(crate) fn sticky_demo(args: &[String]) -> Result<()> {
    let mut all = vec![
        "run",
        "--quiet",
        "-p",
        "switchboard-sticky",
        "--example",
        "sticky",
        "--",
    ];
    if !args.iter().any(|a| a == "--port") {
        all.extend(["--port", "3000"]);
    }
    if !args.iter().any(|a| a == "--workers") {
        all.extend(["--workers", "4"]);
    }
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

/// The packages under `crates/`, with whether each has default features.
fn crate_packages() -> Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("crates"))? {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let m: toml::Table = text
            .parse()
            .with_context(|| format!("{}", manifest.display()))?;
        let name = m
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{}: no package name", manifest.display()))?;
        let defaults = m
            .get("features")
            .and_then(|f| f.get("default"))
            .and_then(toml::Value::as_array)
            .is_some_and(|d| !d.is_empty());
        out.push((name.to_owned(), defaults));
    }
    out.sort();
    Ok(out)
}

/// What CI runs. The benchmark harness (`xtask-bench`: plotters, fonts, socketioxide-redis) is
/// left out of what CI builds; `cargo xtask bench` builds it.
pub(crate) fn run() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--exclude",
        "xtask-bench",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    // every crate alone with no features, and with its defaults when it has any: the builds a
    // user gets (`metrics_off.rs` and the code without `prometheus` are compiled only here)
    for (package, has_defaults) in crate_packages()? {
        cargo(&[
            "clippy",
            "-p",
            &package,
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ])?;
        if has_defaults {
            cargo(&["clippy", "-p", &package, "--", "-D", "warnings"])?;
        }
    }
    cargo(&[
        "test",
        "--workspace",
        "--exclude",
        "xtask-bench",
        "--all-features",
    ])?;
    Ok(())
}
