//! `cargo xtask cross-check`: `cargo check` of the libraries for the platforms this machine
//! cannot run — `x86_64-apple-darwin`, `aarch64-apple-darwin`, `x86_64-unknown-freebsd` — so
//! that code that only compiles on Linux is caught here.
//!
//! No standard library for those targets can be downloaded on these machines, so the step
//! builds one from source (`-Zbuild-std`). The source must match the compiler exactly, and
//! Debian packages both: `rustc-web` / `cargo-web` with `rust-web-src`. They are fetched with
//! `apt-get download` and unpacked with `dpkg-deb -x` into `<target>/cross-toolchain` (never
//! installed over the system toolchain), once; `RUSTC_BOOTSTRAP=1` lets that stable compiler
//! take `-Z` flags. Checks go to `<target>/cross`. Each target takes about two minutes the
//! first time.
//!
//! Only what needs no C cross-compiler is checked: the facade with its default features and
//! every library crate but `loop-tls` (its crypto providers compile C). `--target T` checks
//! one target.

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
        let mut cmd = Command::new(toolchain.join("usr/bin/cargo"));
        cmd.args(["check", "--workspace", "--all-targets", "--target", target]);
        // Dev-dependencies (proptest) may ask for a newer compiler than the packaged one;
        // checking does not need their newest features.
        cmd.arg("--ignore-rust-version");
        cmd.args(["-Zbuild-std=std,panic_abort"]);
        for p in EXCLUDED {
            cmd.args(["--exclude", p]);
        }
        env(&mut cmd, &toolchain, &target_dir);
        match cmd.status() {
            Ok(st) if st.success() => println!("==> {target}: ok"),
            Ok(_) => failed.push(*target),
            Err(e) => {
                eprintln!("could not run {}: {e}", show(&cmd));
                failed.push(*target);
            }
        }
    }
    println!("\n==> cross-check summary");
    for target in TARGETS
        .iter()
        .filter(|t| only.is_none() || only.map(String::as_str) == Some(**t))
    {
        let ok = !failed.contains(target);
        println!("  {} {target}", if ok { "ok    " } else { "FAILED" });
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
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
