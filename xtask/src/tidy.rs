//! House rules as code (HOUSE-STYLE.md items 1-4, 7, 13, 14 and 17): manifests, lints, module
//! docs, file sizes, README and CHANGELOG per crate, the top-level layout, `publish = false` where a
//! crate is not published, no `#[ignore]`/`#[should_panic]`, and links in the docs that resolve. Runs as `cargo xtask tidy`
//! and as a `#[test]`, so a plain `cargo test` enforces it.

use std::{
    fs,
    path::{Path, PathBuf},
};

use toml::{Table, Value};

/// Longest source file accepted, in lines: a module that grows becomes a directory.
const MAX_LINES: usize = 800;

/// Top-level entries of the repository (docs/architecture.md); anything else is a violation.
const TOP_LEVEL: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "crates",
    "xtask",
    "docker",
    "docs",
    "README.md",
    ".ci",
    ".cargo",
    ".git",
    ".gitignore",
    "target",
];

/// Crates under `crates/` that are never published (and so never a normal dependency of one that is).
const NOT_PUBLISHED: &[&str] = &["testkit", "demo"];

/// Every violation, as `path: what is wrong`.
pub(crate) fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |path: &Path, what: String| {
        let rel = path.strip_prefix(root).unwrap_or(path);
        problems.push(format!("{}: {what}", rel.display()));
    };

    check_layout(root, &mut bad);
    let Some(ws) = read_toml(&root.join("Cargo.toml"), &mut bad) else {
        return problems;
    };
    check_workspace(root, &ws, &mut bad);
    let rust_version = ws
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("rust-version"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();

    for dir in crate_dirs(root) {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let manifest = dir.join("Cargo.toml");
        let Some(m) = read_toml(&manifest, &mut bad) else {
            continue;
        };
        check_member(
            &manifest,
            &m,
            Some(&format!("switchboard-{name}")),
            &mut bad,
        );
        check_docs(&dir, &m, &rust_version, &mut bad);
        check_publish(
            &manifest,
            &m,
            NOT_PUBLISHED.contains(&name.as_str()),
            &mut bad,
        );
    }
    for tool in ["xtask/Cargo.toml", "xtask/bench/Cargo.toml"] {
        let path = root.join(tool);
        if let Some(m) = read_toml(&path, &mut bad) {
            check_member(&path, &m, None, &mut bad);
            check_publish(&path, &m, true, &mut bad);
        }
    }
    for file in rust_files(&root.join("crates"))
        .into_iter()
        .chain(rust_files(&root.join("xtask")))
    {
        check_source(&file, &mut bad);
    }
    check_ci(root, &mut bad);
    for doc in markdown_files(root) {
        check_links(&doc, &mut bad);
    }
    problems
}

/// `publish = false` exactly on the packages that are not published, and no published package
/// depends (normally) on one that is not.
fn check_publish(path: &Path, m: &Table, unpublished: bool, bad: &mut impl FnMut(&Path, String)) {
    let publish = m
        .get("package")
        .and_then(|p| p.get("publish"))
        .and_then(Value::as_bool);
    if unpublished && publish != Some(false) {
        bad(path, "is not published: needs `publish = false`".into());
    }
    if !unpublished {
        if publish == Some(false) {
            bad(
                path,
                "`publish = false` on a published crate (or add it to NOT_PUBLISHED)".into(),
            );
        }
        let deps = m.get("dependencies").and_then(Value::as_table);
        for dep in deps.into_iter().flatten().map(|(d, _)| d) {
            if NOT_PUBLISHED
                .iter()
                .any(|n| dep == &format!("switchboard-{n}"))
            {
                bad(
                    path,
                    format!("`{dep}` is not published: only a dev-dependency"),
                );
            }
        }
    }
}

/// README.md, docs/ and every crate's and docker's Markdown.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs"), root.join("docker"), root.join("xtask")];
    dirs.extend(crate_dirs(root));
    for dir in dirs {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || matches!(name.as_str(), "node_modules" | "target") {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else if name.ends_with(".md") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // drop inline code spans, then look for `](`
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            out.push(target.to_owned());
            rest = &rest[end..];
        }
    }
    out
}

fn check_links(doc: &Path, bad: &mut impl FnMut(&Path, String)) {
    let text = fs::read_to_string(doc).unwrap_or_default();
    let dir = doc.parent().unwrap_or(Path::new("."));
    for target in links(&text) {
        let external = target.contains("://") || target.starts_with("mailto:");
        let file = target.split('#').next().unwrap_or("");
        if external || file.is_empty() {
            continue;
        }
        if !dir.join(file).exists() {
            bad(doc, format!("link to `{target}` does not resolve"));
        }
    }
}

fn read_toml(path: &Path, bad: &mut impl FnMut(&Path, String)) -> Option<Table> {
    let text = fs::read_to_string(path)
        .map_err(|e| bad(path, format!("unreadable: {e}")))
        .ok()?;
    text.parse::<Table>()
        .map_err(|e| bad(path, format!("invalid TOML: {e}")))
        .ok()
}

fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            let skip = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                matches!(n, "target" | "node_modules" | "corpus" | "artifacts")
                    || n.starts_with('.')
            });
            if skip {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn check_layout(root: &Path, bad: &mut impl FnMut(&Path, String)) {
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !TOP_LEVEL.contains(&name.as_str()) && !name.starts_with("rust-toolchain") {
            bad(
                &entry.path(),
                "not part of the top-level layout of docs/architecture.md".into(),
            );
        }
    }
    for required in [
        "Cargo.toml",
        "README.md",
        "crates",
        "xtask/interop",
        "docker",
        "docs",
        ".ci/run",
        ".cargo/config.toml",
    ] {
        if !root.join(required).exists() {
            bad(&root.join(required), "missing".into());
        }
    }
    let config = fs::read_to_string(root.join(".cargo/config.toml")).unwrap_or_default();
    if !config.contains("xtask = \"run --package xtask --\"") {
        bad(
            &root.join(".cargo/config.toml"),
            "needs the `cargo xtask` alias".into(),
        );
    }
}

fn check_workspace(root: &Path, ws: &Table, bad: &mut impl FnMut(&Path, String)) {
    let path = root.join("Cargo.toml");
    let w = ws.get("workspace").and_then(Value::as_table);
    let package = w.and_then(|w| w.get("package")).and_then(Value::as_table);
    for key in ["edition", "rust-version", "license", "repository"] {
        if package.and_then(|p| p.get(key)).is_none() {
            bad(&path, format!("[workspace.package] lacks `{key}`"));
        }
    }
    let lints = w.and_then(|w| w.get("lints")).and_then(Value::as_table);
    for table in ["rust", "clippy", "rustdoc"] {
        if lints.and_then(|l| l.get(table)).is_none() {
            bad(&path, format!("[workspace.lints.{table}] missing"));
        }
    }
    let deps = w
        .and_then(|w| w.get("dependencies"))
        .and_then(Value::as_table);
    for (name, spec) in deps.into_iter().flatten() {
        if name.starts_with("switchboard-")
            && (spec.get("path").is_none() || spec.get("version").is_none())
        {
            bad(
                &path,
                format!("internal dependency `{name}` needs both `path` and `version`"),
            );
        }
    }
    // every `allow` in a lint table carries a one-line reason on the line above
    let text = fs::read_to_string(&path).unwrap_or_default();
    let mut in_lints = false;
    let mut previous = "";
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_lints = t.starts_with("[workspace.lints");
        } else if in_lints && t.contains("\"allow\"") && !previous.trim_start().starts_with('#') {
            bad(
                &path,
                format!("`{t}` needs a one-line reason comment above it"),
            );
        }
        previous = line;
    }
}

fn check_member(
    path: &Path,
    m: &Table,
    expected_name: Option<&str>,
    bad: &mut impl FnMut(&Path, String),
) {
    let package = m.get("package").and_then(Value::as_table);
    let name = package
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(expected) = expected_name
        && name != expected
    {
        bad(
            path,
            format!("package name `{name}` should be `{expected}`"),
        );
    }
    for key in ["version", "description"] {
        if !package.and_then(|p| p.get(key)).is_some_and(Value::is_str) {
            bad(path, format!("`package.{key}` must be the crate's own"));
        }
    }
    for key in ["edition", "rust-version", "license", "repository"] {
        let inherited = package
            .and_then(|p| p.get(key))
            .and_then(|v| v.get("workspace"))
            .and_then(Value::as_bool)
            == Some(true);
        if !inherited {
            bad(
                path,
                format!("`package.{key}` must be `{key}.workspace = true`"),
            );
        }
    }
    if m.get("lints")
        .and_then(|l| l.get("workspace"))
        .and_then(Value::as_bool)
        != Some(true)
    {
        bad(path, "needs `[lints] workspace = true`".into());
    }
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        for (dep, spec) in m
            .get(section)
            .and_then(Value::as_table)
            .into_iter()
            .flatten()
        {
            let internal = dep.starts_with("switchboard-");
            let workspace = spec.get("workspace").and_then(Value::as_bool) == Some(true);
            if internal && section == "dev-dependencies" {
                if spec.get("path").is_none() || spec.get("version").is_some() || workspace {
                    bad(
                        path,
                        format!("internal dev-dependency `{dep}` takes `path` only"),
                    );
                }
            } else if !workspace {
                bad(
                    path,
                    format!(
                        "[{section}] `{dep}` must be `{dep}.workspace = true` (versions live in the root manifest)"
                    ),
                );
            }
        }
    }
}

