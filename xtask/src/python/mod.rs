//! `cargo xtask test --python`: the Python package and CPython's own asyncio tests.
//!
//! 1. A venv under the target dir (`<target>/python/venv-<major>.<minor>`), made with the
//!    interpreter given by `--python-bin` (or `$EVLOOP_PYTHON`, else `python3`), which must
//!    have CPython's `test` package (`test.test_asyncio`). Each interpreter version has its
//!    own venv, so a run on another version (`--python-bin python3.12`) keeps the others.
//! 2. Into it, with pip: maturin (to build the package), and uvloop and rloop, the loops the
//!    table compares with (a subject that does not install is left out, with a note).
//! 3. When `bindings/python/` exists: the package, built with `maturin develop --release`
//!    into the venv (its Cargo target dir is `<target>/python/build`), then its own tests
//!    (`python -m unittest discover bindings/python/tests`).
//! 4. The conformance run: each module of `test.test_asyncio` listed in [`MODULES`], for each
//!    subject loop (stdlib asyncio, uvloop, rloop, evloop), in a process of its own
//!    (`bindings/python/conformance/run_module.py`), killed after `--module-timeout`
//!    seconds. The runner writes each test's outcome as a JSON line as soon as the test ends,
//!    and ends itself with a traceback when one test runs past `--test-timeout`; a process
//!    that dies in a test (a hang, a crash) is started again without the tests already done,
//!    so one bad test costs only itself.
//! 5. The table: per module, the tests counted (see [`report`]) and how many pass on each
//!    subject, printed and written into `CONFORMANCE.md` between the markers
//!    [`report::SECTION_OPEN`] and [`report::SECTION_CLOSE`] (only that section: the rest of
//!    the file belongs to `cargo xtask conformance`). Per-test outcomes, with the reason and
//!    the traceback of every failure, stay in `<target>/python/conformance/<subject>/` as
//!    JSON lines, and `summary.json` beside them holds the table and the failures.
//!
//! Options: `--subjects a,b` (default: all four), `--module NAME` (repeatable; a partial run
//! does not write `CONFORMANCE.md`), `--no-build`, `--no-write`, `--test-timeout S` (60),
//! `--module-timeout S` (900).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::cmd::run_step;

mod json;
pub mod report;
mod suite;

use suite::{MODULES, SUBJECTS};

/// How long one pip install or one build may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(20 * 60);
/// How many times a module is started again after a process that died in a test.
const MAX_RESTARTS: usize = 10;

/// What the command line asked for.
struct Options {
    python: String,
    subjects: Vec<String>,
    modules: Vec<String>,
    build: bool,
    write: bool,
    test_timeout: u64,
    module_timeout: u64,
    /// Fail when evloop passes fewer tests of a module than CONFORMANCE.md records.
    check: bool,
    /// Skip (successfully, saying why) when the interpreter or its test package is missing.
    if_available: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        python: std::env::var("EVLOOP_PYTHON").unwrap_or_else(|_| "python3".into()),
        subjects: SUBJECTS.iter().map(|s| s.to_string()).collect(),
        modules: Vec::new(),
        build: true,
        write: true,
        test_timeout: 60,
        module_timeout: 900,
        check: false,
        if_available: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--python-bin" => o.python = value(a)?,
            "--subjects" => {
                o.subjects = value(a)?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.subjects.iter().find(|s| !SUBJECTS.contains(&s.as_str())) {
                    return Err(format!("unknown subject {bad}: one of {SUBJECTS:?}"));
                }
            }
            "--module" => {
                let m = value(a)?;
                if !MODULES.contains(&m.as_str()) {
                    return Err(format!("unknown module {m}: one of {MODULES:?}"));
                }
                o.modules.push(m);
            }
            "--no-build" => o.build = false,
            "--no-write" => o.write = false,
            "--check" => o.check = true,
            "--if-available" => o.if_available = true,
            "--test-timeout" => {
                o.test_timeout = value(a)?
                    .parse()
                    .map_err(|e| format!("--test-timeout: {e}"))?
            }
            "--module-timeout" => {
                o.module_timeout = value(a)?
                    .parse()
                    .map_err(|e| format!("--module-timeout: {e}"))?
            }
            // The flag that chose this command.
            "--python" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.modules.is_empty() {
        o.modules = MODULES.iter().map(|s| s.to_string()).collect();
    } else {
        o.write = false;
    }
    Ok(o)
}

/// The usage line of `cargo xtask test --python`.
pub const USAGE: &str = "cargo xtask test --python [--python-bin PYTHON] [--subjects stdlib,uvloop,rloop,evloop] [--module NAME]... [--no-build] [--no-write] [--check] [--if-available] [--test-timeout S] [--module-timeout S]";

