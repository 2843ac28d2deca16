//! Where test fixtures live: example binaries run as processes, private socket files.

use std::{path::PathBuf, process::Command};

/// `target/<profile>/examples/<name>` of `package`, built when missing (`cargo test` builds
/// examples; `cargo test --test x` alone does not).
pub fn example(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap_or_else(|| panic!("no target dir"));
    let path = dir.join("examples").join(name);
    if !path.exists() {
        let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", package, "--example", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(built, "could not build the {name} example of {package}");
    }
    path
}

/// A fresh socket path in the temp directory, unique in this process: `<prefix>-<pid>-<n>.sock`.
pub fn socket_path(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "{prefix}-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
