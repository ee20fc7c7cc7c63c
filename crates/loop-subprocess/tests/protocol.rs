//! The loop-level API: `subprocess_exec` / `subprocess_shell`, `SubprocessProtocol`,
//! `SubprocessTransport` (SUB-01, SUB-04 to SUB-11, SUB-13, SUB-14).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use common::*;
use loop_core::EventLoop;
use loop_subprocess::{ProcessInfo, Stdio, SubprocessExt, SubprocessOptions, SubprocessTransport};
use loop_transport::Extra;

/// Spawns `program args` with a [`Rec`] protocol; returns the transport, log and done future.
fn exec(
    lp: &EventLoop,
    program: &str,
    args: &[&str],
    options: SubprocessOptions,
) -> (SubprocessTransport, Log, loop_core::LoopFuture<()>) {
    let (log, done, make) = Rec::new(lp);
    let lp2 = lp.clone();
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let t = run(lp, LONG, async move {
        lp2.subprocess_exec(make, program, options.args(args))
            .await
            .map(|(t, _)| t)
    })
    .unwrap();
    (t, log, done)
}

fn shell(
    lp: &EventLoop,
    cmd: &str,
    options: SubprocessOptions,
) -> (SubprocessTransport, Log, loop_core::LoopFuture<()>) {
    let (log, done, make) = Rec::new(lp);
    let lp2 = lp.clone();
    let cmd = cmd.to_string();
    let t = run(lp, LONG, async move {
        lp2.subprocess_shell(make, cmd, options)
            .await
            .map(|(t, _)| t)
    })
    .unwrap();
    (t, log, done)
}

/// A child without pipes that exits with 0 while the loop does not run: when this returns,
/// it has exited and the loop cannot have noticed.
fn exit_behind_the_loops_back(lp: &EventLoop) -> (SubprocessTransport, loop_core::LoopFuture<()>) {
    let (r, w) = rustix::pipe::pipe().unwrap();
    let o = SubprocessOptions::new()
        .stdin(Stdio::Fd(r))
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    let (t, _log, done) = shell(lp, "read x", o);
    rustix::io::write(&w, b"go\n").unwrap();
    wait_exited_nowait(t.get_pid());
    assert_eq!(t.get_returncode(), None);
    (t, done)
}

fn finish(lp: &EventLoop, done: loop_core::LoopFuture<()>) {
    run(lp, LONG, done).unwrap();
}

#[test]
fn sub_01_defaults_are_three_pipes_and_connection_made_ran_on_return() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (t, log, done) = exec(&lp, "cat", &[], SubprocessOptions::new());
    // connection_made already ran when subprocess_exec returned.
    assert_eq!(log.borrow().first(), Some(&Ev::Made));
    for fd in 0..3 {
        assert!(t.get_pipe_transport(fd).is_some(), "fd {fd} is not piped");
    }
    assert!(t.get_pipe_transport(3).is_none());
    assert!(t.get_pipe_transport(-1).is_none());
    t.get_pipe_transport(0).unwrap().close();
    finish(&lp, done);
    check_order(&log.borrow(), &[0, 1, 2]);
    lp.close().unwrap();
}

#[test]
fn sub_04_event_order_of_a_normal_run() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (t, log, done) = shell(
        &lp,
        "echo out; echo err >&2; echo more",
        SubprocessOptions::new(),
    );
    finish(&lp, done);
    check_order(&log.borrow(), &[0, 1, 2]);
    assert_eq!(data_of(&log, 1), b"out\nmore\n");
    assert_eq!(data_of(&log, 2), b"err\n");
    assert_eq!(t.get_returncode(), Some(0));
    lp.close().unwrap();
}

#[test]
fn sub_04_child_killed_mid_write_keeps_the_order() {
    let _w = loop_testkit::exclusive();
    let lp = EventLoop::new().unwrap();
    let (log, done, make) = Rec::new(&lp);
    let lp2 = lp.clone();
    let t = run(&lp, LONG, async move {
        let make = move || {
            let mut r = make();
            r.kill_on_data = true;
            r
        };
        lp2.subprocess_shell(
            make,
            "while :; do echo 0123456789abcdef0123456789abcdef; done",
            SubprocessOptions::new(),
        )
        .await
        .map(|(t, _)| t)
    })
    .unwrap();
    finish(&lp, done);
    let log = log.borrow();
    check_order(&log, &[0, 1, 2]);
    assert!(log.iter().any(|e| matches!(e, Ev::Data(1, _))), "{log:?}");
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    assert!(is_reaped(t.get_pid()));
    lp.close().unwrap();
}