/// The target dir, absolute.
fn target_dir(root: &Path) -> PathBuf {
    let t = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    if t.is_relative() {
        root.join(t)
    } else {
        t
    }
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

/// Why [`venv`] could not give an interpreter.
enum VenvError {
    /// The interpreter, or its CPython `test` package, is not on this machine: `--if-available`
    /// skips the run.
    Missing(String),
    /// Making the venv failed.
    Failed(String),
}

/// The interpreter of the venv for `python`'s version, `<base>/venv-<major>.<minor>` (one per
/// version, so that runs on several interpreters keep their installs), made (or remade for
/// another patch release) as needed.
fn venv(python: &str, base: &Path) -> Result<PathBuf, VenvError> {
    let probe = Command::new(python)
        .args([
            "-c",
            "import sys, test.test_asyncio; print('%d.%d.%d' % sys.version_info[:3])",
        ])
        .output()
        .map_err(|e| {
            VenvError::Missing(format!(
                "cannot run {python}: {e} (give another with --python-bin)"
            ))
        })?;
    if !probe.status.success() {
        return Err(VenvError::Missing(format!(
            "{python} has no CPython test package (`import test.test_asyncio` failed):\n{}\n\
             Install it (Debian: `apt-get install libpython3-testsuite`), or give another \
             interpreter with --python-bin.",
            tail(&String::from_utf8_lossy(&probe.stderr), 5)
        )));
    }
    let version = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    let minor: Vec<&str> = version.split('.').take(2).collect();
    let dir = &base.join(format!("venv-{}", minor.join(".")));
    let venv_python = dir.join("bin/python");
    let stamp = dir.join("evloop-python-version");
    let current = std::fs::read_to_string(&stamp).unwrap_or_default();
    if !venv_python.exists() || current.trim() != version {
        println!(
            "xtask: creating the venv {} (Python {version})",
            dir.display()
        );
        let mut make = Command::new(python);
        make.args(["-m", "venv", "--clear"]).arg(dir);
        let (ok, text) = run_step(&mut make, INSTALL_LIMIT);
        if !ok {
            return Err(VenvError::Failed(format!(
                "`{python} -m venv {}` failed:\n{}\n(Debian: `apt-get install python3-venv`)",
                dir.display(),
                tail(&text, 8)
            )));
        }
        std::fs::write(&stamp, &version)
            .map_err(|e| VenvError::Failed(format!("{}: {e}", stamp.display())))?;
    }
    Ok(venv_python)
}

/// Whether `import <module>` works in the venv.
fn importable(py: &Path, module: &str) -> bool {
    Command::new(py)
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The version pip has of `package` in the venv, if it is installed.
fn installed_version(py: &Path, package: &str) -> Option<String> {
    let out = Command::new(py)
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version({package:?}))"),
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `pip install package` into the venv unless `module` imports already.
fn pip_install(py: &Path, package: &str, module: &str) -> Result<(), String> {
    if importable(py, module) {
        return Ok(());
    }
    println!("xtask: pip install {package} ...");
    let mut pip = Command::new(py);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        package,
    ]);
    let (ok, text) = run_step(&mut pip, INSTALL_LIMIT);
    if ok && importable(py, module) {
        Ok(())
    } else {
        Err(format!(
            "`pip install {package}` failed:\n{}",
            tail(&text, 6)
        ))
    }
}

/// Builds the package into the venv with maturin.
fn build(root: &Path, target: &Path, py: &Path) -> Result<(), String> {
    pip_install(py, "maturin", "maturin")?;
    let bin = py.parent().expect("venv/bin");
    let manifest = root.join("bindings/python/Cargo.toml");
    println!("xtask: maturin develop --release (bindings/python) ...");
    let started = Instant::now();
    let mut cmd = Command::new(bin.join("maturin"));
    cmd.args(["develop", "--release", "--quiet", "-m"])
        .arg(&manifest)
        .env("VIRTUAL_ENV", bin.parent().expect("venv"))
        .env("CARGO_TARGET_DIR", target.join("python/build"))
        .env("CARGO_INCREMENTAL", "0");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(paths) {
        cmd.env("PATH", joined);
    }
    let (ok, text) = run_step(&mut cmd, INSTALL_LIMIT);
    if ok && importable(py, "evloop") {
        println!("xtask: built in {} s", started.elapsed().as_secs());
        Ok(())
    } else {
        Err(format!(
            "the build of bindings/python failed:\n{}",
            tail(&text, 30)
        ))
    }
}

