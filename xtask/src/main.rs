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

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod bench;
mod conformance;
mod cross;
mod echo;
mod instructions;
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
        Some("test") => test(&args[1..]),
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

/// The micro-crates under `crates/`, sorted.
fn member_crates() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("crates")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The facade's optional features, read from the root manifest's `[features]` table.
fn facade_features() -> Vec<String> {
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap_or_default();
    let mut in_features = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_features = t == "[features]";
            continue;
        }
        if in_features {
            if let Some((name, _)) = t.split_once('=') {
                let name = name.trim();
                if !name.is_empty() && name != "default" && !name.starts_with('#') {
                    out.push(name.to_string());
                }
            }
        }
    }
    out
}

/// One step of the matrix.
struct Step {
    /// What the summary line calls it.
    name: String,
    /// The command.
    cmd: Command,
}

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(args);
    c
}

/// Test counts parsed from a runner's output.
#[derive(Default, Clone, Copy)]
struct Counts {
    passed: u64,
    failed: u64,
    skipped: u64,
}

/// Reads nextest's `Summary [..] N tests run: P passed, F failed, S skipped` and libtest's
/// `test result: ok. P passed; F failed; I ignored` lines.
fn parse_counts(text: &str) -> Counts {
    // A stress run (`--stress-count`) prints one `Stress test [..] iteration i/n: N tests run:
    // ..` line per iteration and a summary that counts iterations, not tests.
    let is_nextest = |l: &str| {
        (l.starts_with("Summary [") || l.starts_with("Stress test [")) && l.contains("tests run:")
    };
    // nextest shows a failed test's captured output, and with it that test binary's own
    // `test result:` line: when a nextest summary is present, it alone counts.
    let from_nextest = text.lines().any(|l| is_nextest(l.trim()));
    let mut c = Counts::default();
    for line in text.lines() {
        let l = line.trim();
        let counted = if from_nextest {
            is_nextest(l)
        } else {
            l.starts_with("test result:")
        };
        if !counted {
            continue;
        }
        for part in l.split([',', ';', ':']) {
            let words: Vec<&str> = part.split_whitespace().collect();
            for w in words.windows(2) {
                let n: u64 = match w[0].parse() {
                    Ok(n) => n,
                    Err(_) => continue,
                };
                match w[1] {
                    "passed" => c.passed += n,
                    "failed" => c.failed += n,
                    "skipped" | "ignored" => c.skipped += n,
                    _ => {}
                }
            }
        }
    }
    c
}

/// No step may take longer than this: a step that hangs is killed (with everything it
/// started) and fails with its output so far, instead of stalling the whole run.
const STEP_LIMIT: Duration = Duration::from_secs(25 * 60);

/// Runs one step with no standard input, its output captured, killed after `limit`.
/// Returns whether it succeeded and its output (stdout, then stderr).
fn run_step(cmd: &mut Command, limit: Duration) -> (bool, String) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    // Its own process group, so a kill reaches test binaries and the children they started.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("could not start: {e}")),
    };
    // Readers hand their text over a channel, so that a leftover process still holding a
    // pipe open cannot block the runner: it gets what arrived within a grace period.
    let reader = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                timed_out = true;
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(_) => break None,
        }
    };
    let grace = Duration::from_secs(10);
    let mut text =
        String::from_utf8_lossy(&out.recv_timeout(grace).unwrap_or_default()).into_owned();
    text.push_str(&String::from_utf8_lossy(
        &err.recv_timeout(grace).unwrap_or_default(),
    ));
    if timed_out {
        text.push_str(&format!(
            "\nxtask: step killed after {} s (the limit per step): something hangs",
            limit.as_secs()
        ));
    }
    (!timed_out && status.is_some_and(|s| s.success()), text)
}

