//! Reliability of subprocesses under faults, through the whole stack (`SubprocessExt`,
//! `Process`, the subprocess transport, its pipe transports, the exit watcher): a child killed
//! from outside while `communicate()` runs, a child that closes its stdout long before it
//! exits, and a panic injected into every `SubprocessProtocol` method while the loop goes on
//! serving another connection and other children.
//!
//! Every test counts the process's fds and children before and after, so the tests of this
//! binary run one at a time.

mod faults_common;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use evloop::subprocess::{
    ExitWatcher, Stdio, SubprocessExt, SubprocessOptions, SubprocessProtocol, SubprocessTransport,
};
use evloop::{Error, EventLoop, LoopFuture};
use faults_common::*;

/// The name prefix of the per-child waiter threads of [`ExitWatcher::Thread`].
const WAITER: &str = "evloop-waitpid";

/// Kills `pid` with SIGKILL from outside evloop, as the OOM killer or an operator would.
fn kill_from_outside(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

/// No child left behind: `pid` was collected, no child of ours is listed, no waiter thread.
fn assert_no_zombie(lp: &EventLoop, pid: u32) {
    assert!(is_reaped(pid), "child {pid} was not collected (zombie)");
    until(lp, 30, "the waiter threads ended", || {
        threads_named(WAITER) == 0
    });
    let left = children();
    assert!(!left.contains(&pid), "child {pid} still listed: {left:?}");
}

#[test]
fn reliability_child_killed_mid_communicate_returns_minus_9_no_zombie_no_fd_leaked() {
    let rig = Rig::new();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());

    for watcher in [ExitWatcher::Auto, ExitWatcher::Thread] {
        let l = lp.clone();
        let mut p = run(&lp, 30, async move {
            let o = SubprocessOptions::new()
                .stdin(Stdio::Pipe)
                .stdout(Stdio::Pipe)
                .stderr(Stdio::Pipe)
                .exit_watcher(watcher);
            // The child never ends by itself and never reads its stdin.
            l.create_subprocess_shell("echo started; exec sleep 300", o)
                .await
        })
        .unwrap();
        let pid = p.pid();
        let stdin = p.transport().get_pipe_transport(0).unwrap();
        let task = lp
            .create_task(async move {
                // More than the pipe holds: communicate() is stuck feeding stdin (and reading
                // stdout and stderr) until the child goes away.
                let input = vec![b'x'; 1 << 20];
                let r = p.communicate(Some(&input)).await;
                (r, p.returncode())
            })
            .unwrap();
        until(&lp, 30, "communicate() feeding stdin", || {
            stdin.get_write_buffer_size() > 0
        });
        assert!(!task.done(), "{watcher:?}: communicate() is in progress");
        kill_from_outside(pid);
        let (r, code) = run(&lp, 30, task).unwrap();
        let (out, err) = r.unwrap_or_else(|e| panic!("{watcher:?}: communicate(): {e}"));
        // The child may die before or after its echo.
        let out = out.unwrap();
        assert!(
            out.is_empty() || out == b"started\n",
            "{watcher:?}: {out:?}"
        );
        assert_eq!(err.unwrap(), b"", "{watcher:?}");
        assert_eq!(code, Some(-libc::SIGKILL), "{watcher:?}: returncode");
        drop(stdin);
        spin(&lp, 5);
        assert_no_zombie(&lp, pid);
    }
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    rig.finish();
}

/// A protocol event, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Made,
    Data(i32, Vec<u8>),
    PipeLost(i32, Option<io::ErrorKind>),
    Exited,
    Pause,
    Resume,
    Lost,
}

/// Records every event; panics in `fault` (once) if set; completes `done` in
/// `connection_lost` (before any panic there).
struct Rec {
    log: Rc<RefCell<Vec<Ev>>>,
    done: LoopFuture<()>,
    fault: Option<&'static str>,
}

impl Rec {
    fn event(&mut self, ev: Ev, method: &'static str) {
        self.log.borrow_mut().push(ev);
        if self.fault == Some(method) {
            self.fault = None;
            inject(method, "subprocess ", method);
        }
    }
}

