//! `cargo xtask cross-check`: `cargo check` of the libraries for the platforms this machine
//! cannot run — `x86_64-apple-darwin`, `aarch64-apple-darwin`, `x86_64-unknown-freebsd` — so
//! that code that only compiles on Linux is caught here.
//!
//! No standard library for those targets can be downloaded on these machines, so the step
//! builds one from source (`-Zbuild-std`). The source must match the compiler exactly, and
//! Debian packages both: `rustc-web` / `cargo-web` with `rust-web-src`. They are fetched with
//! `apt-get download` and unpacked with `dpkg-deb -x` into `<target>/cross-toolchain` (never
//! installed over the system toolchain), once; `RUSTC_BOOTSTRAP=1` lets that stable compiler
//! take `-Z` flags. Checks go to `<target>/cross`. The first run takes about a minute and a
//! half of CPU per target, most of it the standard library; later runs recheck what changed.
//! `cargo xtask test --heavy` (CI) runs it.
//!
//! Only what needs no C cross-compiler is checked: every crate but `loop-tls` (its crypto
//! providers compile C) with all its targets (library, tests, examples), and the facade's
//! library with its default features — not the facade's tests and examples, whose
//! dev-dependencies include `rcgen` and with it aws-lc's C code. `--keep-going` reports every
//! crate that fails, not only the first. `--target T` checks one target.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The targets checked.
const TARGETS: &[&str] = &[
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-unknown-freebsd",
];

/// Debian packages of the toolchain: the compiler, cargo, the standard library's source, and
/// the libraries they link that the machine may lack.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "libstd-rust-web-dev",
    "libstd-rust-web-1.85",
    "libllvm19",
    "libpcre3",
    "libhttp-parser2.9",
];

/// Packages not checked (they need a C cross-compiler, or are tools of this machine).
const EXCLUDED: &[&str] = &["loop-tls", "evloop-bench", "xtask"];

