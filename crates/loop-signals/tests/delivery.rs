//! Delivery: SIG-01, SIG-08, SIG-09, SIG-10. This binary sends SIGUSR2 (and SIGWINCH, whose
//! default is to be ignored) to itself; its tests take turns.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{send, serial, spin_until, Watchdog};
use loop_core::{EventLoop, ExceptionContext};
use loop_signals::SignalsExt;

const SIG: i32 = libc::SIGUSR2;

#[test]
fn sig_01_handler_runs_on_the_loop_thread_while_blocked_in_poll() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let ran_on = Rc::new(Cell::new(None));
    let r = ran_on.clone();
    lp.add_signal_handler(SIG, move |lp| {
        r.set(Some(std::thread::current().id()));
        lp.stop();
    })
    .unwrap();
    // Nothing is scheduled: the loop blocks in epoll until the signal's byte wakes it.
    let sender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        send(SIG);
    });
    let dog = Watchdog::new(&lp);
    lp.run_forever().unwrap();
    assert!(!dog.fired(), "the signal did not wake the loop");
    sender.join().unwrap();
    assert_eq!(ran_on.get(), Some(loop_thread));
    assert!(lp.remove_signal_handler(SIG).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_01_handler_runs_as_a_loop_callback_not_in_the_signal_handler() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    lp.add_signal_handler(SIG, move |_| c.set(c.get() + 1))
        .unwrap();
    send(SIG);
    // The signal has been handled at the OS level, but the callback waits for the loop.
    assert_eq!(count.get(), 0);
    assert!(spin_until(&lp, || count.get() == 1));
    // FnMut: the same callback runs again at the next delivery.
    send(SIG);
    assert!(spin_until(&lp, || count.get() == 2));
    assert!(lp.remove_signal_handler(SIG).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_01_panicking_handler_is_reported_and_stays_installed() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| {
            r.borrow_mut().push(format!(
                "{} | {}",
                ctx.message,
                ctx.exception
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            ));
        },
    )));
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.add_signal_handler(SIG, move |_| {
        c.set(c.get() + 1);
        if c.get() == 1 {
            panic!("handler failed");
        }
    })
    .unwrap();
    send(SIG);
    assert!(spin_until(&lp, || calls.get() == 1));
    assert_eq!(reports.borrow().len(), 1);
    assert!(
        reports.borrow()[0].contains("handler failed"),
        "{:?}",
        reports.borrow()
    );
    assert!(
        reports.borrow()[0].starts_with("Exception in callback"),
        "{:?}",
        reports.borrow()
    );
    // The loop goes on, and so does the handler.
    send(SIG);
    assert!(spin_until(&lp, || calls.get() == 2));
    assert_eq!(reports.borrow().len(), 1);
    assert!(lp.remove_signal_handler(SIG).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_08_adding_again_replaces_the_callback() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let first = Rc::new(Cell::new(0));
    let second = Rc::new(Cell::new(0));
    let f = first.clone();
    lp.add_signal_handler(SIG, move |_| f.set(f.get() + 1))
        .unwrap();
    let s = second.clone();
    let base = lp.stats().fds_registered;
    lp.add_signal_handler(SIG, move |_| s.set(s.get() + 1))
        .unwrap();
    assert_eq!(lp.stats().fds_registered, base);
    send(SIG);
    assert!(spin_until(&lp, || second.get() == 1));
    assert_eq!(first.get(), 0, "the replaced callback ran");
    assert!(lp.remove_signal_handler(SIG).unwrap());
    assert!(!lp.remove_signal_handler(SIG).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_09_cancelled_handle_removes_the_handler_at_next_delivery() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let base = lp.stats().fds_registered;
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let h = lp.add_signal_handler(SIG, move |_| r.set(true)).unwrap();
    assert_eq!(lp.stats().fds_registered, base + 1);
    h.cancel();
    assert!(h.cancelled());
    // Still installed until the signal comes.
    assert_eq!(lp.stats().fds_registered, base + 1);
    send(SIG);
    // The delivery removed the handler (and with it the loop's self-pipe).
    assert!(spin_until(&lp, || lp.stats().fds_registered == base));
    assert!(!ran.get(), "a cancelled handler ran");
    assert!(!lp.remove_signal_handler(SIG).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_09_signal_without_handler_is_ignored() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let usr2 = Rc::new(Cell::new(0));
    let winch = Rc::new(Cell::new(0));
    let u = usr2.clone();
    lp.add_signal_handler(SIG, move |_| u.set(u.get() + 1))
        .unwrap();
    let w = winch.clone();
    lp.add_signal_handler(libc::SIGWINCH, move |_| w.set(w.get() + 1))
        .unwrap();
    // The byte for SIGUSR2 is in the pipe, but its handler is gone before the loop reads it.
    send(SIG);
    assert!(lp.remove_signal_handler(SIG).unwrap());
    send(libc::SIGWINCH);
    assert!(spin_until(&lp, || winch.get() == 1));
    assert_eq!(usr2.get(), 0, "a removed handler ran");
    assert!(lp.remove_signal_handler(libc::SIGWINCH).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_10_several_signals_in_one_drain_each_run_once() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    lp.add_signal_handler(SIG, move |_| o.borrow_mut().push("usr2"))
        .unwrap();
    let o = order.clone();
    lp.add_signal_handler(libc::SIGWINCH, move |_| o.borrow_mut().push("winch"))
        .unwrap();
    // Both bytes are in the pipe before the loop reads it; each signal runs its callback.
    send(SIG);
    send(libc::SIGWINCH);
    assert!(spin_until(&lp, || order.borrow().len() == 2));
    let mut got = order.borrow().clone();
    got.sort_unstable();
    assert_eq!(got, ["usr2", "winch"]);
    assert!(lp.remove_signal_handler(SIG).unwrap());
    assert!(lp.remove_signal_handler(libc::SIGWINCH).unwrap());
    lp.close().unwrap();
}

/// SIG-10: deliveries of one signal that wait in the self-pipe together are drained at once
/// and run the callback once (signals coalesce, as Unix signals do).
#[test]
fn sig_10_deliveries_waiting_in_one_drain_run_the_callback_once() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    lp.add_signal_handler(SIG, move |_| c.set(c.get() + 1))
        .unwrap();
    // Three bytes in the pipe before the loop reads it.
    for _ in 0..3 {
        send(SIG);
    }
    assert!(spin_until(&lp, || count.get() >= 1));
    for _ in 0..3 {
        common::one_iteration(&lp);
    }
    assert_eq!(count.get(), 1, "one drain ran the callback more than once");
    // A later delivery runs it again.
    send(SIG);
    assert!(spin_until(&lp, || count.get() == 2));
    assert!(lp.remove_signal_handler(SIG).unwrap());
    lp.close().unwrap();
}

/// SIG-09: a handle cancelled after its signal arrived but before the callback ran: the
/// callback does not run for that delivery either.
#[test]
fn sig_09_cancelled_between_delivery_and_run_does_not_run() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let usr2 = Rc::new(Cell::new(0));
    let u = usr2.clone();
    let h = lp
        .add_signal_handler(SIG, move |_| u.set(u.get() + 1))
        .unwrap();
    let winch = Rc::new(Cell::new(0));
    let w = winch.clone();
    // Both bytes are read in one drain, SIGWINCH first: its callback runs first and cancels
    // SIGUSR2's handler, whose callback is already scheduled.
    lp.add_signal_handler(libc::SIGWINCH, move |_| {
        w.set(w.get() + 1);
        h.cancel();
    })
    .unwrap();
    send(libc::SIGWINCH);
    send(SIG);
    assert!(spin_until(&lp, || winch.get() == 1));
    for _ in 0..3 {
        common::one_iteration(&lp);
    }
    assert_eq!(usr2.get(), 0, "a callback cancelled before it ran, ran");
    assert!(lp.remove_signal_handler(libc::SIGWINCH).unwrap());
    lp.close().unwrap();
}
