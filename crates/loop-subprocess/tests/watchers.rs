//! Exit watching: pidfd or thread per child, per-pid reaping, statuses collected elsewhere
//! (SUB-22, SUB-24, SUB-25, SUB-26). The tests of this binary count threads and children, so
//! they take turns.

mod common;

use std::process::Command;
use std::rc::Rc;

use common::*;
use loop_core::EventLoop;
use loop_subprocess::{ExitWatcher, Process, Stdio, SubprocessExt, SubprocessOptions};

const WAITER: &str = "evloop-waitpid";

fn spawn(lp: &EventLoop, cmd: &str, o: SubprocessOptions) -> Process {
    let lp2 = lp.clone();
    let cmd = cmd.to_string();
    run(lp, LONG, async move {
        lp2.create_subprocess_shell(cmd, o).await
    })
    .unwrap()
}

fn communicate(lp: &EventLoop, mut p: Process, input: &[u8]) -> (Vec<u8>, i32) {
    let input = input.to_vec();
    run(lp, LONG, async move {
        let (out, _) = p.communicate(Some(&input)).await?;
        Ok::<_, loop_core::Error>((out.unwrap(), p.returncode().unwrap()))
    })
    .unwrap()
}

#[test]
fn sub_22_pidfd_watcher_uses_no_thread() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let o = SubprocessOptions::new()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe);
    let p = spawn(&lp, "cat; exit 5", o);
    let shown = format!("{:?}", p.transport());
    // The exit fd: a pidfd on Linux, a kqueue with the process filter on macOS and the BSDs.
    let kind = if cfg!(any(target_os = "linux", target_os = "android")) {
        "pidfd"
    } else {
        "kqueue"
    };
    assert!(shown.contains(&format!("watched-by={kind}:")), "{shown}");
    assert_eq!(threads_named(WAITER), 0);
    assert_eq!(
        communicate(&lp, p, b"via pidfd"),
        (b"via pidfd".to_vec(), 5)
    );
    lp.close().unwrap();
}

#[test]
fn sub_22_thread_watcher_one_thread_per_child_gone_after_exit() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let o = || {
        SubprocessOptions::new()
            .stdin(Stdio::Pipe)
            .stdout(Stdio::Pipe)
            .exit_watcher(ExitWatcher::Thread)
    };
    let a = spawn(&lp, "cat; exit 6", o());
    let b = spawn(&lp, "cat; exit 7", o());
    assert!(format!("{:?}", a.transport()).contains("watched-by=thread"));
    // A thread names itself once it runs.
    assert!(eventually(|| threads_named(WAITER) == 2));
    assert_eq!(communicate(&lp, a, b"a"), (b"a".to_vec(), 6));
    assert_eq!(communicate(&lp, b, b"b"), (b"b".to_vec(), 7));
    // The threads are joined when the exit is reported.
    assert_eq!(threads_named(WAITER), 0);
    lp.close().unwrap();
}

#[test]
fn sub_22_thread_watcher_collects_the_child_if_the_loop_is_closed() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let o = SubprocessOptions::new().exit_watcher(ExitWatcher::Thread);
    let p = spawn(&lp, "exec sleep 60", o);
    let pid = p.pid();
    // Closing the loop kills the child; its thread finds the loop closed and collects it.
    lp.close().unwrap();
    assert!(eventually(|| is_reaped(pid)));
    assert!(eventually(|| threads_named(WAITER) == 0));
    drop(p);
}

#[test]
fn sub_22_closing_the_loop_kills_and_collects_pidfd_children() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let p = spawn(&lp, "exec sleep 60", SubprocessOptions::new());
    let pid = p.pid();
    lp.close().unwrap();
    assert!(
        is_reaped(pid),
        "closing the loop left a zombie or a running child"
    );
    drop(p);
}

#[test]
fn sub_24_status_collected_elsewhere_reports_255_and_warns() {
    let _g = serial();
    for watcher in [ExitWatcher::Auto, ExitWatcher::Thread] {
        let logs = log_capture();
        let lp = EventLoop::new().unwrap();
        let p = spawn(
            &lp,
            "exec sleep 60",
            SubprocessOptions::new().exit_watcher(watcher),
        );
        // Someone else kills and collects it behind the loop's back.
        let pid = rustix::process::Pid::from_raw(p.pid() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let st = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
            .unwrap()
            .unwrap();
        assert!(st.1.signaled());
        let code = run(&lp, LONG, async move { p.wait().await }).unwrap();
        assert_eq!(code, 255, "{watcher:?}");
        assert!(
            logs.text().contains("exit status already read"),
            "{watcher:?}: {}",
            logs.text()
        );
        lp.close().unwrap();
    }
}

#[test]
fn sub_25_child_gone_before_the_loop_looks_is_reported() {
    let _g = serial();
    for watcher in [ExitWatcher::Auto, ExitWatcher::Thread] {
        let lp = EventLoop::new().unwrap();
        let p = spawn(
            &lp,
            "exit 9",
            SubprocessOptions::new().exit_watcher(watcher),
        );
        // Exited long before the loop runs again.
        wait_exited_nowait(p.pid());
        let p = Rc::new(p);
        let p2 = p.clone();
        assert_eq!(run(&lp, LONG, async move { p2.wait().await }).unwrap(), 9);
        assert!(is_reaped(p.pid()));
        lp.close().unwrap();
    }
}

#[test]
fn sub_26_other_childrens_statuses_are_not_stolen() {
    let _g = serial();
    // A child of this process that evloop does not know about, already exited.
    let mut foreign = Command::new("sh").args(["-c", "exit 42"]).spawn().unwrap();
    wait_exited_nowait(foreign.id());
    let lp = EventLoop::new().unwrap();
    for watcher in [ExitWatcher::Auto, ExitWatcher::Thread] {
        let p = spawn(
            &lp,
            "exit 1",
            SubprocessOptions::new().exit_watcher(watcher),
        );
        let code = run(&lp, LONG, async move { p.wait().await }).unwrap();
        assert_eq!(code, 1);
    }
    lp.close().unwrap();
    // Its status is still there for its owner.
    assert!(children().contains(&foreign.id()));
    assert_eq!(foreign.wait().unwrap().code(), Some(42));
}