/// Runs the step.
pub fn run(root: &Path, args: &[String]) -> ExitCode {
    let target_dir = crate::cmd::target_dir(root);
    let toolchain = target_dir.join("cross-toolchain");
    if let Err(e) = setup(&toolchain) {
        eprintln!("cross-check: {e}");
        // `--if-available` (what `cargo xtask test --heavy` passes): a machine that cannot
        // fetch the toolchain (no route to Debian's archive) skips the step, loudly, instead of
        // failing the test run; a toolchain that is there and finds an error still fails.
        if args.iter().any(|a| a == "--if-available") {
            println!(
                "cross-check: skipped, the toolchain could not be set up here; run `cargo xtask \
                 cross-check` on a machine that reaches Debian's package archive"
            );
            println!("{}skipped: no toolchain", crate::cmd::SUMMARY_PREFIX);
            return ExitCode::SUCCESS;
        }
        return ExitCode::FAILURE;
    }
    let only = args
        .iter()
        .position(|a| a == "--target")
        .and_then(|i| args.get(i + 1));
    let mut failed = Vec::new();
    for target in TARGETS
        .iter()
        .filter(|t| only.is_none() || only.map(String::as_str) == Some(**t))
    {
        println!("\n==> cargo check --target {target}");
        let check = |what: &[&str]| {
            let mut cmd = Command::new(toolchain.join("usr/bin/cargo"));
            cmd.args(["check", "--keep-going", "--target", target]);
            cmd.args(what);
            // Dev-dependencies (proptest) may ask for a newer compiler than the packaged one;
            // checking does not need their newest features.
            cmd.arg("--ignore-rust-version");
            cmd.args(["-Zbuild-std=std,panic_abort"]);
            env(&mut cmd, &toolchain, &target_dir);
            match cmd.status() {
                Ok(st) => st.success(),
                Err(e) => {
                    eprintln!("could not run {}: {e}", show(&cmd));
                    false
                }
            }
        };
        let mut crates = vec!["--workspace", "--all-targets", "--exclude", "evloop"];
        for p in EXCLUDED {
            crates.extend(["--exclude", p]);
        }
        // Both, whatever the first gave: every error in one run.
        let ok = [check(&crates), check(&["-p", "evloop", "--lib"])];
        if ok.iter().all(|&ok| ok) {
            println!("==> {target}: ok");
        } else {
            failed.push(*target);
        }
    }
    let mut report = String::from("==> cross-check summary\n");
    for target in TARGETS
        .iter()
        .filter(|t| only.is_none() || only.map(String::as_str) == Some(**t))
    {
        let ok = !failed.contains(target);
        report.push_str(&format!(
            "  {} {target}\n",
            if ok { "ok    " } else { "FAILED" }
        ));
    }
    println!("\n{report}");
    if let Some(line) = summary(&report) {
        println!("{}{line}", crate::cmd::SUMMARY_PREFIX);
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The one-line summary of a cross-check's output ("3 of 3 targets ok", or which failed),
/// from the summary it ends with; `None` for the output of any other step.
pub fn summary(output: &str) -> Option<String> {
    let (_, tail) = output.split_once("==> cross-check summary")?;
    let (mut ok, mut failed) = (0, Vec::new());
    for line in tail.lines().map(str::trim) {
        if line.starts_with("ok ") {
            ok += 1;
        } else if let Some(t) = line.strip_prefix("FAILED ") {
            failed.push(t.trim().to_string());
        }
    }
    let total = ok + failed.len();
    Some(if failed.is_empty() {
        format!("{ok} of {total} targets ok")
    } else {
        format!("{ok} of {total} targets ok; failed: {}", failed.join(", "))
    })
}

/// The environment that runs the unpacked toolchain.
fn env(cmd: &mut Command, toolchain: &Path, target_dir: &Path) {
    let libs = [
        "usr/lib/x86_64-linux-gnu",
        "lib/x86_64-linux-gnu",
        "usr/lib/llvm-19/lib",
    ]
    .map(|d| toolchain.join(d).display().to_string())
    .join(":");
    cmd.env("LD_LIBRARY_PATH", libs)
        .env("RUSTC", toolchain.join("usr/bin/rustc"))
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir.join("cross"))
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTDOCFLAGS");
}

/// Downloads and unpacks the toolchain unless it is there; prints each step, and on failure
/// says which command failed.
fn setup(toolchain: &Path) -> Result<(), String> {
    let cargo = toolchain.join("usr/bin/cargo");
    if cargo.exists() && toolchain.join("usr/lib/rustlib/src/rust").exists() {
        println!("==> toolchain: {}", toolchain.display());
        return Ok(());
    }
    let debs = toolchain.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("cannot create {}: {e}", debs.display()))?;
    let mut download = Command::new("apt-get");
    download.arg("download").args(PACKAGES).current_dir(&debs);
    step(&mut download, "download the Debian rust-web toolchain")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&debs)
        .map_err(|e| format!("cannot read {}: {e}", debs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    files.sort();
    for deb in files {
        let mut x = Command::new("dpkg-deb");
        x.arg("-x").arg(&deb).arg(toolchain);
        step(&mut x, "unpack")?;
    }
    let _ = std::fs::remove_dir_all(&debs);
    // Libraries the unpacked binaries need that neither the packages nor the machine have.
    let mut ldd = Command::new("ldd");
    ldd.arg(&cargo);
    let mut with_env = ldd;
    env(&mut with_env, toolchain, toolchain);
    let out = with_env
        .output()
        .map_err(|e| format!("could not run `ldd {}`: {e}", cargo.display()))?;
    let missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("not found"))
        .map(|l| l.trim().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the unpacked cargo lacks libraries ({}); install them with apt-get (e.g. libssh2-1 \
             libsqlite3-0 libcurl4 libssl3) and run again",
            missing.join("; ")
        ));
    }
    Ok(())
}

/// Runs one setup command, printing it first.
fn step(cmd: &mut Command, what: &str) -> Result<(), String> {
    println!("==> {what}: {}", show(cmd));
    match cmd.status() {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => Err(format!("`{}` failed ({st})", show(cmd))),
        Err(e) => Err(format!("could not run `{}`: {e}", show(cmd))),
    }
}

/// A command as a shell line.
fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    if let Some(dir) = cmd.get_current_dir() {
        s = format!("(cd {} && {s})", dir.display());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn the_summary_line_counts_the_targets_and_names_the_failed_ones() {
        let out = "\
==> x86_64-apple-darwin: ok
==> cross-check summary
  ok     x86_64-apple-darwin
  FAILED aarch64-apple-darwin
  ok     x86_64-unknown-freebsd
";
        assert_eq!(
            summary(out).unwrap(),
            "2 of 3 targets ok; failed: aarch64-apple-darwin"
        );
        let all = "==> cross-check summary\n  ok     x86_64-apple-darwin\n";
        assert_eq!(summary(all).unwrap(), "1 of 1 targets ok");
        assert_eq!(summary("test result: ok. 3 passed"), None);
    }
}