impl SubprocessProtocol for Rec {
    fn connection_made(&mut self, _t: &SubprocessTransport) {
        self.event(Ev::Made, "connection_made");
    }
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        self.event(Ev::Data(fd, data.to_vec()), "pipe_data_received");
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        self.event(
            Ev::PipeLost(fd, exc.map(|e| e.kind())),
            "pipe_connection_lost",
        );
    }
    fn process_exited(&mut self) {
        self.event(Ev::Exited, "process_exited");
    }
    fn pause_writing(&mut self) {
        self.event(Ev::Pause, "pause_writing");
    }
    fn resume_writing(&mut self) {
        self.event(Ev::Resume, "resume_writing");
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        let _ = self.done.set_result(());
        self.event(Ev::Lost, "connection_lost");
    }
}

type Spawned = (SubprocessTransport, Rc<RefCell<Vec<Ev>>>, LoopFuture<()>);

/// `subprocess_shell(cmd)` (three pipes) with a [`Rec`] protocol.
fn shell(lp: &EventLoop, cmd: &'static str, fault: Option<&'static str>) -> Spawned {
    let log = Rc::new(RefCell::new(Vec::new()));
    let done = lp.create_future::<()>();
    let (lg, d, l) = (log.clone(), done.clone(), lp.clone());
    let t = run(lp, 30, async move {
        l.subprocess_shell(
            move || Rec {
                log: lg,
                done: d,
                fault,
            },
            cmd,
            SubprocessOptions::new(),
        )
        .await
        .map(|(t, _)| t)
    })
    .unwrap();
    (t, log, done)
}

fn position(log: &[Ev], ev: &Ev) -> usize {
    log.iter()
        .position(|e| e == ev)
        .unwrap_or_else(|| panic!("{ev:?} missing: {log:?}"))
}

fn count(log: &[Ev], ev: &Ev) -> usize {
    log.iter().filter(|e| *e == ev).count()
}

/// Asserts that every lifecycle event (made, each pipe's loss, exit, lost) is in `log` exactly
/// once; `what` prefixes the failure message.
#[track_caller]
fn assert_each_once(log: &[Ev], what: &str) {
    for ev in [
        Ev::Made,
        Ev::PipeLost(0, None),
        Ev::PipeLost(1, None),
        Ev::PipeLost(2, None),
        Ev::Exited,
        Ev::Lost,
    ] {
        assert_eq!(count(log, &ev), 1, "{what}: {ev:?} exactly once: {log:?}");
    }
}