/// The package's own tests; returns whether they passed.
fn own_tests(root: &Path, py: &Path) -> bool {
    let dir = root.join("bindings/python/tests");
    if !dir.exists() {
        return true;
    }
    println!("\n==> the package's own tests (bindings/python/tests)");
    let mut cmd = Command::new(py);
    cmd.args(["-m", "unittest", "discover", "-s"])
        .arg(&dir)
        .arg("-t")
        .arg(root.join("bindings/python"));
    let (ok, text) = run_step(&mut cmd, Duration::from_secs(15 * 60));
    for l in text
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        println!("    {l}");
    }
    if !ok {
        println!("{}", tail(&text, 60));
    }
    ok
}

/// Runs one module on one subject, restarting after a process that died in a test. Returns
/// the outcomes and notes on restarts.
fn run_module(
    root: &Path,
    py: &Path,
    out_dir: &Path,
    subject: &str,
    module: &str,
    o: &Options,
) -> (Vec<json::Outcome>, Vec<String>) {
    let out = out_dir.join(format!("{module}.jsonl"));
    let _ = std::fs::remove_file(&out);
    let runner = root.join("bindings/python/conformance/run_module.py");
    let mut notes = Vec::new();
    let started = Instant::now();
    for attempt in 0..=MAX_RESTARTS {
        let done = json::read_outcomes(&out);
        let left = Duration::from_secs(o.module_timeout).saturating_sub(started.elapsed());
        if left.is_zero() {
            notes.push(format!(
                "{module}: stopped after {} s (--module-timeout)",
                o.module_timeout
            ));
            break;
        }
        let mut cmd = Command::new(py);
        cmd.arg(&runner)
            .args(["--subject", subject, "--module", module, "--out"])
            .arg(&out)
            .args(["--test-timeout", &o.test_timeout.to_string()])
            .current_dir(out_dir);
        if attempt > 0 {
            cmd.arg("--append");
        }
        for t in &done.tests {
            cmd.args(["--exclude", &t.test]);
        }
        let (ok, text) = run_step(&mut cmd, left);
        let after = json::read_outcomes(&out);
        if after.finished {
            if !ok {
                notes.push(format!("{module}: the runner failed:\n{}", tail(&text, 10)));
            }
            break;
        }
        // The process died inside a test: record it and go on without it.
        let how = if text.contains("Timeout (") {
            format!("hang: still running after {} s", o.test_timeout)
        } else if text.contains("step killed") {
            "hang: the module ran past --module-timeout".to_string()
        } else {
            format!("crash: the process died ({})", why_it_died(&text))
        };
        match after.running {
            Some(test) => {
                notes.push(format!("{module}: {test}: {how}"));
                json::append_outcome(&out, &test, &how, &text);
            }
            None => {
                notes.push(format!(
                    "{module}: the runner died before any test ran:\n{}",
                    tail(&text, 12)
                ));
                break;
            }
        }
    }
    (json::read_outcomes(&out).tests, notes)
}

/// What a dead runner's output says about why: a Rust panic with its message, a fatal Python
/// error, a fault, or else its last line.
fn why_it_died(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let short = |s: &str| s.trim().chars().take(160).collect::<String>();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("panicked at") {
            let message = lines.get(i + 1).map(|m| short(m)).unwrap_or_default();
            return format!("{}: {message}", short(l));
        }
        if l.contains("Fatal Python error") || l.contains("Segmentation fault") {
            return short(l);
        }
    }
    lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| short(l))
        .unwrap_or_default()
}