fn test(args: &[String]) -> ExitCode {
    let heavy = args.iter().any(|a| a == "--heavy");
    let quick = args.iter().any(|a| a == "--quick");
    // Install what the steps need first; a tool that cannot be installed turns its step
    // into a failure that says how to install it.
    tools::put_on_path();
    let with = |tool: Result<(), String>, cmd: Command| match tool {
        Ok(()) => cmd,
        Err(message) => tools::failing(&message),
    };
    let fmt = tools::ensure_component("rustfmt", "fmt");
    let clippy = tools::ensure_component("clippy", "clippy");
    let nextest_tool = tools::ensure(&tools::NEXTEST);
    let deny = tools::ensure(&tools::DENY);
    let nextest = nextest_tool.is_ok();
    let mut steps: Vec<Step> = Vec::new();

    if let Err(message) = nextest_tool {
        // The tests still run under `cargo test`, but the run fails.
        steps.push(Step {
            name: "cargo-nextest (not installed)".into(),
            cmd: tools::failing(&message),
        });
    }
    steps.push(Step {
        name: "fmt".into(),
        cmd: with(fmt, cargo(&["fmt", "--all", "--", "--check"])),
    });
    steps.push(Step {
        name: "clippy".into(),
        cmd: with(
            clippy,
            cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]),
        ),
    });
    let mut conformance = Command::new(std::env::current_exe().unwrap_or_else(|_| "xtask".into()));
    conformance.arg("conformance");
    steps.push(Step {
        name: "modgraph (no module import cycles)".into(),
        cmd: {
            let mut c = Command::new(std::env::current_exe().unwrap_or_else(|_| "xtask".into()));
            c.arg("modgraph");
            c
        },
    });
    steps.push(Step {
        name: "conformance (CONFORMANCE.md)".into(),
        cmd: conformance,
    });
    let run_tests = |pkg: &str, extra: &[&str]| -> Command {
        let mut c = if nextest {
            cargo(&[
                "nextest",
                "run",
                "--no-fail-fast",
                "--no-tests=pass",
                "--failure-output",
                "final",
                "-p",
                pkg,
            ])
        } else {
            cargo(&[
                "test",
                "--no-fail-fast",
                "-p",
                pkg,
                "--lib",
                "--bins",
                "--tests",
                "--examples",
            ])
        };
        c.args(extra);
        c
    };
    // Every feature but `reactor-polling`, which changes the reactor: these steps test the
    // epoll backend, the step after them the `polling` one.
    for krate in member_crates() {
        let features: &[&str] = if krate == "loop-core" {
            &[]
        } else {
            &["--all-features"]
        };
        steps.push(Step {
            name: format!("test {krate}"),
            cmd: run_tests(&krate, features),
        });
    }
    let facade: Vec<String> = facade_features()
        .into_iter()
        .filter(|f| f != "reactor-polling")
        .collect();
    steps.push(Step {
        name: "test evloop (all features)".into(),
        cmd: run_tests("evloop", &["--features", &facade.join(",")]),
    });
    // The whole suite again on the reactor that macOS and the BSDs use (`polling`), in the same
    // target dir: only loop-core and what depends on it are rebuilt.
    steps.push(Step {
        name: "tests on the polling backend".into(),
        cmd: if nextest {
            cargo(&[
                "nextest",
                "run",
                "--no-fail-fast",
                "--no-tests=pass",
                "--failure-output",
                "final",
                "--workspace",
                "--all-features",
            ])
        } else {
            cargo(&[
                "test",
                "--no-fail-fast",
                "--workspace",
                "--all-features",
                "--lib",
                "--bins",
                "--tests",
                "--examples",
            ])
        },
    });
    // The cross-thread wake-up of `loop-core/src/wake.rs` under loom (every interleaving up to
    // three preemptions). `--cfg loom` changes every crate's build: it gets its own target dir.
    let mut loom = cargo(&["test", "-p", "loop-core", "--release", "--lib", "wake::"]);
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    let flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    loom.env("CARGO_TARGET_DIR", target.join("loom"))
        .env("RUSTFLAGS", format!("{flags} --cfg loom").trim_start());
    steps.push(Step {
        name: "loom model of the wake-up (loop-core)".into(),
        cmd: loom,
    });
    if heavy {
        // The reliability suite runs in every `test`; `--heavy` runs it five more times in a
        // row, to catch what fails only now and then under load.
        let cmd = if nextest {
            cargo(&[
                "nextest",
                "run",
                "--no-fail-fast",
                "--failure-output",
                "final",
                "-p",
                "evloop",
                "--features",
                &facade.join(","),
                "-E",
                "binary(~reliability)",
                "--stress-count",
                "5",
            ])
        } else {
            let mut c = Command::new("sh");
            c.args([
                "-c",
                &format!(
                    "for i in 1 2 3 4 5; do cargo test -p evloop --features {} --test 'reliability_*' || exit 1; done",
                    facade.join(",")
                ),
            ]);
            c
        };
        steps.push(Step {
            name: "reliability suite x5 (--heavy)".into(),
            cmd,
        });
        // macOS and FreeBSD builds, checked here (`cargo xtask cross-check`, all three
        // targets): a few minutes the first time, toolchain download included.
        let mut cross = Command::new(std::env::current_exe().unwrap_or_else(|_| "xtask".into()));
        cross.args(["cross-check", "--if-available"]);
        steps.push(Step {
            name: "cross-check macOS, FreeBSD (--heavy)".into(),
            cmd: cross,
        });
    }
    if !quick {
        steps.push(Step {
            name: "check evloop --no-default-features".into(),
            cmd: cargo(&[
                "check",
                "-p",
                "evloop",
                "--no-default-features",
                "--all-targets",
            ]),
        });
        for f in facade_features() {
            steps.push(Step {
                name: format!("check evloop --features {f}"),
                cmd: cargo(&[
                    "check",
                    "-p",
                    "evloop",
                    "--no-default-features",
                    "--features",
                    &f,
                    "--all-targets",
                ]),
            });
        }
    }
    steps.push(Step {
        name: "doc tests".into(),
        cmd: cargo(&["test", "--workspace", "--all-features", "--doc"]),
    });
    steps.push(Step {
        name: "examples build".into(),
        cmd: cargo(&["build", "--workspace", "--all-features", "--examples"]),
    });
    steps.push(Step {
        name: "tour (every asyncio docs example, checked)".into(),
        cmd: cargo(&["run", "--quiet", "--all-features", "--example", "tour"]),
    });
    let mut doc = cargo(&[
        "doc",
        "--workspace",
        "--no-deps",
        "--all-features",
        "--exclude",
        "xtask",
    ]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    steps.push(Step {
        name: "rustdoc -D warnings".into(),
        cmd: doc,
    });
    steps.push(Step {
        name: "cargo deny".into(),
        cmd: with(
            deny,
            cargo(&[
                "deny",
                "--all-features",
                "check",
                "licenses",
                "bans",
                "sources",
            ]),
        ),
    });

    run_steps(steps)
}

