//! Bad input to the public API, through the facade: every call given the wrong kind of
//! argument returns a clear error (the right [`Error`] variant or OS error kind, and a message
//! that names the problem), never panics, and leaves no fd behind.
//!
//! Some wrong inputs cannot be written at all and so need no test: `add_reader` / `add_writer`
//! take `impl AsFd`, so fd -1 cannot be passed (the number-taking `remove_*` are checked
//! instead), and the pipe and socket adopters take ownership (`impl Into<OwnedFd>`), so the
//! same fd cannot be given to two transports without `unsafe` code that breaks I/O safety.
//! `call_later` takes a `Duration` (never negative or NaN); its seconds form
//! `call_later_secs` takes an `f64` and is checked here.
//!
//! Every test counts the process's fds before and after, so the tests of this binary run one
//! at a time.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

mod faults_common;

use std::cell::Cell;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{ConnectOptions, NetExt, ServerOptions, SockExt};
use evloop::pipes::PipesExt;
use evloop::signals::SignalsExt;
use evloop::timers::TimersExt;
use evloop::transport::Protocol;
use evloop::Error;
use faults_common::*;

/// A protocol that does nothing.
struct Quiet;
impl Protocol for Quiet {}

/// Asserts `e` is an [`Error::InvalidArgument`] whose text contains every one of `words`.
#[track_caller]
fn assert_invalid(e: &Error, words: &[&str]) {
    assert!(
        matches!(e, Error::InvalidArgument(_)),
        "an invalid-argument error: {e:?}"
    );
    let text = e.to_string();
    for w in words {
        assert!(
            text.contains(w),
            "the message names the problem ({w:?}): {text}"
        );
    }
}

/// Asserts `e` is [`Error::Closed`] with asyncio's text.
#[track_caller]
fn assert_closed(e: &Error) {
    assert!(matches!(e, Error::Closed), "{e:?}");
    assert_eq!(e.to_string(), "Event loop is closed");
}

#[test]
fn net_01_negative_fd_rejected_by_remove_reader_and_remove_writer() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    for fd in [-1, -5, RawFd::MIN] {
        assert_invalid(&lp.remove_reader(fd).unwrap_err(), &["Invalid file object"]);
        assert_invalid(&lp.remove_writer(fd).unwrap_err(), &["Invalid file object"]);
    }
    assert_eq!(lp.stats().fds_registered, 0);
    rig.finish();
}

/// An fd number that is not open in this process right now.
fn closed_fd_number() -> RawFd {
    let f = std::fs::File::open("Cargo.toml").unwrap();
    let raw = f.as_raw_fd();
    drop(f);
    assert_eq!(
        rustix::io::fcntl_getfd(
            // SAFETY: only asks the kernel about the number; an unopened number gives EBADF.
            unsafe { BorrowedFd::borrow_raw(raw) }
        )
        .unwrap_err(),
        rustix::io::Errno::BADF
    );
    raw
}