fn check_docs(dir: &Path, m: &Table, rust_version: &str, bad: &mut impl FnMut(&Path, String)) {
    let readme_path = dir.join("README.md");
    let readme = fs::read_to_string(&readme_path).unwrap_or_default();
    if readme.is_empty() {
        bad(&readme_path, "missing".into());
    } else {
        for heading in [
            "## Example",
            "## Features",
            "## Compatibility",
            "## MSRV",
            "## License",
        ] {
            if !readme.contains(heading) {
                bad(&readme_path, format!("lacks the `{heading}` section"));
            }
        }
        if !readme.contains(&format!("Rust {rust_version}")) {
            bad(
                &readme_path,
                format!("MSRV must read `Rust {rust_version}` (the workspace rust-version)"),
            );
        }
        for feature in m
            .get("features")
            .and_then(Value::as_table)
            .into_iter()
            .flatten()
            .map(|(f, _)| f)
        {
            if feature != "default"
                && !feature.starts_with("__")
                && !readme.contains(&format!("`{feature}`"))
            {
                bad(
                    &readme_path,
                    format!("feature `{feature}` is not in the features table"),
                );
            }
        }
    }
    // the README's example is the crate docs' example (which rustdoc compiles)
    let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap_or_default();
    let doc: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let doc_example = first_code_block(&doc, "# Example");
    if doc_example.is_none() {
        bad(
            &dir.join("src/lib.rs"),
            "crate docs need an `# Example` with a code block".into(),
        );
    } else if first_code_block(&readme, "## Example") != doc_example {
        bad(
            &readme_path,
            "the example must be the same as the crate docs' `# Example`".into(),
        );
    }
    let changelog_path = dir.join("CHANGELOG.md");
    let changelog = fs::read_to_string(&changelog_path).unwrap_or_default();
    if changelog.lines().find(|l| l.starts_with("## ")) != Some("## Unreleased") {
        bad(
            &changelog_path,
            "must exist with `## Unreleased` as its first section".into(),
        );
    }
}

/// The body of the first fenced code block after `heading`.
fn first_code_block(text: &str, heading: &str) -> Option<String> {
    let after = &text[text.find(heading)? + heading.len()..];
    let start = after.find("```")?;
    let body = &after[start..];
    let body = &body[body.find('\n')? + 1..];
    Some(body[..body.find("```")?].trim_end().to_owned())
}

fn check_source(file: &Path, bad: &mut impl FnMut(&Path, String)) {
    let text = fs::read_to_string(file).unwrap_or_default();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        bad(
            file,
            "must open with a `//!` line saying what the module is for".into(),
        );
    }
    let lines = text.lines().count();
    if lines > MAX_LINES {
        bad(
            file,
            format!("{lines} lines: split it (at most {MAX_LINES})"),
        );
    }
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[ignore") || t.starts_with("#[should_panic") {
            bad(
                file,
                format!(
                    "line {}: no #[ignore] or #[should_panic]: a test runs, and asserts on an `Err`",
                    i + 1
                ),
            );
        }
        if t.starts_with("#![deny(") || t.starts_with("#![forbid(") {
            bad(
                file,
                format!(
                    "line {}: lints are set in the workspace manifest, not in source",
                    i + 1
                ),
            );
        }
    }
}

fn check_ci(root: &Path, bad: &mut impl FnMut(&Path, String)) {
    let ci = fs::read_to_string(root.join(".ci/run")).unwrap_or_default();
    let readme = fs::read_to_string(root.join("README.md")).unwrap_or_default();
    if !ci.contains("set -euo pipefail") {
        bad(&root.join(".ci/run"), "must `set -euo pipefail`".into());
    }
    let command = "cargo xtask ci";
    if !ci.lines().any(|l| l.trim() == command) || !readme.contains(command) {
        bad(
            &root.join(".ci/run"),
            format!("must run the README's test command `{command}`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn house_rules_hold() {
        let problems = check(&crate::workspace_root());
        assert!(
            problems.is_empty(),
            "house rules broken:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn links_are_found_outside_code() {
        let text = "see [a](docs/a.md#x), [b](https://x.y) and `[c](nope.md)`\n```\n[d](nope.md)\n```\n[e](../e.md)";
        assert_eq!(links(text), ["docs/a.md#x", "https://x.y", "../e.md"]);
    }

    #[test]
    fn tidy_catches_unpublished_dependencies() {
        let m: Table = r#"
            [package]
            name = "switchboard-x"
            [dependencies]
            switchboard-testkit = { workspace = true }
        "#
        .parse()
        .unwrap_or_default();
        let mut found = Vec::new();
        check_publish(Path::new("x"), &m, false, &mut |_, w| found.push(w));
        check_publish(Path::new("x"), &m, true, &mut |_, w| found.push(w));
        let all = found.join("\n");
        assert!(all.contains("only a dev-dependency"), "{all}");
        assert!(all.contains("needs `publish = false`"), "{all}");
    }

    #[test]
    fn tidy_catches_a_broken_member() {
        let m: Table = r#"
            [package]
            name = "switchboard-x"
            edition = "2021"
            [dependencies]
            serde = "1"
            switchboard-wire = { path = "../wire" }
            [dev-dependencies]
            switchboard-wire = { path = "../wire", version = "0.1" }
        "#
        .parse()
        .unwrap_or_default();
        let mut found = Vec::new();
        check_member(Path::new("x"), &m, Some("switchboard-y"), &mut |_, w| {
            found.push(w)
        });
        let all = found.join("\n");
        for expected in [
            "package name",
            "package.version",
            "edition.workspace",
            "[lints]",
            "`serde`",
            "`switchboard-wire` must",
            "internal dev-dependency",
        ] {
            assert!(all.contains(expected), "no `{expected}` in:\n{all}");
        }
    }
}
