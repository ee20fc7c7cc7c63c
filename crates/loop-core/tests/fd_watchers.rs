//! add_reader / add_writer / remove_*: NET-01 .. NET-07. Every test holds `serial()` and checks
//! that the process's fd count is back where it started.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use common::*;
use loop_core::internal::{IoHandler, Registered};
use loop_core::{Error, EventLoop, Mode, Readiness};

/// Runs `f` with a fresh loop, then closes it and checks no fd leaked.
fn with_loop(f: impl FnOnce(&EventLoop)) {
    let _s = serial();
    let base = fd_count();
    {
        let lp = EventLoop::new().unwrap();
        let wd = watchdog_for(&lp);
        f(&lp);
        drop(wd);
        lp.close().unwrap();
    }
    assert_eq!(fd_count(), base, "an fd leaked");
}

fn counter() -> (Rc<Cell<u32>>, impl FnMut(&EventLoop) + 'static) {
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    (n, move |_: &EventLoop| m.set(m.get() + 1))
}

#[test]
fn net_01_fd_given_by_object_or_number_invalid_rejected() {
    with_loop(|lp| {
        let (a, _b) = UnixStream::pair().unwrap();
        // add_* take anything that owns or borrows an fd (`AsFd`): an invalid fd cannot be
        // passed at all. remove_* also take a plain number; a negative one is rejected.
        for r in [lp.remove_reader(-1), lp.remove_writer(-5)] {
            let e = r.unwrap_err();
            assert!(matches!(&e, Error::InvalidArgument(_)));
            assert!(e.to_string().contains("Invalid file object"), "{e}");
        }
        lp.add_reader(&a, |_| {}).unwrap();
        assert!(lp.remove_reader(a.as_raw_fd()).unwrap(), "by number");
        lp.add_reader(&a, |_| {}).unwrap();
        assert!(lp.remove_reader(&a).unwrap(), "by object");
        let fd = a.as_raw_fd();
        lp.add_writer(&a, |_| {}).unwrap();
        assert!(lp.remove_writer(fd).unwrap());
        // A regular file cannot be watched: the OS error comes back, nothing stays registered.
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let e = lp.add_reader(&file, |_| {}).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(1), "EPERM: {e}");
        assert_eq!(lp.stats().fds_registered, 0);
        assert!(!lp.remove_reader(&file).unwrap());
    });
}

#[test]
fn net_02_reader_is_level_triggered() {
    with_loop(|lp| {
        let base = fd_count();
        let (rsock, mut wsock) = UnixStream::pair().unwrap();
        let (n, cb) = counter();
        lp.add_reader(&rsock, cb).unwrap();
        assert_eq!(lp.stats().fds_registered, 1);
        run_once(lp);
        assert_eq!(n.get(), 0, "not readable yet");
        wsock.write_all(b"data").unwrap();
        for i in 1..=5 {
            run_once(lp);
            assert_eq!(n.get(), i, "queued once per iteration while readable");
        }
        // Consumed: no more calls.
        let mut buf = [0; 16];
        assert_eq!((&rsock).read(&mut buf).unwrap(), 4);
        run_once(lp);
        assert_eq!(n.get(), 5);
        // Readable again, then removed.
        wsock.write_all(b"more").unwrap();
        run_once(lp);
        assert_eq!(n.get(), 6);
        assert!(lp.remove_reader(&rsock).unwrap());
        run_once(lp);
        assert_eq!(n.get(), 6);
        assert_eq!(lp.stats().fds_registered, 0);
        // The loop does not keep the fd open.
        drop((rsock, wsock));
        assert_eq!(fd_count(), base);
    });
}

#[test]
fn net_02_reader_reads_until_the_peer_closes() {
    with_loop(|lp| {
        let (rsock, mut wsock) = UnixStream::pair().unwrap();
        let rsock = Rc::new(rsock);
        let got = Rc::new(std::cell::RefCell::new(Vec::new()));
        let (r, g) = (rsock.clone(), got.clone());
        lp.add_reader(&*rsock, move |lp| {
            let mut buf = [0; 4];
            let n = (&*r).read(&mut buf).unwrap();
            if n == 0 {
                lp.remove_reader(&*r).unwrap();
                lp.stop();
            } else {
                g.borrow_mut().extend_from_slice(&buf[..n]);
            }
        })
        .unwrap();
        wsock.write_all(b"hello, world").unwrap();
        drop(wsock);
        lp.run_forever().unwrap();
        assert_eq!(&*got.borrow(), b"hello, world");
    });
}

#[test]
fn net_03_add_reader_replaces_and_keeps_writer() {
    with_loop(|lp| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (w, wcb) = counter();
        let writer = lp.add_writer(&a, wcb).unwrap();
        let (r1, cb1) = counter();
        let first = lp.add_reader(&a, cb1).unwrap();
        let (r2, cb2) = counter();
        let second = lp.add_reader(&a, cb2).unwrap();
        assert!(
            first.cancelled(),
            "the replaced reader's handle is cancelled"
        );
        assert!(!second.cancelled() && !writer.cancelled());
        b.write_all(b"x").unwrap();
        run_once(lp);
        // Interest is read|write: both fire, the old reader never does.
        assert_eq!((r1.get(), r2.get(), w.get()), (0, 1, 1));
        assert_eq!(lp.stats().fds_registered, 1);
        assert!(lp.remove_reader(&a).unwrap());
        assert!(lp.remove_writer(&a).unwrap());
    });
}

