//! Leak checks: a thousand children, spawn failures, validation (SUB-02, SUB-03, SUB-12, and
//! SUB-05 / SUB-22 / SUB-26 at scale). The tests of this binary count the process' fds, so they
//! take turns.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use common::*;
use loop_core::{Error, EventLoop};
use loop_subprocess::{ExitWatcher, Stdio, SubprocessExt, SubprocessOptions, SubprocessProtocol};

const CHILDREN: usize = 1000;

/// How many children may run at once: each holds up to 3 pipe ends and a pidfd in this
/// process, plus 3 child ends while it is being spawned.
fn wave_size() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    let free = (soft as usize).saturating_sub(fd_count() + 64);
    (free / 8).clamp(1, 100)
}

#[test]
fn sub_05_sub_22_a_thousand_children_every_code_right_no_zombie_no_fd_left() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let fds_before = fd_count();
    let wave = wave_size();
    let start = Instant::now();
    let mut pids = Vec::with_capacity(CHILDREN);
    for first in (0..CHILDREN).step_by(wave) {
        let tasks: Vec<_> = (first..(first + wave).min(CHILDREN))
            .map(|i| {
                let lp2 = lp.clone();
                // One child in ten is watched by a thread, the rest by a pidfd.
                let watcher = if i % 10 == 0 {
                    ExitWatcher::Thread
                } else {
                    ExitWatcher::Auto
                };
                lp.create_task(async move {
                    let o = SubprocessOptions::new()
                        .stdin(Stdio::Null)
                        .stdout(Stdio::Pipe)
                        .exit_watcher(watcher);
                    let n = i.to_string();
                    let mut p = lp2
                        .create_subprocess_exec(
                            "sh",
                            o.args(["-c", "echo $1; exit $(($1 % 256))", "sh", &n]),
                        )
                        .await?;
                    let (out, _) = p.communicate(None).await?;
                    Ok::<_, Error>((i, p.pid(), out.unwrap(), p.returncode()))
                })
                .unwrap()
            })
            .collect();
        for t in tasks {
            let (i, pid, out, code) = run(&lp, LONG, t).unwrap().unwrap();
            assert_eq!(out, format!("{i}\n").into_bytes(), "output of child {i}");
            assert_eq!(code, Some((i % 256) as i32), "return code of child {i}");
            pids.push(pid);
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{CHILDREN} children in waves of {wave}: {:.2} s ({:.0} children/s)",
        elapsed.as_secs_f64(),
        CHILDREN as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(pids.len(), CHILDREN);
    assert_eq!(pids.iter().collect::<BTreeSet<_>>().len(), CHILDREN);
    // No zombie: every child was collected, and none is listed as ours any more.
    for &pid in &pids {
        assert!(is_reaped(pid), "child {pid} was not collected");
    }
    let left = children();
    assert!(
        pids.iter().all(|p| !left.contains(p)),
        "children still listed: {left:?}"
    );
    assert!(eventually(|| threads_named("evloop-waitpid") == 0));
    assert_eq!(fd_count(), fds_before, "descriptors leaked");
    lp.close().unwrap();
}

struct Quiet;
impl SubprocessProtocol for Quiet {}

fn exec_err(lp: &EventLoop, program: &OsStr, args: Vec<&OsStr>, o: SubprocessOptions) -> Error {
    let lp2 = lp.clone();
    let program = program.to_owned();
    let args: Vec<_> = args.into_iter().map(|a| a.to_owned()).collect();
    run(lp, LONG, async move {
        lp2.subprocess_exec(|| Quiet, program, o.args(args))
            .await
            .map(|(t, _)| t)
    })
    .unwrap_err()
}

fn shell_err(lp: &EventLoop, cmd: &OsStr, o: SubprocessOptions) -> Error {
    let lp2 = lp.clone();
    let cmd = cmd.to_owned();
    run(lp, LONG, async move {
        lp2.subprocess_shell(|| Quiet, cmd, o).await.map(|(t, _)| t)
    })
    .unwrap_err()
}

#[test]
fn sub_12_spawn_failure_propagates_and_closes_everything() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let missing = OsStr::new("/nonexistent/evloop-no-such-program");
    let e = exec_err(&lp, missing, vec![], SubprocessOptions::new());
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    // With only stdin piped, and with a missing working directory.
    let o = SubprocessOptions::new()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    let e = exec_err(&lp, missing, vec![], o);
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    let o = SubprocessOptions::new().cwd("/nonexistent/evloop-no-such-dir");
    let e = exec_err(&lp, OsStr::new("true"), vec![], o);
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    // Not executable.
    let e = exec_err(
        &lp,
        OsStr::new("/dev/null"),
        vec![],
        SubprocessOptions::new(),
    );
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // The high-level functions too.
    let lp2 = lp.clone();
    let e = run(&lp, LONG, async move {
        lp2.create_subprocess_exec(missing, SubprocessOptions::new().stdout(Stdio::Pipe))
            .await
    })
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    spin(&lp, 3);
    assert_eq!(fd_count(), before, "descriptors leaked");
    lp.close().unwrap();
}

