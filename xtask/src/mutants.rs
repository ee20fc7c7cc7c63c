//! `cargo xtask mutants [--file PATH]... [--shard K/N] [--re REGEX] [--exclude-re REGEX]
//! [--test-package CRATE]... [--jobs N] [--timeout SECS] [--list]`: mutation testing.
//!
//! Installs cargo-mutants if needed ([`crate::tools`]), then runs it on the given source
//! files with the tests of the crate each file belongs to:
//! `cargo mutants --package <crate> --file <path>... [--shard K/N] [--re REGEX]`, one run per
//! crate, with nextest as the test runner. A mutant that survives is a change to the code that
//! no test notices. Without `--file` it mutates the whole workspace (hours). The reports go
//! to `<target dir>/mutants/<crate>/mutants.out` (`caught.txt`, `missed.txt`, `timeout.txt`,
//! `unviable.txt`, `outcomes.json`); a second run of the same crate moves the first one's to
//! `mutants.out.old`.
//!
//! cargo-mutants builds and tests every mutant in a copy of the workspace in a temporary
//! directory, never in the working tree. Choices made here:
//! - `--shard K/N` takes every N-th mutant (`--sharding round-robin`), so a shard is a sample
//!   spread over the whole file rather than its first N-th.
//! - `--timeout SECS` (default 120) bounds one mutant's test run: a mutant that makes the
//!   tests hang is stopped and counted as a timeout (the tests noticed it).
//! - `--test-package CRATE` runs the tests of `CRATE` too, for a mutant that a dependent
//!   crate's tests catch (a transport mutant caught by loop-pipes' tests, say); the crate of
//!   the mutated file is always tested.
//! - `--jobs N` (default 1) mutants are built and tested at once, each in its own copy.
//! - The mutant builds carry no debug info (`CARGO_PROFILE_DEV_DEBUG=0`): every mutant is
//!   linked once and never debugged, and linking the test binaries is most of its cost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use crate::cmd::cargo;
use crate::tools;

pub fn run(args: &[String]) -> ExitCode {
    let mut files = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut test_packages: Vec<String> = Vec::new();
    let mut jobs = "1".to_string();
    let mut timeout = "120".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.clone().next()) {
            ("--file", Some(v)) => {
                files.push(v.clone());
                it.next();
            }
            ("--shard", Some(v)) => {
                extra.extend([a.clone(), v.clone(), "--sharding=round-robin".into()]);
                it.next();
            }
            ("--re" | "--exclude-re", Some(v)) => {
                extra.extend([a.clone(), v.clone()]);
                it.next();
            }
            ("--test-package", Some(v)) => {
                test_packages.push(v.clone());
                it.next();
            }
            ("--jobs" | "-j", Some(v)) if v.parse::<u32>().is_ok_and(|n| n > 0) => {
                jobs = v.clone();
                it.next();
            }
            ("--timeout", Some(v)) if v.parse::<u32>().is_ok_and(|n| n > 0) => {
                timeout = v.clone();
                it.next();
            }
            ("--list", _) => extra.push(a.clone()),
            _ => {
                eprintln!(
                    "usage: cargo xtask mutants [--file PATH]... [--shard K/N] [--re REGEX] \
                     [--exclude-re REGEX] [--test-package CRATE]... [--jobs N] [--timeout SECS] \
                     [--list]   (unexpected {a})"
                );
                return ExitCode::from(2);
            }
        }
    }
    tools::put_on_path();
    if let Err(message) = tools::ensure(&tools::MUTANTS) {
        eprintln!("{message}");
        return ExitCode::FAILURE;
    }
    let nextest = tools::ensure(&tools::NEXTEST).is_ok();

    // Files grouped by the package that owns them; `None` is the whole workspace.
    let mut by_package: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    if files.is_empty() {
        by_package.insert(None, Vec::new());
    }
    for f in files {
        match package_of(Path::new(&f)) {
            Some(p) => by_package.entry(Some(p)).or_default().push(f),
            None => {
                eprintln!("xtask: {f} is not a file inside a package of this workspace");
                return ExitCode::from(2);
            }
        }
    }
    let out_root = tools::dir().with_file_name("mutants");
    let mut failed = false;
    for (package, files) in by_package {
        let mut cmd = cargo(&["mutants"]);
        match &package {
            Some(p) => {
                cmd.args(["--package", p]);
            }
            None => {
                cmd.arg("--workspace");
            }
        }
        for f in &files {
            cmd.args(["--file", f]);
        }
        cmd.args(&extra);
        if !test_packages.is_empty() {
            for t in package.iter().chain(&test_packages) {
                cmd.args(["--test-package", t]);
            }
        }
        if !extra.iter().any(|a| a == "--list") {
            cmd.args(["--jobs", &jobs, "--timeout", &timeout]);
            cmd.env("CARGO_PROFILE_DEV_DEBUG", "0");
        }
        if nextest {
            cmd.arg("--test-tool=nextest");
        }
        let out = out_root.join(package.as_deref().unwrap_or("workspace"));
        let _ = std::fs::create_dir_all(&out);
        cmd.arg("--output").arg(&out);
        println!(
            "\n==> cargo mutants {}",
            cmd.get_args()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let ok = cmd.stdin(Stdio::null()).status().is_ok_and(|s| s.success());
        failed |= !ok;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The name of the workspace package whose directory holds `file`: the nearest
/// `Cargo.toml` with a `[package]` name above it.
fn package_of(file: &Path) -> Option<String> {
    let root = std::env::current_dir().ok()?;
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        root.join(file)
    };
    if !abs.is_file() {
        return None;
    }
    let mut dir: PathBuf = abs.parent()?.to_path_buf();
    while dir.starts_with(&root) {
        if let Some(name) = package_name(&dir.join("Cargo.toml")) {
            return Some(name);
        }
        dir = dir.parent()?.to_path_buf();
    }
    None
}

/// The `name` of the `[package]` table of a manifest.
fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let mut in_package = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_package = t == "[package]";
        } else if in_package {
            if let Some(v) = t.strip_prefix("name").map(str::trim_start) {
                if let Some(v) = v.strip_prefix('=') {
                    return Some(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}
