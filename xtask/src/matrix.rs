//! `cargo xtask test`: the whole check matrix (format, lints, module graph, conformance, the
//! tests of every crate on both reactor backends, the loom model, feature checks, doc tests,
//! examples, rustdoc, cargo deny), one step after another, with a summary.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use crate::cmd::{cargo, member_crates, run_steps, Step};
use crate::tools;

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

/// Runs the matrix (`--heavy`: the reliability suite five more times; `--quick`: no feature
/// checks).
pub fn run(args: &[String]) -> ExitCode {
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
    // The cross-thread wake-ups of `loop-core/src/wake.rs` (the loop's) and `task_wake.rs` (a
    // task's), the remote callbacks' take-once cell (`remote_cell.rs`) and the lock-free queue of
    // remote work (`remote_queue.rs`), under loom (every
    // interleaving up to three preemptions). `--cfg loom` changes every crate's build: it gets
    // its own target dir.
    let mut loom = cargo(&[
        "test",
        "-p",
        "loop-core",
        "--release",
        "--lib",
        "--",
        "wake::",
        "remote_cell::",
        "remote_queue::",
        "task_wake::",
    ]);
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    let flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    loom.env("CARGO_TARGET_DIR", target.join("loom"))
        .env("RUSTFLAGS", format!("{flags} --cfg loom").trim_start());
    steps.push(Step {
        name: "loom models of the wake-ups, the remote callback cell and queue (loop-core)".into(),
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
        // The Python package: its own tests, then CPython's test_asyncio modules on evloop
        // alone (`cargo xtask test --python`, a few minutes); fails when a module passes fewer
        // tests than CONFORMANCE.md records. The full table with asyncio's loop, uvloop and
        // rloop beside evloop is `cargo xtask test --python` on demand.
        let mut python = Command::new(std::env::current_exe().unwrap_or_else(|_| "xtask".into()));
        python.args([
            "test",
            "--python",
            "--subjects",
            "evloop",
            "--no-write",
            "--check",
            "--if-available",
        ]);
        steps.push(Step {
            name: "Python: test_asyncio on evloop (--heavy)".into(),
            cmd: python,
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