#[test]
fn reliability_child_closes_stdout_early_sub_04_eof_before_exit_connection_lost_last() {
    let rig = Rig::new();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());

    // Protocol level: stdout closes while the child waits for a line on stdin.
    let (t, log, done) = shell(&lp, "echo before; exec 1>&-; read x; exit 3", None);
    let pid = t.get_pid();
    until(&lp, 30, "pipe_connection_lost(1)", || {
        log.borrow().contains(&Ev::PipeLost(1, None))
    });
    spin(&lp, 5);
    {
        let log = log.borrow();
        assert_eq!(t.get_returncode(), None, "the child still runs: {log:?}");
        assert!(!log.contains(&Ev::Exited), "{log:?}");
        assert!(!log.contains(&Ev::Lost), "{log:?}");
        assert_eq!(
            log.iter()
                .filter_map(|e| match e {
                    Ev::Data(1, d) => Some(d.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .concat(),
            b"before\n"
        );
    }
    let stdin = t.get_pipe_transport(0).unwrap();
    stdin.write(b"go\n").unwrap();
    stdin.close();
    drop(stdin);
    run(&lp, 30, done).unwrap();
    spin(&lp, 5);
    {
        let log = log.borrow();
        assert_eq!(log.first(), Some(&Ev::Made), "{log:?}");
        assert_eq!(log.last(), Some(&Ev::Lost), "connection_lost last: {log:?}");
        assert!(
            position(&log, &Ev::PipeLost(1, None)) < position(&log, &Ev::Exited),
            "stdout's EOF came before the exit: {log:?}"
        );
        assert_each_once(&log, "");
    }
    assert_eq!(t.get_returncode(), Some(3));
    drop(t);
    assert_no_zombie(&lp, pid);

    // Stream level: the stdout reader reads to EOF while the child still runs; wait() gives
    // the exit code afterwards.
    let l = lp.clone();
    let (out, running, code, pid) = run(&lp, 30, async move {
        let o = SubprocessOptions::new()
            .stdin(Stdio::Pipe)
            .stdout(Stdio::Pipe);
        let mut p = l
            .create_subprocess_shell("echo before; exec 1>&-; read x; exit 3", o)
            .await?;
        let out = p.stdout.as_mut().unwrap().read_all().await?;
        let running = p.returncode().is_none();
        let stdin = p.stdin.take().unwrap();
        stdin.write(b"go\n")?;
        stdin.close();
        let code = p.wait().await?;
        Ok::<_, Error>((out, running, code, p.pid()))
    })
    .unwrap();
    assert_eq!(out, b"before\n");
    assert!(running, "EOF on stdout while the child still ran");
    assert_eq!(code, 3);
    spin(&lp, 5);
    assert_no_zombie(&lp, pid);

    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    rig.finish();
}

#[test]
fn reliability_panic_in_each_subprocess_protocol_method_reported_once_loop_goes_on() {
    let rig = Rig::new();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());
    let mut echo = EchoCheck::start(&lp);
    let with_echo = fd_count();

    const METHODS: [&str; 7] = [
        "connection_made",
        "pipe_data_received",
        "pipe_connection_lost",
        "process_exited",
        "pause_writing",
        "resume_writing",
        "connection_lost",
    ];
    for method in METHODS {
        // The child prints a line, swallows its stdin (1 MiB: pause_writing, then
        // resume_writing as it drains), and exits with 5 at EOF.
        let (t, log, done) = shell(&lp, "echo out; cat >/dev/null; exit 5", Some(method));
        let pid = t.get_pid();
        let stdin = t.get_pipe_transport(0).unwrap();
        stdin.write(&vec![b'x'; 1 << 20]).unwrap();
        stdin.close();
        drop(stdin);
        run(&lp, 30, done).unwrap();
        spin(&lp, 5);

        let needle = format!("{INJECTED} in subprocess {method}");
        let mine = reports_with(&reports, &needle);
        assert_eq!(mine.len(), 1, "{method}: reported once: {mine:?}");
        assert!(
            mine[0].message.contains(&format!("protocol.{method}()")),
            "{method}: the report names the method: {:?}",
            mine[0]
        );
        // The panic did not stop the transport: every event still arrived, once.
        let log = log.borrow().clone();
        assert_eq!(log.first(), Some(&Ev::Made), "{method}: {log:?}");
        assert_eq!(log.last(), Some(&Ev::Lost), "{method}: {log:?}");
        assert_each_once(&log, method);
        assert!(
            log.contains(&Ev::Data(1, b"out\n".to_vec())),
            "{method}: {log:?}"
        );
        let pauses = count(&log, &Ev::Pause);
        assert!(pauses >= 1, "{method}: stdin flow control engaged: {log:?}");
        assert_eq!(
            pauses,
            count(&log, &Ev::Resume),
            "{method}: every pause resumed: {log:?}"
        );
        assert_eq!(t.get_returncode(), Some(5), "{method}");
        drop(t);
        spin(&lp, 5);
        assert_no_zombie(&lp, pid);
        assert_eq!(fd_count(), with_echo, "{method}: no fd left");
        // The loop goes on: the other connection is served.
        echo.check(&lp);
    }
    assert_eq!(
        reports_with(&reports, INJECTED).len(),
        METHODS.len(),
        "{:?}",
        reports.borrow()
    );
    assert_eq!(
        reports.borrow().len(),
        METHODS.len(),
        "nothing else reported: {:?}",
        reports.borrow()
    );

    // And another child still works.
    let l = lp.clone();
    let (out, code) = run(&lp, 30, async move {
        let o = SubprocessOptions::new().stdout(Stdio::Pipe);
        let mut p = l.create_subprocess_exec("echo", o.arg("ok")).await?;
        let (out, _) = p.communicate(None).await?;
        Ok::<_, Error>((out.unwrap(), p.returncode()))
    })
    .unwrap();
    assert_eq!((out.as_slice(), code), (&b"ok\n"[..], Some(0)));

    echo.stop(&lp);
    rig.finish();
}
