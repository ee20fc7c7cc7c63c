//! SIG-15: a forked child inherits the process-wide signal handler and the self-pipe, but a
//! signal the child receives must not run the parent's handlers.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

mod common;

use std::cell::Cell;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::rc::Rc;

use common::{one_iteration, send, serial, spin_until};
use loop_core::EventLoop;
use loop_signals::SignalsExt;

const SIG: i32 = libc::SIGWINCH;

#[test]
fn sig_15_forked_child_does_not_run_the_parents_handlers() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    lp.add_signal_handler(SIG, move |_| c.set(c.get() + 1))
        .unwrap();

    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "exit 7"]);
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (`getpid`, `kill`); it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            // The child signals itself while it still has the parent's handler and pipe.
            let me = rustix::process::getpid();
            rustix::process::kill_process(me, rustix::process::Signal::WINCH)
                .map_err(io::Error::from)
        });
    }
    // `spawn` returns once the child has exec'ed (or died): its signal was handled by then.
    let status = cmd.spawn().unwrap().wait().unwrap();
    assert_eq!(
        status.code(),
        Some(7),
        "the child did not get to exec: {status:?}"
    );

    // Whatever the child might have written to the shared pipe is there now.
    for _ in 0..5 {
        one_iteration(&lp);
    }
    assert_eq!(
        count.get(),
        0,
        "the child's signal ran the parent's handler"
    );

    // Control: the parent's own signal does run it.
    send(SIG);
    assert!(spin_until(&lp, || count.get() == 1));
    assert!(lp.remove_signal_handler(SIG).unwrap());
    lp.close().unwrap();
}
