//! evloop's task runner: `cargo xtask test` (the whole check matrix; `--python`: the Python
//! package and CPython's asyncio tests against it), `cargo xtask bench`,
//! `cargo xtask memcheck` (valgrind and LeakSanitizer), `cargo xtask conformance` (keeps
//! CONFORMANCE.md true), `cargo xtask modgraph` (no module import cycles) and
//! `cargo xtask mutants` (mutation testing) and `cargo xtask cross-check` (macOS and FreeBSD
//! builds, checked here).
//!
//! Only the standard library is used, so the runner itself builds in a second. The tools the
//! commands need beyond the toolchain (cargo-nextest, cargo-deny, cargo-mutants, rustfmt,
//! clippy) are installed on first use by [`tools`].
//!
//! `main` only reads the command and hands it to its module; what several commands share
//! (running a command with a time limit, the workspace's crates) is in [`cmd`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench;
mod cmd;
mod conformance;
mod cross;
mod echo;
mod echo_bench;
mod instructions;
mod matrix;
mod memcheck;
mod modgraph;
mod mutants;
mod python;
mod svg;
mod tls_echo;
mod tools;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root).expect("cd to the workspace root");
    match args.first().map(String::as_str) {
        Some("test") if args.iter().any(|a| a == "--python") => python::run(&root, &args[1..]),
        Some("test") => matrix::run(&args[1..]),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("memcheck") => memcheck::run(),
        Some("modgraph") => modgraph::run(),
        Some("conformance") => conformance::run(&args[1..]),
        Some("mutants") => mutants::run(&args[1..]),
        Some("cross-check") => cross::run(&root, &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test [--heavy] [--quick]
       {}
       cargo xtask bench [--smoke] [--micro | --echo | --instructions [--annotate BENCH]] [--only NAME] [--secs S]
       cargo xtask memcheck
       cargo xtask modgraph
       cargo xtask cross-check [--target TARGET] [--if-available]
       cargo xtask conformance [--write]
       cargo xtask mutants [--file PATH]... [--shard K/N] [--re REGEX] [--exclude-re REGEX]
                           [--test-package CRATE]... [--jobs N] [--timeout SECS] [--list]",
                python::USAGE
            );
            ExitCode::from(2)
        }
    }
}
/// The workspace root (the parent of this crate's manifest directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