#[test]
fn sub_04_events_before_connection_made_wait_for_it() {
    let _w = loop_testkit::watchdog();
    // A child that writes and exits at once: its output, EOF and exit may all be seen while
    // the pipes are still being connected; they still come after connection_made.
    let lp = EventLoop::new().unwrap();
    for _ in 0..20 {
        let (_t, log, done) = shell(&lp, "echo quick", SubprocessOptions::new());
        finish(&lp, done);
        check_order(&log.borrow(), &[0, 1, 2]);
        assert_eq!(data_of(&log, 1), b"quick\n");
    }
    lp.close().unwrap();
}

#[test]
fn sub_05_pid_and_returncodes() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (t, _log, done) = shell(&lp, "exit 7", SubprocessOptions::new());
    assert!(t.get_pid() > 1);
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(7));

    for (sig, how) in [
        (libc::SIGKILL, "kill"),
        (libc::SIGTERM, "terminate"),
        (libc::SIGHUP, "send_signal"),
    ] {
        let (t, _log, done) = exec(&lp, "sleep", &["60"], SubprocessOptions::new());
        assert_eq!(t.get_returncode(), None, "{how}: running");
        match how {
            "kill" => t.kill().unwrap(),
            "terminate" => t.terminate().unwrap(),
            _ => t.send_signal(sig).unwrap(),
        }
        finish(&lp, done);
        assert_eq!(t.get_returncode(), Some(-sig), "{how}");
    }
    lp.close().unwrap();
}

#[test]
fn sub_06_pipe_transports_and_stderr_to_stdout() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let o = SubprocessOptions::new()
        .stdin(Stdio::Null)
        .stderr(Stdio::Stdout);
    let (t, log, done) = shell(&lp, "echo out; echo err >&2", o);
    assert!(t.get_pipe_transport(0).is_none());
    assert!(t.get_pipe_transport(1).is_some());
    assert!(t.get_pipe_transport(2).is_none());
    finish(&lp, done);
    check_order(&log.borrow(), &[1]);
    assert_eq!(data_of(&log, 1), b"out\nerr\n");
    assert!(data_of(&log, 2).is_empty());
    // After the end the pipe transports are still there, closed.
    assert!(t.get_pipe_transport(1).unwrap().is_closing());

    let o = SubprocessOptions::new().stdin(Stdio::Null);
    let (_t, log, done) = shell(&lp, "echo out; echo err >&2", o);
    finish(&lp, done);
    check_order(&log.borrow(), &[1, 2]);
    assert_eq!(data_of(&log, 1), b"out\n");
    assert_eq!(data_of(&log, 2), b"err\n");
    lp.close().unwrap();
}

#[test]
fn sub_07_interactive_stdin_and_eof() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (t, log, done) = exec(&lp, "cat", &[], SubprocessOptions::new());
    let stdin = t.get_pipe_transport(0).unwrap();
    stdin.write(b"line 1\n").unwrap();
    assert!(spin_until(&lp, || data_of(&log, 1) == b"line 1\n"));
    stdin.write(b"line 2\n").unwrap();
    assert!(spin_until(&lp, || data_of(&log, 1) == b"line 1\nline 2\n"));
    assert_eq!(t.get_returncode(), None, "cat waits for more");
    stdin.close(); // EOF: cat exits
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(0));
    check_order(&log.borrow(), &[0, 1, 2]);
    lp.close().unwrap();
}

#[test]
fn sub_08_closing_stdout_early_breaks_the_childs_writes() {
    // Alone: a child spawned meanwhile by another test holds copies of every fd of this
    // process from its fork to its exec, the stdout pipe's read end included; the child's one
    // write would then succeed instead of failing with EPIPE.
    let _w = loop_testkit::exclusive();
    let lp = EventLoop::new().unwrap();
    let (t, log, done) = shell(
        &lp,
        "trap '' PIPE; read x; echo hi || echo write-failed >&2",
        SubprocessOptions::new(),
    );
    t.get_pipe_transport(1).unwrap().close();
    assert!(spin_until(&lp, || log
        .borrow()
        .contains(&Ev::PipeLost(1, None))));
    t.get_pipe_transport(0).unwrap().write(b"go\n").unwrap();
    finish(&lp, done);
    assert!(data_of(&log, 1).is_empty());
    let err = String::from_utf8(data_of(&log, 2)).unwrap();
    assert!(err.contains("write-failed"), "stderr: {err:?}");
    check_order(&log.borrow(), &[0, 1, 2]);
    lp.close().unwrap();
}