#[test]
fn net_03_add_writer_replaces_and_keeps_reader() {
    with_loop(|lp| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (r, rcb) = counter();
        let reader = lp.add_reader(&a, rcb).unwrap();
        let (w1, cb1) = counter();
        let first = lp.add_writer(&a, cb1).unwrap();
        let (w2, cb2) = counter();
        lp.add_writer(&a, cb2).unwrap();
        assert!(first.cancelled());
        assert!(!reader.cancelled());
        b.write_all(b"x").unwrap();
        run_once(lp);
        assert_eq!((w1.get(), w2.get(), r.get()), (0, 1, 1));
    });
}

#[test]
fn net_04_add_reader_and_add_writer_return_the_handle() {
    with_loop(|lp| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let line = line!() + 1;
        let h = lp.add_reader(&a, |_| {}).unwrap();
        assert_eq!((h.location().file(), h.location().line()), (file!(), line));
        assert!(!h.cancelled());
        let (n, cb) = counter();
        let w = lp.add_writer(&a, cb).unwrap();
        w.cancel();
        b.write_all(b"x").unwrap();
        run_once(lp);
        assert_eq!(
            n.get(),
            0,
            "cancelling the returned handle stops the writer"
        );
    });
}

#[test]
fn net_05_remove_reader_and_remove_writer() {
    with_loop(|lp| {
        let (a, _b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        assert!(!lp.remove_reader(&a).unwrap(), "unknown fd");
        assert!(!lp.remove_writer(&a).unwrap(), "unknown fd");
        // Only a writer: remove_reader finds nothing, the writer stays.
        let (w, wcb) = counter();
        let wh = lp.add_writer(&a, wcb).unwrap();
        assert!(!lp.remove_reader(&a).unwrap());
        run_once(lp);
        assert_eq!(w.get(), 1);
        // Reader and writer: removing the reader keeps the writer registered.
        let rh = lp.add_reader(&a, |_| {}).unwrap();
        assert!(lp.remove_reader(&a).unwrap());
        assert!(rh.cancelled(), "the removed reader's handle is cancelled");
        assert!(!lp.remove_reader(&a).unwrap(), "second removal");
        assert_eq!(lp.stats().fds_registered, 1);
        run_once(lp);
        assert_eq!(w.get(), 2);
        // No interest left: unregistered.
        assert!(lp.remove_writer(&a).unwrap());
        assert!(wh.cancelled());
        assert!(!lp.remove_writer(&a).unwrap());
        assert_eq!(lp.stats().fds_registered, 0);
        run_once(lp);
        assert_eq!(w.get(), 2);
        // Symmetric: removing the writer keeps the reader.
        let (r, rcb) = counter();
        lp.add_reader(&c, rcb).unwrap();
        lp.add_writer(&c, |_| {}).unwrap();
        assert!(lp.remove_writer(&c).unwrap());
        assert!(!lp.remove_writer(&c).unwrap());
        assert_eq!(lp.stats().fds_registered, 1);
        (&_d).write_all(b"x").unwrap();
        run_once(lp);
        assert_eq!(r.get(), 1);
        assert!(lp.remove_reader(&c).unwrap());
        assert_eq!(lp.stats().fds_registered, 0);
    });
}

struct Owner;
impl IoHandler for Owner {
    fn ready(&self, _lp: &EventLoop, _r: Readiness) {}
}

#[test]
fn net_06_fd_used_by_a_transport_is_refused() {
    with_loop(|lp| {
        let (a, _b) = UnixStream::pair().unwrap();
        let reg = loop_core::internal::Registered::new(
            lp,
            &a,
            Mode::Edge,
            true,
            false,
            "<UnixTransport fd=a>",
            Rc::new(Owner),
        )
        .unwrap();
        let fd = a.as_raw_fd();
        let errors = [
            lp.add_reader(&a, |_| {}).map(|_| ()),
            lp.add_writer(&a, |_| {}).map(|_| ()),
            lp.remove_reader(&a).map(|_| ()),
            lp.remove_writer(&a).map(|_| ()),
            lp.remove_reader(fd).map(|_| ()),
            lp.remove_writer(fd).map(|_| ()),
        ];
        for r in errors {
            let e = r.unwrap_err();
            assert!(
                matches!(&e, Error::FdInUse { fd: f, .. } if *f == fd),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(
                text.contains(&format!(
                    "File descriptor {fd} is used by transport <UnixTransport fd=a>"
                )),
                "{text}"
            );
        }
        // The transport's own registration is untouched.
        assert_eq!(lp.stats().fds_registered, 1);
        drop(reg);
        assert_eq!(lp.stats().fds_registered, 0);
        lp.add_reader(&a, |_| {}).unwrap();
        // And the other way round: a watched fd cannot be taken by a transport.
        let e = loop_core::internal::Registered::new(
            lp,
            &a,
            Mode::Edge,
            true,
            false,
            "t",
            Rc::new(Owner),
        )
        .unwrap_err();
        assert!(matches!(e, Error::FdInUse { .. }));
        assert!(lp.remove_reader(&a).unwrap());
    });
}

#[test]
fn net_07_readiness_for_a_cancelled_handle_removes_the_registration() {
    with_loop(|lp| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (n, cb) = counter();
        let h = lp.add_reader(&a, cb).unwrap();
        h.cancel();
        assert_eq!(
            lp.stats().fds_registered,
            1,
            "still registered until reported"
        );
        b.write_all(b"x").unwrap();
        run_once(lp);
        assert_eq!(n.get(), 0, "not run");
        assert_eq!(lp.stats().fds_registered, 0, "removed instead");
        assert!(!lp.remove_reader(&a).unwrap());

        // Writer side, with a live reader on the same fd: only the writer is removed.
        let (r, rcb) = counter();
        lp.add_reader(&a, rcb).unwrap();
        let (w, wcb) = counter();
        let wh = lp.add_writer(&a, wcb).unwrap();
        wh.cancel();
        run_once(lp);
        assert_eq!((r.get(), w.get()), (1, 0));
        assert_eq!(lp.stats().fds_registered, 1);
        assert!(!lp.remove_writer(&a).unwrap(), "the writer is gone");
        assert!(lp.remove_reader(&a).unwrap(), "the reader stays");
    });
}

/// CORE-11 with NET-02: a reader whose callback raises a `Fatal` stops the loop (the error
/// unwinds out of `run_forever`) but stays registered: the next run calls it again for the
/// byte still unread, and nothing is reported to the exception handler.
#[test]
fn core_11_fatal_from_a_reader_leaves_the_reader_registered() {
    with_loop(|lp| {
        let seen = record_exceptions(lp);
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        let n = Rc::new(Cell::new(0));
        let m = n.clone();
        lp.add_reader(&a, move |lp| {
            m.set(m.get() + 1);
            if m.get() == 1 {
                loop_core::fatal("interrupted");
            }
            lp.stop();
        })
        .unwrap();
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run_forever()))
            .unwrap_err();
        assert!(p.is::<loop_core::Fatal>());
        assert_eq!(n.get(), 1);
        let wd = loop_testkit::watchdog_for(lp).limit(10);
        lp.run_forever().unwrap();
        assert!(!wd.fired(), "the reader was dropped by the fatal error");
        drop(wd);
        assert_eq!(n.get(), 2);
        assert!(lp.remove_reader(&a).unwrap());
        assert!(messages(&seen).is_empty(), "{:?}", messages(&seen));
    });
}

