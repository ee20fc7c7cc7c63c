//! `cargo xtask memcheck`: leak checks that need tools outside the normal build.
//!
//! - valgrind memcheck (`--leak-check=full --error-exitcode=1`) on the tour example, which runs
//!   every asyncio docs example evloop reproduces, on the reliability test that creates,
//!   runs and closes 1,000 loops in sequence and on eight threads, and on the test that drops
//!   busy loops without `close()` (`tests/reliability_drop.rs`).
//! - LeakSanitizer on loop-core's and loop-transport's tests and on the 1,000-loops test, when
//!   a nightly toolchain is installed (`-Zsanitizer=leak` is nightly-only).
//! - miri, when the nightly toolchain has it, on loop-core's and loop-transport's tests. Those
//!   that create an `EventLoop` are compiled out or ignored under `cfg(miri)`: miri's epoll
//!   emulation accepts only edge-triggered registrations, and evloop's reactor is
//!   level-triggered as asyncio's `add_reader` is. What runs is what needs no loop: the stream
//!   reader checked step by step against the asyncio model (wakers, cancellations, limits)
//!   and the context variables.
//!
//! The one valgrind suppression (`xtask/valgrind.supp`) and the LeakSanitizer suppressions
//! (`xtask/lsan.supp`) each say why they are not evloop's leaks.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use crate::cmd::{cargo, run_step, run_steps, Step, STEP_LIMIT};

/// The reliability test binary and the test in it that churns through 1,000 loops.
const LOOPS_TEST: (&str, &str) = (
    "reliability_load",
    "reliability_thousand_loops_in_sequence_and_on_eight_threads_leak_nothing",
);

/// The test that drops a busy loop (server, timers, fd watcher, executor jobs, signal handler,
/// a pending task) without `close()` and checks that it is freed.
const DROP_TEST: &str = "reliability_drop";

/// Builds with `args` (a cargo command with `--message-format=json`) and returns the path of
/// the last executable it produced.
fn built(args: &[&str]) -> Result<PathBuf, String> {
    let (ok, text) = run_step(&mut cargo(args), STEP_LIMIT);
    if !ok {
        return Err(format!("`cargo {}` failed:\n{text}", args.join(" ")));
    }
    text.lines()
        .rev()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|l| {
            let at = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[at..].find('"')?;
            Some(PathBuf::from(&l[at..at + end]))
        })
        .next()
        .ok_or_else(|| format!("`cargo {}` built no executable", args.join(" ")))
}

/// Whether `program --version` runs.
fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A valgrind memcheck run of `exe` with `args`.
fn valgrind(exe: &PathBuf, args: &[&str]) -> Command {
    let mut c = Command::new("valgrind");
    c.args([
        "--leak-check=full",
        "--error-exitcode=1",
        "--num-callers=40",
        "--suppressions=xtask/valgrind.supp",
    ])
    .arg(exe)
    .args(args);
    c
}

/// Runs the checks; see the module docs.
pub fn run() -> ExitCode {
    let mut steps = Vec::new();
    if available("valgrind", &["--version"]) {
        let tour = built(&[
            "build",
            "--all-features",
            "--example",
            "tour",
            "--message-format=json",
        ]);
        let loops = built(&[
            "test",
            "--no-run",
            "--all-features",
            "--test",
            LOOPS_TEST.0,
            "--message-format=json",
        ]);
        let dropped = built(&[
            "test",
            "--no-run",
            "--all-features",
            "--test",
            DROP_TEST,
            "--message-format=json",
        ]);
        match (tour, loops, dropped) {
            (Ok(tour), Ok(loops), Ok(dropped)) => {
                steps.push(Step {
                    name: "valgrind: tour".into(),
                    cmd: valgrind(&tour, &[]),
                });
                steps.push(Step {
                    name: "valgrind: 1,000 loops created and closed".into(),
                    cmd: valgrind(&loops, &["--exact", LOOPS_TEST.1, "--test-threads=1"]),
                });
                steps.push(Step {
                    name: "valgrind: loops dropped without close()".into(),
                    cmd: valgrind(&dropped, &["--test-threads=1"]),
                });
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                eprintln!("xtask: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        eprintln!("xtask: valgrind is not installed (`apt-get install valgrind`)");
        steps.push(Step {
            name: "valgrind (missing)".into(),
            cmd: Command::new("false"),
        });
    }
    // The sanitizer and miri builds get their own directories under the usual target dir.
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("nightly"))
        .unwrap_or(false);
    if nightly {
        let host = host_triple();
        // Test binaries run in their own directories: the suppressions need an absolute path.
        let supp = std::env::current_dir()
            .unwrap_or_default()
            .join("xtask/lsan.supp");
        let lsan = |pkgs: &[&str]| {
            let mut c = Command::new("cargo");
            c.args(["+nightly", "test", "--target", &host, "--all-features"])
                .args(pkgs)
                .env("CARGO_TARGET_DIR", format!("{target}/lsan"))
                .env("RUSTFLAGS", "-Zsanitizer=leak -Cforce-frame-pointers=yes")
                .env(
                    "LSAN_OPTIONS",
                    format!("suppressions={}:print_suppressions=0", supp.display()),
                );
            c
        };
        steps.push(Step {
            name: "LeakSanitizer: loop-core, loop-transport".into(),
            cmd: lsan(&["-p", "loop-core", "-p", "loop-transport"]),
        });
        steps.push(Step {
            name: "LeakSanitizer: reliability_load".into(),
            cmd: lsan(&["-p", "evloop", "--test", LOOPS_TEST.0]),
        });
        steps.push(Step {
            name: "LeakSanitizer: reliability_drop".into(),
            cmd: lsan(&["-p", "evloop", "--test", DROP_TEST]),
        });
    } else {
        println!("xtask: no nightly toolchain: LeakSanitizer (-Zsanitizer=leak) skipped");
    }
    if available("cargo", &["+nightly", "miri", "--version"]) {
        // Every test of both crates; those that run an event loop are compiled out or
        // ignored under miri (`cfg(miri)`), which leaves the ones that need no loop.
        let mut c = Command::new("cargo");
        c.args([
            "+nightly",
            "miri",
            "test",
            "-p",
            "loop-core",
            "-p",
            "loop-transport",
            "--tests",
        ])
        .env("CARGO_TARGET_DIR", format!("{target}/miri"))
        // Property tests: a few cases each (miri runs about 1,000 times slower).
        .env("PROPTEST_CASES", "16")
        .env("MIRIFLAGS", "-Zmiri-disable-isolation");
        steps.push(Step {
            name: "miri: loop-core, loop-transport".into(),
            cmd: c,
        });
    } else {
        println!("xtask: miri is not installed (`rustup +nightly component add miri`): skipped");
    }
    run_steps(steps)
}

/// The host's target triple (`rustc -vV`); sanitizers need an explicit `--target`.
fn host_triple() -> String {
    Command::new("rustc")
        .arg("-vV")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into())
}