/// `cargo xtask test --python`.
pub fn run(root: &Path, args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\nusage: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let target = target_dir(root);
    let py = match venv(&o.python, &target.join("python")) {
        Ok(p) => p,
        Err(VenvError::Missing(e)) if o.if_available => {
            println!("xtask: the Python check is skipped (--if-available): {e}");
            println!("{}skipped: {}", crate::cmd::SUMMARY_PREFIX, first_line(&e));
            return ExitCode::SUCCESS;
        }
        Err(VenvError::Missing(e) | VenvError::Failed(e)) => {
            eprintln!("xtask: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let mut notes: Vec<String> = Vec::new();
    let mut subjects: Vec<String> = Vec::new();
    for s in &o.subjects {
        let ready = match s.as_str() {
            "stdlib" => Ok(()),
            "uvloop" | "rloop" => pip_install(&py, s, s),
            _ if !root.join("bindings/python/Cargo.toml").exists() => {
                Err("bindings/python is not there".to_string())
            }
            _ if o.build => build(root, &target, &py).inspect_err(|_| failed = true),
            _ if importable(&py, "evloop") => Ok(()),
            _ => Err("not built (--no-build) and not in the venv".to_string()),
        };
        match ready {
            Ok(()) => subjects.push(s.clone()),
            Err(e) => {
                println!("xtask: {s} is left out: {e}");
                notes.push(format!("{s} is not in this run: {}", first_line(&e)));
            }
        }
    }
    if subjects.iter().any(|s| s == "evloop") && !own_tests(root, &py) {
        failed = true;
    }
    let versions: Vec<(String, String)> = subjects
        .iter()
        .map(|s| {
            let v = match s.as_str() {
                "stdlib" => python_version(&py),
                other => installed_version(&py, other).unwrap_or_default(),
            };
            (s.clone(), v)
        })
        .collect();

    let results_dir = target.join("python/conformance");
    let mut results = report::Results::default();
    for s in &subjects {
        let out_dir = results_dir.join(s);
        if let Err(e) = std::fs::create_dir_all(&out_dir) {
            eprintln!("xtask: {}: {e}", out_dir.display());
            return ExitCode::FAILURE;
        }
        println!("\n==> {s}: CPython's test_asyncio modules");
        for m in &o.modules {
            let t = Instant::now();
            let (outcomes, module_notes) = run_module(root, &py, &out_dir, s, m, &o);
            let passed = outcomes
                .iter()
                .filter(|t| t.counted() && t.passed())
                .count();
            let counted = outcomes.iter().filter(|t| t.counted()).count();
            println!(
                "{s:<7} {m:<20} {passed:>4} / {counted:<4} passed ({:.0} s)",
                t.elapsed().as_secs_f64()
            );
            for n in &module_notes {
                println!("        {}", n.replace('\n', "\n        "));
            }
            notes.extend(
                module_notes
                    .into_iter()
                    .map(|n| format!("{s}: {}", first_line(&n))),
            );
            results.add(s, m, outcomes);
        }
    }
    let table = report::table(&results, &subjects, &o.modules);
    println!("\n{}", table.text);
    if let Err(e) = report::write_summary(&results_dir.join("summary.json"), &results, &subjects) {
        eprintln!("xtask: {e}");
        failed = true;
    }
    if o.write {
        let section = report::section(&table, &results, &versions, &notes);
        match report::write_section(&root.join("CONFORMANCE.md"), &section) {
            Ok(true) => println!("xtask: wrote the test_asyncio table into CONFORMANCE.md"),
            Ok(false) => {}
            Err(e) => {
                eprintln!("xtask: {e}");
                failed = true;
            }
        }
    }
    println!(
        "per-test outcomes: {} (summary.json, <subject>/<module>.jsonl)",
        results_dir.display()
    );
    if o.check && !check_against_record(root, &results, &o.modules) {
        failed = true;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn python_version(py: &Path) -> String {
    Command::new(py)
        .args(["-c", "import platform; print(platform.python_version())"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `--check`: evloop passes at least as many tests of every module run as the table in
/// CONFORMANCE.md records (a pass lost is a regression; more passes mean the table is due to be
/// rewritten by a full run). Prints the summary line of the step.
fn check_against_record(root: &Path, results: &report::Results, modules: &[String]) -> bool {
    let path = root.join("CONFORMANCE.md");
    let recorded = match report::recorded_passes(&path, "evloop") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xtask: --check: {e}");
            return false;
        }
    };
    let (mut ok, mut now_total, mut then_total) = (true, 0, 0);
    for m in modules {
        let now = results.passes("evloop", m);
        let Some(&then) = recorded.get(m) else {
            eprintln!("xtask: --check: CONFORMANCE.md records no evloop figure for {m}");
            ok = false;
            continue;
        };
        now_total += now;
        then_total += then;
        if now < then {
            println!(
                "xtask: --check: evloop passes {now} tests of {m}, CONFORMANCE.md records {then}: \
                 a regression (the per-test outcomes say which)"
            );
            ok = false;
        }
    }
    println!(
        "{}evloop {now_total} test_asyncio tests passed, CONFORMANCE.md records {then_total}",
        crate::cmd::SUMMARY_PREFIX
    );
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_runner_is_explained_by_its_panic_or_fault() {
        let panic =
            "  T.x ... \nthread '<unnamed>' panicked at src/a.rs:1:2:\ninternal error\nnote: ...";
        assert_eq!(
            why_it_died(panic),
            "thread '<unnamed>' panicked at src/a.rs:1:2:: internal error"
        );
        assert_eq!(
            why_it_died("a\nFatal Python error: Aborted\nmore"),
            "Fatal Python error: Aborted"
        );
        assert_eq!(why_it_died("first\nlast line\n\n"), "last line");
    }

    #[test]
    fn arguments_parse_and_a_partial_run_does_not_write() {
        let o = parse(&["--python".into(), "--module".into(), "test_tasks".into()]).unwrap();
        assert_eq!(o.modules, ["test_tasks"]);
        assert!(!o.write);
        assert!(parse(&["--module".into(), "test_nothing".into()]).is_err());
        assert!(parse(&["--subjects".into(), "stdlib,trio".into()]).is_err());
        let all = parse(&[]).unwrap();
        assert_eq!(all.modules.len(), MODULES.len());
        assert!(all.write);
    }
}