/// Records every readiness it is given.
struct Seen(RefCell<Vec<Readiness>>);
impl IoHandler for Seen {
    fn ready(&self, _lp: &EventLoop, r: Readiness) {
        self.0.borrow_mut().push(r);
    }
}

/// NET-02 at the level of what the poller reports: an idle connected socket watched for
/// writing is writable only (not readable, no error); one with data waiting, watched for
/// reading, is readable only; once the peer is gone the first one reports the hang-up as an
/// error, which also counts as readable (a read reports it). Combining readiness values is a
/// union (`|` of a value with itself is that value).
#[test]
fn net_02_readiness_says_what_the_fd_is_ready_for() {
    with_loop(|lp| {
        let (a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        d.write_all(b"x").unwrap();
        let on_a = Rc::new(Seen(RefCell::new(Vec::new())));
        let on_c = Rc::new(Seen(RefCell::new(Vec::new())));
        let reg_a = Registered::new(lp, &a, Mode::Level, false, true, "a", on_a.clone()).unwrap();
        let reg_c = Registered::new(lp, &c, Mode::Level, true, false, "c", on_c.clone()).unwrap();
        run_once(lp);
        let ra = *on_a.0.borrow().last().expect("a was not reported writable");
        assert!(
            ra.is_writable() && !ra.is_readable() && !ra.is_error(),
            "{ra:?}"
        );
        let rc = *on_c.0.borrow().last().expect("c was not reported readable");
        assert!(
            rc.is_readable() && !rc.is_writable() && !rc.is_error(),
            "{rc:?}"
        );
        drop(b);
        run_once(lp);
        let ra = *on_a.0.borrow().last().unwrap();
        if loop_core::internal::HANGUP_REPORTED {
            assert!(ra.is_error() && ra.is_readable(), "{ra:?}");
        } else {
            // The portable backend reports no hang-up or error bit (kqueue gives none): the
            // fd is only reported ready, and a read or write then tells what happened.
            assert!(ra.is_readable() || ra.is_writable(), "{ra:?}");
        }
        drop((reg_a, reg_c));

        let (r, w) = (Readiness::READABLE, Readiness::WRITABLE);
        assert_eq!(r | r, r);
        assert_eq!((r | w) | w, r | w);
        assert!(!Readiness::EMPTY.is_readable() && !Readiness::EMPTY.is_error());
        assert!(Readiness::READ_CLOSED.is_readable() && !Readiness::READ_CLOSED.is_error());
    });
}