#[test]
fn sub_09_signals_after_exit_and_after_connection_lost() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // Exited, the loop has not noticed yet: signals are no-ops, the code stays 0.
    let (t, done) = exit_behind_the_loops_back(&lp);
    t.send_signal(libc::SIGTERM).unwrap();
    t.kill().unwrap();
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(0));
    // After connection_lost: process lookup error.
    for r in [t.send_signal(libc::SIGTERM), t.terminate(), t.kill()] {
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }
    // Collected, pipes still open (a grandchild holds stdout): still silent.
    let (t, log, done) = shell(&lp, "sleep 60 & echo $!; exit 3", SubprocessOptions::new());
    assert!(spin_until(&lp, || t.get_returncode().is_some()
        && data_of(&log, 1).ends_with(b"\n")));
    assert_eq!(t.get_returncode(), Some(3));
    t.send_signal(libc::SIGTERM).unwrap();
    assert!(!log.borrow().contains(&Ev::Lost));
    // End the grandchild so that stdout closes.
    let gc: i32 = String::from_utf8(data_of(&log, 1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(gc).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    finish(&lp, done);
    assert!(t.kill().is_err());
    // Not a signal number.
    let (t, _log, done) = exec(&lp, "sleep", &["60"], SubprocessOptions::new());
    assert!(matches!(
        t.send_signal(-3),
        Err(loop_core::Error::InvalidArgument(_))
    ));
    t.send_signal(0).unwrap();
    t.close();
    finish(&lp, done);
    lp.close().unwrap();
}

#[test]
fn sub_10_close_kills_a_running_child_but_not_a_finished_one() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    let logs = log_capture();

    let (t, log, done) = exec(&lp, "sleep", &["60"], SubprocessOptions::new());
    assert!(!t.is_closing());
    t.close();
    assert!(t.is_closing());
    t.close(); // idempotent
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    assert!(logs.text().contains("Close running child process: kill"));
    check_order(&log.borrow(), &[0, 1, 2]);

    // Finished (not yet noticed by the loop): not killed.
    let before = logs.text().matches("Close running child process").count();
    let (t, done) = exit_behind_the_loops_back(&lp);
    t.close();
    assert!(t.is_closing());
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(0));
    assert_eq!(
        logs.text().matches("Close running child process").count(),
        before,
        "a finished child was killed"
    );

    // A transport that finished on its own is not "closing".
    let (t, _log, done) = exec(&lp, "true", &[], SubprocessOptions::new());
    finish(&lp, done);
    assert!(!t.is_closing());
    lp.close().unwrap();
}

#[test]
fn sub_11_extra_info_subprocess() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (t, _log, done) = exec(&lp, "echo", &["a", "b"], SubprocessOptions::new());
    let v = t.get_extra_info(Extra::Custom("subprocess")).unwrap();
    let info = v.downcast_ref::<ProcessInfo>().unwrap();
    assert_eq!(info.pid, t.get_pid());
    assert_eq!(info.program, "echo");
    assert_eq!(info.args, ["a", "b"]);
    assert!(t.get_extra_info(Extra::Peername).is_none());
    assert!(t.get_extra_info(Extra::Custom("other")).is_none());
    finish(&lp, done);
    lp.close().unwrap();
}

#[test]
fn sub_13_cancelled_setup_kills_and_collects_the_child() {
    let _w = loop_testkit::exclusive();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (log, _done, make) = Rec::new(&lp);
    let lp2 = lp.clone();
    // stdout goes to our pipe (the child prints its pid); stdin and stderr are pipes, so the
    // setup waits for their transports.
    let o = SubprocessOptions::new().stdout(Stdio::Fd(w));
    let task = lp
        .create_task(async move {
            lp2.subprocess_shell(make, "echo $$; exec sleep 60", o)
                .await
        })
        .unwrap();
    spin(&lp, 1); // the task spawned the child and waits for the pipes
    let mut line = String::new();
    let mut reader = BufReader::new(std::fs::File::from(r));
    reader.read_line(&mut line).unwrap();
    let pid: u32 = line.trim().parse().unwrap();
    assert!(task.cancel());
    let res = lp.run_until_complete(task);
    assert!(res.unwrap_err().is_cancelled());
    // Killed: every write end of our pipe is gone, EOF.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    // And collected.
    assert!(spin_until(&lp, || is_reaped(pid)));
    assert!(
        log.borrow().is_empty(),
        "the protocol was called: {:?}",
        log.borrow()
    );
    lp.close().unwrap();
}

