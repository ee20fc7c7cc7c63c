//! What the commands share: the workspace's crates, running a command with a time limit and
//! its output captured, and running a list of steps with a summary.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The micro-crates under `crates/`, sorted.
pub(crate) fn member_crates() -> Vec<String> {
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

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` under the root).
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// One step of the matrix.
pub(crate) struct Step {
    /// What the summary line calls it.
    pub(crate) name: String,
    /// The command.
    pub(crate) cmd: Command,
}

pub(crate) fn cargo(args: &[&str]) -> Command {
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
pub(crate) const STEP_LIMIT: Duration = Duration::from_secs(25 * 60);

/// A step that runs no tests may end its output with one line starting with this; the text
/// after it goes on the step's summary line (the cross-check's "3 of 3 targets ok").
pub const SUMMARY_PREFIX: &str = "xtask-summary: ";

/// Runs one step with no standard input, its output captured, killed after `limit`.
/// Returns whether it succeeded and its output (stdout, then stderr).
pub(crate) fn run_step(cmd: &mut Command, limit: Duration) -> (bool, String) {
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
/// Runs the steps in order (every one, whatever failed before), prints one summary line per
/// step and the test totals; fails if any step failed.
pub(crate) fn run_steps(steps: Vec<Step>) -> ExitCode {
    let started = Instant::now();
    let mut summary = Vec::new();
    let mut total = Counts::default();
    let mut failed_steps = 0;
    for mut step in steps {
        println!("\n==> {}", step.name);
        let t = Instant::now();
        let (exited_ok, text) = run_step(&mut step.cmd, STEP_LIMIT);
        let counts = parse_counts(&text);
        // A runner that reports a failed test fails its step whatever its exit status (a
        // stress run's iteration, for one, can fail while the run exits 0).
        let ok = exited_ok && counts.failed == 0;
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
        } else if let Some(s) = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(SUMMARY_PREFIX))
        {
            format!(" ({s})")
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
