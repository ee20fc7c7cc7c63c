//! SUB-27: a loop created in a forked child runs subprocesses. The only test of its binary,
//! so the fork happens while no other test thread is busy.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

mod common;

use common::*;
use loop_core::EventLoop;
use loop_subprocess::{Stdio, SubprocessExt, SubprocessOptions};

/// What the forked child does: a fresh loop, a subprocess, its output checked. Exit status 0
/// on success.
fn in_the_fork() -> i32 {
    let Ok(lp) = EventLoop::new() else { return 10 };
    let lp2 = lp.clone();
    let r = lp.run_until_complete(async move {
        let o = SubprocessOptions::new().stdout(Stdio::Pipe);
        let mut p = lp2
            .create_subprocess_exec("echo", o.arg("from the fork"))
            .await?;
        let (out, _) = p.communicate(None).await?;
        Ok::<_, loop_core::Error>((out, p.returncode()))
    });
    let code = match r {
        Ok(Ok((Some(out), Some(0)))) if out == b"from the fork\n" => 0,
        Ok(Ok(_)) => 11,
        Ok(Err(_)) => 12,
        Err(_) => 13,
    };
    if lp.close().is_err() {
        return 14;
    }
    code
}

#[test]
fn sub_27_subprocesses_work_from_a_loop_in_a_forked_child() {
    let _w = loop_testkit::watchdog();
    // The parent has a loop with a child running (a pidfd registered, pipes open): the fork
    // inherits all of that and must not be confused by it.
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let parent_child = run(&lp, LONG, async move {
        lp2.create_subprocess_exec(
            "sleep",
            SubprocessOptions::new().stdout(Stdio::Pipe).arg("60"),
        )
        .await
    })
    .unwrap();

    // SAFETY: the child only runs Rust code of this test (no other thread of this process
    // is running at this point besides the harness' main thread waiting on a channel and the
    // test watchdog's thread waiting on a condition variable, whose lock the child never
    // takes; glibc's malloc is fork-safe) and leaves with `_exit`, so no destructor or exit
    // handler of the parent runs twice.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(in_the_fork).unwrap_or(15);
        // SAFETY: ends the forked child at once, without running the parent's atexit
        // handlers or flushing its stdio buffers.
        unsafe { libc::_exit(code) };
    }
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    let (_, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .unwrap()
        .unwrap();
    assert_eq!(
        status.exit_status(),
        Some(0),
        "forked child failed: {status:?}"
    );

    // The parent's own child is still the parent's, and still works.
    assert_eq!(parent_child.returncode(), None);
    parent_child.kill().unwrap();
    let code = run(&lp, LONG, async move { parent_child.wait().await }).unwrap();
    assert_eq!(code, -libc::SIGKILL);
    lp.close().unwrap();
}