#[test]
fn reliability_bad_input_add_reader_closed_fd_or_regular_file_os_error_nothing_registered() {
    let rig = Rig::new();
    let lp = rig.lp.clone();

    // A closed fd: EBADF from the poller, nothing registered.
    let raw = closed_fd_number();
    // SAFETY: `raw` is not open (checked just above; this test holds the binary's lock and
    // opens nothing meanwhile), so the borrow cannot alias an fd someone owns; evloop only
    // hands the number to epoll_ctl, which answers EBADF.
    let stale = unsafe { BorrowedFd::borrow_raw(raw) };
    for e in [
        lp.add_reader(stale, |_| {}).unwrap_err(),
        lp.add_writer(stale, |_| {}).unwrap_err(),
    ] {
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e:?}");
        assert!(e.to_string().contains("Bad file descriptor"), "{e}");
    }
    assert!(!lp.remove_reader(raw).unwrap());

    // A regular file cannot be polled: EPERM (as asyncio's selector gives), nothing
    // registered, the file stays usable and ours.
    let file = std::fs::File::open("Cargo.toml").unwrap();
    for e in [
        lp.add_reader(&file, |_| {}).unwrap_err(),
        lp.add_writer(&file, |_| {}).unwrap_err(),
    ] {
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e:?}");
        assert!(e.to_string().contains("Operation not permitted"), "{e}");
    }
    assert_eq!(lp.stats().fds_registered, 0);
    assert!(!lp.remove_reader(&file).unwrap());
    assert!(!lp.remove_writer(&file).unwrap());
    drop(file);

    // The loop still works.
    let (a, b) = UnixStream::pair().unwrap();
    let hit = Rc::new(Cell::new(false));
    let h = hit.clone();
    lp.add_writer(&a, move |lp| {
        h.set(true);
        lp.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert!(hit.get());
    assert!(lp.remove_writer(&a).unwrap());
    drop((a, b));
    rig.finish();
}

#[test]
fn net_06_fd_owned_by_a_transport_rejected_by_add_reader_remove_reader_and_sock_calls() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let l = lp.clone();
    let (t, _protocol) = run(&lp, 30, async move {
        l.create_connection(|| Quiet, "127.0.0.1", port, ConnectOptions::new())
            .await
    })
    .unwrap();
    let (_peer, _) = listener.accept().unwrap();
    let raw = t.with_fd(|fd| fd.as_raw_fd()).unwrap();

    let in_use = |e: Error| {
        assert!(
            matches!(&e, Error::FdInUse { fd, .. } if *fd == raw),
            "FdInUse for fd {raw}: {e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!("File descriptor {raw} is used by transport")),
            "{text}"
        );
        assert!(text.contains("use the transport's methods"), "{text}");
    };
    in_use(
        t.with_fd(|fd| lp.add_reader(fd, |_| {}))
            .unwrap()
            .unwrap_err(),
    );
    in_use(
        t.with_fd(|fd| lp.add_writer(fd, |_| {}))
            .unwrap()
            .unwrap_err(),
    );
    in_use(lp.remove_reader(raw).unwrap_err());
    in_use(lp.remove_writer(raw).unwrap_err());
    // The sock_* calls wait with the same registration, so the same check guards them.
    let (l, t2) = (lp.clone(), t.clone());
    let e = run(&lp, 30, async move {
        assert!(!t2.is_closing());
        // SAFETY: the transport (`t2`, alive and not closing) keeps its fd open until this
        // block ends, and the borrow ends within it.
        let owned = unsafe { BorrowedFd::borrow_raw(raw) };
        let r = l.sock_recv(&owned, 16).await.map(|_| ());
        drop(t2);
        r
    })
    .unwrap_err();
    in_use(e);

    // Nothing changed for the transport: it still reads and writes.
    assert!(!t.is_closing());
    assert!(t.is_reading());
    t.close();
    spin(&lp, 5);
    drop(t);
    drop(_peer);
    // Once the transport is gone, the number is free for watchers again (and closed).
    assert!(!lp.remove_reader(raw).unwrap());
    lp.close().unwrap();
    drop(listener);
    assert_eq!(fd_count(), rig.base, "no fd leaked");
}

#[test]
fn timer_05_core_48_delays_nan_or_infinite_rejected_negative_legal_huge_harmless() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_invalid(
            &lp.call_later_secs(bad, |_| {}).unwrap_err(),
            &["delay", "finite"],
        );
        assert_invalid(
            &lp.call_at_secs(bad, |_| {}).unwrap_err(),
            &["when", "finite"],
        );
        let e = lp
            .run_until_complete(lp.sleep_secs(bad))
            .unwrap()
            .unwrap_err();
        assert_invalid(&e, &["delay", "finite"]);
    }

    // Negative delays are legal (due at once); huge ones neither overflow nor fire.
    let fired = Rc::new(Cell::new(0u32));
    let f = fired.clone();
    lp.call_later_secs(-1.0, move |_| f.set(f.get() + 1))
        .unwrap();
    let never = Rc::new(Cell::new(false));
    let mut huge = Vec::new();
    for n in [1e300, f64::MAX] {
        let nv = never.clone();
        huge.push(lp.call_later_secs(n, move |_| nv.set(true)).unwrap());
    }
    let nv = never.clone();
    huge.push(lp.call_later(Duration::MAX, move |_| nv.set(true)).unwrap());
    let nv = never.clone();
    huge.push(
        lp.call_later(Duration::new(u64::MAX, 999_999_999), move |_| nv.set(true))
            .unwrap(),
    );
    lp.run_until_complete(lp.sleep(Duration::from_millis(5)))
        .unwrap()
        .unwrap();
    assert_eq!(fired.get(), 1, "the negative delay ran");
    assert!(!never.get(), "a huge delay did not fire");
    for h in &huge {
        h.cancel();
    }
    lp.run_until_complete(lp.sleep(Duration::ZERO))
        .unwrap()
        .unwrap();
    assert!(!never.get());
    rig.finish();
}