/// Asserts `e` is an invalid-argument error whose message contains `what`.
#[track_caller]
fn invalid(e: Error, what: &str) {
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains(what)),
        "expected an invalid-argument error about {what:?}, got {e:?}"
    );
}

/// A program name or argument with a NUL byte inside.
const NUL: &[u8] = b"ec\0ho";

#[test]
fn sub_02_invalid_exec_arguments_are_rejected_before_spawning() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let nul = OsStr::from_bytes(NUL);
    // The program and its arguments.
    invalid(
        exec_err(&lp, OsStr::new(""), vec![], SubprocessOptions::new()),
        "program must not be empty",
    );
    invalid(exec_err(&lp, nul, vec![], SubprocessOptions::new()), "NUL");
    invalid(
        exec_err(&lp, OsStr::new("echo"), vec![nul], SubprocessOptions::new()),
        "argument 0",
    );
    // Stream choices and other options.
    invalid(
        exec_err(
            &lp,
            OsStr::new("true"),
            vec![],
            SubprocessOptions::new().stdin(Stdio::Stdout),
        ),
        "only valid for stderr",
    );
    invalid(
        exec_err(
            &lp,
            OsStr::new("true"),
            vec![],
            SubprocessOptions::new().stdout(Stdio::Stdout),
        ),
        "only valid for stderr",
    );
    invalid(
        exec_err(
            &lp,
            OsStr::new("true"),
            vec![],
            SubprocessOptions::new().env_var("A=B", "c"),
        ),
        "environment variable names",
    );
    invalid(
        exec_err(
            &lp,
            OsStr::new("true"),
            vec![],
            SubprocessOptions::new().pass_fds([100_000]),
        ),
        "not open",
    );
    invalid(
        exec_err(
            &lp,
            OsStr::new("true"),
            vec![],
            SubprocessOptions::new().limit(0),
        ),
        "limit",
    );
    // Nothing was spawned, nothing is open.
    assert!(children().is_empty(), "{:?}", children());
    assert_eq!(fd_count(), before);
    lp.close().unwrap();
}

#[test]
fn sub_03_invalid_shell_commands_are_rejected_before_spawning() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let nul = OsStr::from_bytes(NUL);
    // The command must be a non-empty string without NUL.
    invalid(
        shell_err(&lp, OsStr::new(""), SubprocessOptions::new()),
        "non-empty string",
    );
    invalid(shell_err(&lp, nul, SubprocessOptions::new()), "NUL");
    let lp2 = lp.clone();
    let e = run(&lp, LONG, async move {
        lp2.create_subprocess_shell("", SubprocessOptions::new())
            .await
    })
    .unwrap_err();
    invalid(e, "non-empty string");
    // A shell command carries its own arguments: arguments in the options are refused.
    invalid(
        shell_err(&lp, OsStr::new("echo"), SubprocessOptions::new().arg("x")),
        "arguments in the command string",
    );
    let lp2 = lp.clone();
    let e = run(&lp, LONG, async move {
        lp2.create_subprocess_shell("echo", SubprocessOptions::new().args(["a", "b"]))
            .await
    })
    .unwrap_err();
    invalid(e, "arguments in the command string");
    // Nothing was spawned, nothing is open.
    assert!(children().is_empty(), "{:?}", children());
    assert_eq!(fd_count(), before);
    lp.close().unwrap();
}