/// The session id of `/proc/<pid>` (field 6 of its `stat`); 0 when the
/// session leader is outside this pid namespace.
/// A pipe whose ends are close-on-exec (set after creation on Apple, which has no `pipe2`).
fn cloexec_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    #[cfg(not(target_vendor = "apple"))]
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    #[cfg(target_vendor = "apple")]
    let (r, w) = {
        let (r, w) = rustix::pipe::pipe().unwrap();
        for fd in [&r, &w] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC).unwrap();
        }
        (r, w)
    };
    (r, w)
}

fn session_of(pid: &str) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(3).unwrap().parse().unwrap()
}

#[test]
fn sub_14_spawn_options_pass_through() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // env on top of the inherited one, through the shell.
    let o = SubprocessOptions::new().env_var("EVLOOP_TEST_VAR", "value 1");
    let (_t, log, done) = shell(&lp, "echo \"$EVLOOP_TEST_VAR\"", o);
    finish(&lp, done);
    assert_eq!(data_of(&log, 1), b"value 1\n");

    // env replaced entirely (absolute path: there is no PATH any more).
    let o = SubprocessOptions::new().env([("ONLY", "this")]);
    let (_t, log, done) = exec(&lp, "/usr/bin/env", &[], o);
    finish(&lp, done);
    assert_eq!(data_of(&log, 1), b"ONLY=this\n");

    // env_remove
    let o = SubprocessOptions::new()
        .env_var("EVLOOP_GONE", "x")
        .env_remove("EVLOOP_GONE");
    let (_t, log, done) = shell(&lp, "echo \"[${EVLOOP_GONE-unset}]\"", o);
    finish(&lp, done);
    assert_eq!(data_of(&log, 1), b"[unset]\n");

    // cwd, and a path-like program and argument.
    let o = SubprocessOptions::new().cwd("/");
    let (_t, log, done) = exec(&lp, "pwd", &[], o);
    finish(&lp, done);
    assert_eq!(data_of(&log, 1), b"/\n");
    let (log2, done2, make) = Rec::new(&lp);
    let lp2 = lp.clone();
    run(&lp, LONG, async move {
        lp2.subprocess_exec(
            make,
            PathBuf::from("/bin/sh"),
            SubprocessOptions::new().args([PathBuf::from("-c"), PathBuf::from("echo path")]),
        )
        .await
        .map(|(t, _)| t)
    })
    .unwrap();
    finish(&lp, done2);
    assert_eq!(data_of(&log2, 1), b"path\n");

    // start_new_session: the child leads its own session; without it, ours.
    // Session ids are read from /proc: in a container whose session leader
    // lives outside the pid namespace, our own session id is 0, which
    // `getsid` cannot represent.
    let our_sid = session_of("self");
    for new_session in [true, false] {
        let o = SubprocessOptions::new().start_new_session(new_session);
        let (t, _log, done) = exec(&lp, "cat", &[], o);
        let sid = session_of(&t.get_pid().to_string());
        if new_session {
            assert_eq!(sid, t.get_pid() as i32);
        } else {
            assert_eq!(sid, our_sid);
        }
        t.get_pipe_transport(0).unwrap().close();
        finish(&lp, done);
    }

    // pass_fds: the child writes to a descriptor that is close-on-exec in the parent.
    let (r, w) = cloexec_pipe();
    let n = w.as_raw_fd();
    let o = SubprocessOptions::new().pass_fds([n]);
    let (t, _log, done) = shell(&lp, &format!("echo passed >&{n}"), o);
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(0));
    drop(w);
    let mut got = String::new();
    std::fs::File::from(r).read_to_string(&mut got).unwrap();
    assert_eq!(got, "passed\n");
    // Without pass_fds the descriptor is not there.
    let (r, w) = cloexec_pipe();
    let n = w.as_raw_fd();
    let (t, _log, done) = shell(&lp, &format!("echo passed >&{n}"), SubprocessOptions::new());
    finish(&lp, done);
    assert_ne!(t.get_returncode(), Some(0));
    drop(w);
    let mut got = String::new();
    std::fs::File::from(r).read_to_string(&mut got).unwrap();
    assert_eq!(got, "");
    lp.close().unwrap();
}

#[test]
fn sub_04_stdin_flow_control_reaches_the_protocol() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // `sleep` never reads its stdin: a large write stays buffered above the high-water mark.
    let (t, log, done) = exec(&lp, "sleep", &["60"], SubprocessOptions::new());
    let stdin = t.get_pipe_transport(0).unwrap();
    stdin.write(&vec![b'x'; 1 << 20]).unwrap();
    assert!(log.borrow().contains(&Ev::Pause));
    t.kill().unwrap();
    finish(&lp, done);
    check_order(&log.borrow(), &[0, 1, 2]);
    lp.close().unwrap();
}