#[test]
fn sig_03_sig_04_invalid_and_uncatchable_signals_rejected_nothing_installed() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    for sig in [0, -1, 65, i32::MAX, i32::MIN] {
        let needle = format!("invalid signal number {sig}");
        assert_invalid(
            &lp.add_signal_handler(sig, |_| {}).unwrap_err(),
            &[needle.as_str()],
        );
        assert_invalid(
            &lp.remove_signal_handler(sig).unwrap_err(),
            &[needle.as_str()],
        );
    }
    for sig in [libc::SIGKILL, libc::SIGSTOP] {
        let needle = format!("sig {sig} cannot be caught");
        assert_invalid(
            &lp.add_signal_handler(sig, |_| {}).unwrap_err(),
            &[needle.as_str()],
        );
        // Nothing was installed (SIG-11: removing it answers false).
        assert!(!lp.remove_signal_handler(sig).unwrap());
    }
    assert_eq!(lp.stats().fds_registered, 0, "no self-pipe left registered");
    rig.finish();
}

#[test]
fn net_40_net_43_net_45_server_closed_twice_then_wait_closed_and_start_serving_refused() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    let l = lp.clone();
    let server = run(&lp, 30, async move {
        l.create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new())
            .await
    })
    .unwrap();
    let port = server.local_addrs()[0].as_inet().unwrap().port();
    assert!(server.is_serving());
    server.close();
    server.close();
    assert!(!server.is_serving());
    assert!(
        server.sockets().is_empty(),
        "the listening sockets are closed"
    );
    let e = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    let s = server.clone();
    run(&lp, 30, async move {
        s.wait_closed().await?;
        // Again: returns at once.
        s.wait_closed().await?;
        let e = s.start_serving().await.unwrap_err();
        assert!(e.to_string().contains("is closed"), "{e}");
        let e = s.serve_forever().await.unwrap_err();
        assert!(e.to_string().contains("is closed"), "{e}");
        Ok::<(), Error>(())
    })
    .unwrap();
    server.close();
    drop(server);
    rig.finish();
}

#[test]
fn reliability_bad_input_create_connection_to_a_closed_port_econnrefused_names_the_address() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let made = Rc::new(Cell::new(0u32));
    let (l, m) = (lp.clone(), made.clone());
    let errs = run(&lp, 30, async move {
        let a = l
            .create_connection(
                move || {
                    m.set(m.get() + 1);
                    Quiet
                },
                "127.0.0.1",
                port,
                ConnectOptions::new(),
            )
            .await
            .map(|_| ())
            .unwrap_err();
        let b = l
            .open_connection("127.0.0.1", port, ConnectOptions::new())
            .await
            .map(|_| ())
            .unwrap_err();
        Ok::<_, Error>([a, b])
    })
    .unwrap();
    for e in errs {
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e:?}");
        assert!(
            matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("Connection refused"), "{text}");
    }
    assert_eq!(made.get(), 0, "no protocol made for a failed connection");
    lp.close().unwrap();
    assert_eq!(
        fd_count(),
        rig.base,
        "no fd leaked (the failed sockets are closed)"
    );
}

