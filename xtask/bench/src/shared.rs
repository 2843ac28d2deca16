//! What the harness and `bench-server` both need: the clock of the `ts` field and argument
//! lookup, progress lines.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch: `ts` of a `count` event, compared on the same host.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The value after `--name` on the command line.
pub(crate) fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Says which scenario starts (a stalled run shows where it stalled).
#[allow(clippy::print_stdout, dead_code)] // bench-server does not use it
pub(crate) fn phase(name: &str) {
    use std::io::Write;
    let t = now_us() / 1_000_000 % 86_400;
    println!("  {:02}:{:02}:{:02} {name}", t / 3600, t / 60 % 60, t % 60);
    let _ = std::io::stdout().flush();
}