#[test]
fn protocol_panic_is_reported_and_the_transport_goes_on() {
    let _w = loop_testkit::watchdog();
    struct Panicky(loop_core::LoopFuture<()>);
    impl loop_subprocess::SubprocessProtocol for Panicky {
        fn pipe_data_received(&mut self, _fd: i32, _data: &[u8]) {
            panic!("boom in pipe_data_received");
        }
        fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
            let _ = self.0.set_result(());
        }
    }
    let lp = EventLoop::new().unwrap();
    let reports = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(std::rc::Rc::new(move |_lp, ctx| {
        r.borrow_mut().push(ctx.message.clone())
    })));
    let done = lp.create_future();
    let d = done.clone();
    let lp2 = lp.clone();
    let t = run(&lp, LONG, async move {
        lp2.subprocess_exec(
            move || Panicky(d),
            "echo",
            SubprocessOptions::new().arg("x"),
        )
        .await
        .map(|(t, _)| t)
    })
    .unwrap();
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(0));
    assert!(reports
        .borrow()
        .iter()
        .any(|m| m.contains("pipe_data_received")));
    lp.close().unwrap();
}

/// SUB-04: events delivered through the transport's queue (`pipe_connection_lost`,
/// `process_exited`) report a panic under the name of the method that raised it, and the
/// later events still arrive.
#[test]
fn sub_04_a_panic_in_a_queued_protocol_method_is_reported_with_its_name() {
    let _w = loop_testkit::watchdog();
    struct Panicky(loop_core::LoopFuture<()>);
    impl loop_subprocess::SubprocessProtocol for Panicky {
        fn pipe_connection_lost(&mut self, _fd: i32, _exc: Option<std::io::Error>) {
            panic!("boom in pipe_connection_lost");
        }
        fn process_exited(&mut self) {
            panic!("boom in process_exited");
        }
        fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
            let _ = self.0.set_result(());
        }
    }
    let lp = EventLoop::new().unwrap();
    let reports = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(std::rc::Rc::new(move |_lp, ctx| {
        r.borrow_mut().push(ctx.message.clone())
    })));
    let done = lp.create_future();
    let d = done.clone();
    let lp2 = lp.clone();
    let t = run(&lp, LONG, async move {
        lp2.subprocess_exec(move || Panicky(d), "true", SubprocessOptions::new())
            .await
            .map(|(t, _)| t)
    })
    .unwrap();
    finish(&lp, done);
    assert_eq!(t.get_returncode(), Some(0));
    let reports = reports.borrow();
    assert!(
        reports
            .iter()
            .any(|m| m == "protocol.process_exited() failed"),
        "{reports:?}"
    );
    assert_eq!(
        reports
            .iter()
            .filter(|m| *m == "protocol.pipe_connection_lost() failed")
            .count(),
        3,
        "{reports:?}"
    );
    assert_eq!(reports.len(), 4, "{reports:?}");
    drop(reports);
    lp.close().unwrap();
}

#[test]
fn with_protocol_reaches_the_concrete_protocol() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (t, log, done) = exec(&lp, "cat", &[], SubprocessOptions::new());
    assert_eq!(t.with_protocol(|r: &mut Rec| r.log.borrow().len()), Some(1));
    assert_eq!(t.with_protocol(|_: &mut String| ()), None);
    t.get_pipe_transport(0).unwrap().close();
    finish(&lp, done);
    // Dropped after connection_lost.
    assert_eq!(t.with_protocol(|_: &mut Rec| ()), None);
    check_order(&log.borrow(), &[0, 1, 2]);
    assert!(format!("{t:?}").contains("returncode=0"));
    lp.close().unwrap();
}

#[test]
fn net_50_every_subprocess_protocol_method_has_a_noop_default() {
    let _w = loop_testkit::watchdog();
    struct Bare;
    impl loop_subprocess::SubprocessProtocol for Bare {}
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let t = run(&lp, LONG, async move {
        lp2.subprocess_exec(|| Bare, "true", SubprocessOptions::new())
            .await
            .map(|(t, _)| t)
    })
    .unwrap();
    let mut b = Bare;
    use loop_subprocess::SubprocessProtocol as _;
    b.connection_made(&t);
    b.pipe_data_received(1, b"p");
    b.pipe_connection_lost(1, None);
    b.process_exited();
    b.pause_writing();
    b.resume_writing();
    b.connection_lost(None);
    t.close();
    lp.close().unwrap();
}
