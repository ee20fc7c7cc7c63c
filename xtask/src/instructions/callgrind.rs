//! The callgrind layer of `cargo xtask bench --instructions`: what is measured (the
//! benchmarks, the implementations, the workloads), the figures, and running a process under
//! callgrind and reading its total.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The heading of the section of `BENCHMARKS.md` this step writes (between the micro-benchmark
/// and the echo sections).
pub const HEADING: &str = "\n## Instructions per operation";

/// The micro-benchmarks, in table order, with evloop's goal for each in instructions per
/// operation.
pub(super) const GOALS: &[(&str, f64)] = &[
    ("call_soon chain", 150.0),
    ("call_soon queued", 150.0),
    ("call_later half cancelled", 600.0),
    ("tasks created and awaited", 500.0),
    ("call_soon_threadsafe", 150.0),
];

/// The implementations of each micro-benchmark, in table order.
pub(super) const IMPLS: &[&str] = &["evloop", "tokio", "smol"];

/// Echo servers not measured. The two-loop server spreads its connections over two loops by
/// the kernel's `reuse_port` hash, so its count is the one-loop server's plus whatever the
/// split costs, and under valgrind its second listener is bound after it reports its port, so
/// the load generator's first connections can be refused.
pub(super) const SKIPPED_SERVERS: &[&str] = &["evloop (protocol, 2 loops)"];

/// Size of the echo messages, in bytes.
pub(super) const ECHO_SIZE: usize = 64;

/// The echo workloads: (connections, round trips per connection of the large workload). The
/// small workload, subtracted to cancel start-up, makes 1/100 of the round trips.
pub(super) const ECHO_WORKLOADS: &[(usize, u64)] = &[(1, 10_000), (100, 2_000)];

/// The echo workload of a smoke run, which measures evloop and the floor only (its micro-
/// benchmarks, evloop only): a smoke run checks that the step works, in seconds.
pub(super) const ECHO_SMOKE: &[(usize, u64)] = &[(10, 100)];

/// The echo servers of a smoke run.
pub(super) const SMOKE_SERVERS: &[&str] = &["floor (hand-written epoll)", "evloop (protocol)"];

/// No single valgrind run may take longer than this.
pub(super) const RUN_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The command that installs valgrind (with `callgrind_annotate`) on Debian and Ubuntu.
pub(super) const INSTALL: &str = "apt-get install valgrind";

/// The unit of the micro-benchmark groups.
pub(super) const MICRO_UNIT: &str = "instructions/op";

pub(super) fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A count per operation over several runs: the median, and the largest minus the smallest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerOp {
    /// The median over the runs.
    pub median: f64,
    /// Largest minus smallest (0 for one run).
    pub spread: f64,
}

impl PerOp {
    /// The median and spread of `v` (not empty).
    pub(super) fn of(mut v: Vec<f64>) -> PerOp {
        v.sort_by(f64::total_cmp);
        PerOp {
            median: v[v.len() / 2],
            spread: v[v.len() - 1] - v[0],
        }
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Per micro-benchmark, in table order: implementation -> instructions per operation.
    pub micro: Vec<(String, BTreeMap<String, PerOp>)>,
    /// Per micro-benchmark: evloop's instructions per operation outside the C library's
    /// allocator.
    pub evloop_own: BTreeMap<String, PerOp>,
    /// Per echo server and connection count, in run order: instructions per round trip.
    pub echo: Vec<(String, usize, f64)>,
    /// Runs of each micro-benchmark pair.
    pub(super) reps: usize,
    /// The two operation counts of the micro-benchmarks.
    pub(super) n: (u64, u64),
}

/// `valgrind --version`, e.g. `valgrind-3.19.0`.
pub(super) fn valgrind_version() -> String {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "valgrind (version unknown)".into())
}

/// The output of a short command, trimmed; empty if it failed.
pub(super) fn output_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The commit measured, with a note when the work tree differs from it.
pub(super) fn commit() -> String {
    let head = output_of("git", &["rev-parse", "--short=12", "HEAD"]);
    if head.is_empty() {
        return "unknown".into();
    }
    let dirty = !output_of("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

/// A name fit for a file name: lower case, runs of other characters as one `-`.
pub(super) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A valgrind command that profiles into `profile`.
///
/// `--fair-sched=yes`: valgrind runs one thread at a time, and by default a thread whose time
/// slice ends may take the lock straight back, so the loop's thread of call_soon_threadsafe
/// could wait out most of the run while the producer queued work far ahead (most of 200,000
/// callbacks in three batches, past the loop's pool of spent allocations: a count of ~1000
/// instead of ~370 instructions per call, in 2 runs of 12). The fair scheduler hands the lock
/// over in turn, so both threads advance alternately, as on two cores. Single-threaded
/// measurements count the same either way.
pub(super) fn callgrind(profile: &Path) -> Command {
    let mut c = Command::new("valgrind");
    c.args(["--tool=callgrind", "--quiet", "--fair-sched=yes"])
        .arg(format!("--callgrind-out-file={}", profile.display()));
    c
}

/// The total instruction count of a callgrind profile (its `summary:` line: every thread).
pub(super) fn total_ir(profile: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(profile)
        .map_err(|e| format!("could not read {}: {e}", profile.display()))?;
    summary_ir(&text).ok_or_else(|| format!("no instruction total in {}", profile.display()))
}

/// The `summary:` (or `totals:`) figure of a callgrind profile's text.
pub(super) fn summary_ir(text: &str) -> Option<u64> {
    ["summary:", "totals:"].iter().find_map(|key| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    })
}