/// Runs the steps in order (every one, whatever failed before), prints one summary line per
/// step and the test totals; fails if any step failed.
fn run_steps(steps: Vec<Step>) -> ExitCode {
    let started = Instant::now();
    let mut summary = Vec::new();
    let mut total = Counts::default();
    let mut failed_steps = 0;
    for mut step in steps {
        println!("\n==> {}", step.name);
        let t = Instant::now();
        let (ok, text) = run_step(&mut step.cmd, STEP_LIMIT);
        let counts = parse_counts(&text);
        total.passed += counts.passed;
        total.failed += counts.failed;
        total.skipped += counts.skipped;
        if !ok {
            failed_steps += 1;
            // Show the failing step's output (trimmed to the end, where the failures are).
            let tail: Vec<&str> = text.lines().collect();
            let from = tail.len().saturating_sub(400);
            for l in &tail[from..] {
                println!("    {l}");
            }
        }
        let tests = if counts.passed + counts.failed > 0 {
            format!(" ({} passed, {} failed)", counts.passed, counts.failed)
        } else if let Some(targets) = cross::summary(&text) {
            format!(" ({targets})")
        } else {
            String::new()
        };
        let line = format!(
            "{:<4} {:<44} {:>6.1}s{}",
            if ok { "ok" } else { "FAIL" },
            step.name,
            t.elapsed().as_secs_f64(),
            tests
        );
        println!("{line}");
        summary.push(line);
    }
    println!("\n==> summary ({:.0}s)", started.elapsed().as_secs_f64());
    for l in &summary {
        println!("{l}");
    }
    println!(
        "steps: {} passed, {} failed",
        summary.len() - failed_steps,
        failed_steps
    );
    println!(
        "tests: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if failed_steps == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::parse_counts;

    #[test]
    fn a_failed_nextest_test_counts_once_though_its_output_has_a_libtest_summary() {
        let out = "\
        FAIL [   0.234s] (3/3) crate::t a_test
  STDOUT:
    running 1 test
    test a_test ... FAILED
    test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 4 filtered out
────────────
     Summary [   0.236s] 3 tests run: 2 passed, 1 failed, 0 skipped
";
        let c = parse_counts(out);
        assert_eq!((c.passed, c.failed, c.skipped), (2, 1, 0));
    }

    #[test]
    fn a_stress_run_counts_the_tests_of_every_iteration() {
        let out = "\
 Stress test [   7.726s] iteration 1/2: 26 tests run: 26 passed, 0 skipped
    test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out
 Stress test [   8.308s] iteration 2/2: 26 tests run: 25 passed, 1 failed, 0 skipped
     Summary [  16.034s] 2/2 stress run iterations: 1 passed, 1 failed
";
        let c = parse_counts(out);
        assert_eq!((c.passed, c.failed, c.skipped), (51, 1, 0));
    }

    #[test]
    fn libtest_summaries_add_up_when_nextest_did_not_run() {
        let out = "\
test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out
test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out
";
        let c = parse_counts(out);
        assert_eq!((c.passed, c.failed, c.skipped), (4, 2, 1));
    }
}