#[test]
fn pipe_01_connect_read_pipe_on_a_regular_file_or_directory_rejected_and_closed() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    for (path, kind) in [("Cargo.toml", "regular file"), (".", "directory")] {
        let f = std::fs::File::open(path).unwrap();
        let l = lp.clone();
        let e = run(&lp, 30, async move {
            l.connect_read_pipe(|| Quiet, f).await.map(|_| ())
        })
        .unwrap_err();
        assert_invalid(&e, &["Pipe transport is for pipes/sockets only.", kind]);
        let f = std::fs::File::open(path).unwrap();
        let l = lp.clone();
        let e = run(&lp, 30, async move {
            l.connect_write_pipe(|| Quiet, f).await.map(|_| ())
        })
        .unwrap_err();
        assert_invalid(&e, &["Pipe transport is", kind]);
        // The fd handed over was closed.
        assert_eq!(
            fd_count(),
            rig.base + loop_core::internal::LOOP_FDS,
            "{path}: only the loop's own fds are open"
        );
    }
    rig.finish();
}

#[test]
fn net_15_blocking_socket_rejected_by_sock_accept_and_in_debug_mode_by_sock_recv() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let (a, b) = (Rc::new(a), Rc::new(b));

    let l = lp.clone();
    let (aa, lst) = (a.clone(), Rc::new(listener));
    let ls = lst.clone();
    let (accept_err, debug_recv_err) = run(&lp, 30, async move {
        let e1 = l
            .sock_accept(&*ls)
            .await
            .map(|(_s, _a): (TcpStream, _)| ())
            .unwrap_err();
        l.set_debug(true);
        let e2 = l.sock_recv(&*aa, 16).await.map(|_| ()).unwrap_err();
        l.set_debug(false);
        Ok::<_, Error>((e1, e2))
    })
    .unwrap();
    for e in [accept_err, debug_recv_err] {
        assert_invalid(&e, &["must be non-blocking", "set_nonblocking(true)"]);
    }

    // Outside debug mode a blocking socket is still never allowed to block the loop: the
    // receive waits for readiness while other callbacks run (one of them sends the data).
    let l = lp.clone();
    let (aa, bb) = (a.clone(), b.clone());
    let got = run(&lp, 30, async move {
        l.call_soon(move |_| {
            use std::io::Write;
            (&*bb).write_all(b"late").unwrap();
        })?;
        l.sock_recv(&*aa, 16).await
    })
    .unwrap();
    assert_eq!(got, b"late");
    assert_eq!(lp.stats().fds_registered, 0);
    drop((a, b, lst));
    rig.finish();
}

#[test]
fn core_01_core_16_core_17_closed_loop_refuses_runs_and_scheduling() {
    let rig = Rig::new();
    let lp = rig.lp.clone();
    let (a, b) = UnixStream::pair().unwrap();
    lp.close().unwrap();
    lp.close().unwrap(); // CORE-14: idempotent
    assert_closed(&lp.run_until_complete(async {}).unwrap_err());
    assert_closed(&lp.run_forever().unwrap_err());
    assert_closed(&lp.call_soon(|_| {}).map(|_| ()).unwrap_err());
    assert_closed(
        &lp.call_later(Duration::ZERO, |_| {})
            .map(|_| ())
            .unwrap_err(),
    );
    assert_closed(&lp.call_later_secs(1.0, |_| {}).map(|_| ()).unwrap_err());
    assert_closed(&lp.create_task(async {}).map(|_| ()).unwrap_err());
    assert_closed(&lp.add_reader(&a, |_| {}).map(|_| ()).unwrap_err());
    assert_closed(&lp.add_writer(&a, |_| {}).map(|_| ()).unwrap_err());
    assert_closed(
        &lp.add_signal_handler(libc::SIGUSR1, |_| {})
            .map(|_| ())
            .unwrap_err(),
    );
    assert_closed(
        &lp.remote()
            .call_soon_threadsafe(|_| {})
            .map(|_| ())
            .unwrap_err(),
    );
    let l = lp.clone();
    let e = lp
        .run_until_complete(async move { l.sock_recv(&a, 1).await })
        .unwrap_err();
    assert_closed(&e);
    // CORE-17: removals answer false, the clock works, futures can still be made.
    assert!(!lp.remove_reader(&b).unwrap());
    assert!(!lp.remove_writer(&b).unwrap());
    let (t1, t2) = (lp.time(), lp.time());
    assert!(t1.is_finite() && t1 <= t2, "{t1} {t2}");
    assert!(!lp.create_future::<()>().done());
    drop(b);
    assert_eq!(fd_count(), rig.base, "no fd leaked");
}
