//! `connect_read_pipe` / `connect_write_pipe` over real pipes, FIFOs, sockets and ptys
//! (PIPE-01..PIPE-16; PIPE-04, PIPE-09, PIPE-11, PIPE-13 and PIPE-15 are also covered by
//! loop-transport's own pipe tests).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use std::time::Duration;

use loop_core::{Error, EventLoop, ExceptionContext, LoopFuture};
use loop_pipes::PipesExt;
use loop_transport::{Extra, Protocol, Transport};
use rustix::fs::{Mode, OFlags};

// ---------------------------------------------------------------------------------------------
// helpers

/// The test's watchdog, holding the test lock exclusively: several tests count the process'
/// fds, so the tests of this file run one at a time.
fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
}

use loop_testkit::fd_count;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Made,
    Data(Vec<u8>),
    Eof,
    Pause,
    Resume,
    Lost(Option<Option<i32>>),
}

#[derive(Default)]
struct Shared {
    log: RefCell<Vec<Ev>>,
    wake: RefCell<Option<LoopFuture<()>>>,
}

type S = Rc<Shared>;

impl Shared {
    fn push(&self, ev: Ev) {
        self.log.borrow_mut().push(ev);
        if let Some(f) = self.wake.borrow_mut().take() {
            let _ = f.set_result(());
        }
    }
    fn events(&self) -> Vec<Ev> {
        self.log.borrow().clone()
    }
    fn non_data(&self) -> Vec<Ev> {
        self.log
            .borrow()
            .iter()
            .filter(|e| !matches!(e, Ev::Data(_)))
            .cloned()
            .collect()
    }
    fn chunks(&self) -> Vec<usize> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.len()),
                _ => None,
            })
            .collect()
    }
    fn data(&self) -> Vec<u8> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
    fn lost(&self) -> bool {
        self.log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    }
}

/// Records every call.
struct Rec {
    s: S,
    keep_open: bool,
}

fn rec() -> (S, impl FnOnce() -> Rec) {
    let s: S = Rc::default();
    let s2 = s.clone();
    (s, move || Rec {
        s: s2,
        keep_open: false,
    })
}

impl Protocol for Rec {
    fn connection_made(&mut self, _t: &Transport) {
        self.s.push(Ev::Made);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.s.push(Ev::Data(data.to_vec()));
    }
    fn eof_received(&mut self) -> bool {
        self.s.push(Ev::Eof);
        self.keep_open
    }
    fn pause_writing(&mut self) {
        self.s.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.s.push(Ev::Resume);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.s.push(Ev::Lost(exc.map(|e| e.raw_os_error())));
    }
}

/// Runs `fut` with a 60 s watchdog (a generous bound against hangs, not a timing assertion).
fn run<F>(lp: &EventLoop, fut: F) -> F::Output
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    loop_testkit::run(lp, 60, fut)
}

/// Runs the loop until `cond` holds for the recorded events (each event wakes the wait).
fn wait_until(lp: &EventLoop, s: &S, cond: impl Fn(&[Ev]) -> bool) {
    loop {
        if cond(&s.log.borrow()) {
            return;
        }
        let f = lp.create_future::<()>();
        *s.wake.borrow_mut() = Some(f.clone());
        run(lp, f).unwrap();
    }
}

fn wait_lost(lp: &EventLoop, s: &S) {
    wait_until(lp, s, |e| e.iter().any(|x| matches!(x, Ev::Lost(_))));
}

/// Runs the loop long enough that it polls for I/O at least once (it polls at least every
/// `POLL_EVERY` iterations while work is ready), so that readiness already pending in the
/// kernel has been seen.
fn spin(lp: &EventLoop) {
    for _ in 0..=loop_core::POLL_EVERY {
        run(lp, loop_core::yield_now());
    }
}

type Connected<P> = Result<(Transport, loop_transport::ProtocolRef<P>), Error>;

fn read_pipe<P: Protocol + 'static>(
    lp: &EventLoop,
    f: impl FnOnce() -> P + 'static,
    fd: impl Into<OwnedFd>,
) -> Connected<P> {
    let l = lp.clone();
    let fd = fd.into();
    run(lp, async move { l.connect_read_pipe(f, fd).await })
}

fn write_pipe<P: Protocol + 'static>(
    lp: &EventLoop,
    f: impl FnOnce() -> P + 'static,
    fd: impl Into<OwnedFd>,
) -> Connected<P> {
    let l = lp.clone();
    let fd = fd.into();
    run(lp, async move { l.connect_write_pipe(f, fd).await })
}

fn capture_reports(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp, ctx| {
        l.borrow_mut().push(ctx.clone())
    })));
    log
}

fn is_nonblocking(t: &Transport) -> bool {
    t.with_fd(|fd| {
        rustix::fs::fcntl_getfl(fd)
            .unwrap()
            .contains(OFlags::NONBLOCK)
    })
    .unwrap()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// A new FIFO at a fresh path.
fn fifo(name: &str) -> loop_testkit::TempPath {
    let p = loop_testkit::temp_path(name);
    #[cfg(not(target_vendor = "apple"))]
    rustix::fs::mkfifoat(rustix::fs::CWD, p.as_path(), Mode::RUSR | Mode::WUSR).unwrap();
    // rustix has no mkfifo on Apple: the mkfifo(1) tool makes it.
    #[cfg(target_vendor = "apple")]
    assert!(std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(p.as_path())
        .status()
        .unwrap()
        .success());
    p
}

/// A pty pair in raw mode (no echo, no line buffering): (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    // posix_openpt takes O_CLOEXEC on Linux and FreeBSD; elsewhere (Apple) it is set after.
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    let master = {
        let m = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        rustix::io::fcntl_setfd(&m, rustix::io::FdFlags::CLOEXEC).unwrap();
        m
    };
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let mut t = rustix::termios::tcgetattr(&slave).unwrap();
    t.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &t).unwrap();
    (master, slave)
}

/// Reads from a blocking fd until `n` bytes arrived.
fn read_exact_fd(fd: impl AsFd, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    let mut at = 0;
    while at < n {
        let k = rustix::io::read(&fd, &mut got[at..]).unwrap();
        assert!(k > 0, "unexpected EOF after {at} bytes");
        at += k;
    }
    got
}

// ---------------------------------------------------------------------------------------------
// PIPE-01, PIPE-02, PIPE-04: read pipes

#[test]
fn pipe_01_read_pipe_accepts_a_pipe_and_makes_it_non_blocking() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    assert!(!rustix::fs::fcntl_getfl(&r)
        .unwrap()
        .contains(OFlags::NONBLOCK));
    let (s, f) = rec();
    let (t, _) = read_pipe(&lp, f, r).unwrap();
    assert!(is_nonblocking(&t));
    rustix::io::write(&w, b"pipe").unwrap();
    drop(w);
    wait_lost(&lp, &s);
    assert_eq!(s.data(), b"pipe");
    assert_eq!(s.non_data(), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
}

#[test]
fn pipe_01_read_pipe_accepts_a_fifo_a_socket_and_a_pty() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();

    // A FIFO: opened non-blocking for reading (no writer yet), then a writer.
    let path = fifo("read.fifo");
    let r = rustix::fs::open(
        path.as_path(),
        OFlags::RDONLY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let (s, f) = rec();
    let (_t, _) = read_pipe(&lp, f, r).unwrap();
    w.write_all(b"fifo").unwrap();
    drop(w);
    wait_lost(&lp, &s);
    assert_eq!(s.data(), b"fifo");
    assert_eq!(s.non_data(), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
    let _ = std::fs::remove_file(&path);

    // A socket.
    let (a, mut b) = UnixStream::pair().unwrap();
    let (s, f) = rec();
    let (_t, _) = read_pipe(&lp, f, a).unwrap();
    b.write_all(b"socket").unwrap();
    drop(b);
    wait_lost(&lp, &s);
    assert_eq!(s.data(), b"socket");
    assert_eq!(s.non_data(), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);

    // A character device: a pty's master reads what is written to the slave.
    let (master, slave) = openpty();
    let (s, f) = rec();
    let (t, _) = read_pipe(&lp, f, master).unwrap();
    assert!(is_nonblocking(&t));
    rustix::io::write(&slave, b"pty").unwrap();
    wait_until(&lp, &s, |_| s.data().len() == 3);
    assert_eq!(s.data(), b"pty");
    t.close();
    wait_lost(&lp, &s);
}

#[test]
fn pipe_01_read_pipe_refuses_regular_files_and_directories() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let dir = loop_testkit::TempDir::new("pipes-regular");
    let file_path = dir.join("regular");
    std::fs::write(&file_path, b"not a pipe").unwrap();
    let before = fd_count();
    let called = Rc::new(RefCell::new(false));
    for (fd, what) in [
        (
            OwnedFd::from(std::fs::File::open(&file_path).unwrap()),
            "a regular file",
        ),
        (
            OwnedFd::from(std::fs::File::open(dir.path()).unwrap()),
            "a directory",
        ),
    ] {
        let c = called.clone();
        let e = read_pipe(
            &lp,
            move || {
                *c.borrow_mut() = true;
                rec().1()
            },
            fd,
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("Pipe transport is for pipes/sockets only."),
            "{text}"
        );
        assert!(text.contains(what), "{text} should say {what}");
    }
    assert!(
        !*called.borrow(),
        "the factory is not called for a refused fd"
    );
    assert_eq!(fd_count(), before, "refused fds are closed");
    let _ = std::fs::remove_file(&file_path);
}

#[test]
fn pipe_02_returns_after_connection_made_reading_starts_after_and_the_pipe_is_owned() {
    let _g = serial();
    let before = fd_count();
    let lp = EventLoop::new().unwrap();
    let with_loop = fd_count();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let raw = r.as_raw_fd();
    // Data is already waiting when the transport is made.
    rustix::io::write(&w, b"early").unwrap();
    let (s, f) = rec();
    let (t, p) = read_pipe(&lp, f, r).unwrap();
    assert_eq!(
        s.events().first(),
        Some(&Ev::Made),
        "connection_made ran first"
    );
    assert!(
        p.with(|_: &mut Rec| ()).is_some() && t.with_protocol(|_: &mut Rec| ()).is_some(),
        "the ProtocolRef reaches the transport's protocol"
    );
    assert_eq!(t.get_extra_info(Extra::Pipe).unwrap().as_fd(), Some(raw));
    assert!(t.get_extra_info(Extra::Socket).is_none());
    wait_until(&lp, &s, |_| s.data() == b"early");
    assert_eq!(s.events(), vec![Ev::Made, Ev::Data(b"early".to_vec())]);
    // The transport owns the fd: it is closed after connection_lost.
    t.close();
    wait_lost(&lp, &s);
    assert!(t.get_extra_info(Extra::Pipe).is_none());
    drop(w);
    assert_eq!(fd_count(), with_loop);
    lp.close().unwrap();
    assert_eq!(fd_count(), before);
}

#[test]
fn pipe_04_read_pipe_closes_at_eof_even_when_eof_received_asks_to_stay_open() {
    // A socketpair end: its peer's shutdown(SHUT_WR) is a plain EOF, with no hang-up event (a
    // pipe's writer going away also reports the read end as hung up). Only the read pipe's own
    // EOF rule can close it here.
    let _g = serial();
    struct KeepOpen {
        s: S,
        t: Option<Transport>,
        closing_at_eof: Rc<RefCell<Option<bool>>>,
    }
    impl Protocol for KeepOpen {
        fn connection_made(&mut self, t: &Transport) {
            self.t = Some(t.clone());
            self.s.push(Ev::Made);
        }
        fn data_received(&mut self, data: &[u8]) {
            self.s.push(Ev::Data(data.to_vec()));
        }
        fn eof_received(&mut self) -> bool {
            *self.closing_at_eof.borrow_mut() = Some(self.t.as_ref().unwrap().is_closing());
            self.s.push(Ev::Eof);
            true // asks to stay open: ignored for a read pipe
        }
        fn connection_lost(&mut self, exc: Option<io::Error>) {
            self.t = None;
            self.s.push(Ev::Lost(exc.map(|e| e.raw_os_error())));
        }
    }
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let before = fd_count();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let s: S = Rc::default();
    let s2 = s.clone();
    let closing_at_eof = Rc::new(RefCell::new(None));
    let c2 = closing_at_eof.clone();
    let (t, _) = read_pipe(
        &lp,
        move || KeepOpen {
            s: s2,
            t: None,
            closing_at_eof: c2,
        },
        ours,
    )
    .unwrap();
    peer.write_all(b"half").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    wait_until(&lp, &s, |e| e.contains(&Ev::Eof));
    // connection_lost follows through the ready queue; a few iterations are plenty.
    spin(&lp);
    spin(&lp);
    assert_eq!(s.data(), b"half");
    assert_eq!(s.non_data(), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert_eq!(
        *closing_at_eof.borrow(),
        Some(true),
        "is_closing() is already true inside eof_received"
    );
    assert!(t.is_closing());
    assert!(t.fileno().is_none(), "the transport let go of its fd");
    assert_eq!(fd_count(), before + 1, "only the peer is left open");
    // The peer sees our end closed.
    peer.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(peer.read(&mut buf).unwrap(), 0);
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

// ---------------------------------------------------------------------------------------------
// PIPE-03: read size

#[test]
fn pipe_03_data_comes_in_chunks_of_at_most_256_kib() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    // Pipes can be grown only on Linux (F_SETPIPE_SZ); elsewhere the smaller payload runs.
    #[cfg(target_os = "linux")]
    let capacity = rustix::pipe::fcntl_setpipe_size(&w, 1 << 20).unwrap_or(0);
    #[cfg(not(target_os = "linux"))]
    let capacity = 0;
    let total = if capacity >= 1 << 20 {
        1 << 20
    } else {
        48 * 1024
    };
    let data = pattern(total);
    // The whole payload sits in the pipe before the transport reads.
    let mut at = 0;
    while at < total {
        at += rustix::io::write(&w, &data[at..]).unwrap();
    }
    drop(w);
    let (s, f) = rec();
    let (_t, _) = read_pipe(&lp, f, r).unwrap();
    wait_lost(&lp, &s);
    assert!(s.data() == data, "every byte, in order");
    let chunks = s.chunks();
    assert!(chunks.iter().all(|&n| n <= 256 * 1024), "{chunks:?}");
    if total == 1 << 20 {
        // With 1 MiB waiting, each read is cut at exactly 256 KiB.
        assert_eq!(chunks, vec![256 * 1024; 4]);
    } else {
        eprintln!("part skipped: cannot grow the pipe to 1 MiB");
    }
}

// ---------------------------------------------------------------------------------------------
// PIPE-05: read errors

#[test]
fn pipe_05_eio_from_a_pty_closes_without_the_exception_handler() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (master, slave) = openpty();
    let (s, f) = rec();
    let (t, _) = read_pipe(&lp, f, master).unwrap();
    rustix::io::write(&slave, b"last words").unwrap();
    wait_until(&lp, &s, |_| s.data().len() == 10);
    drop(slave); // the other side closes: reading the master gives EIO
    wait_lost(&lp, &s);
    assert_eq!(s.data(), b"last words");
    assert_eq!(
        s.non_data(),
        vec![Ev::Made, Ev::Lost(Some(Some(libc_eio())))]
    );
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    assert!(t.is_closing());
}

fn libc_eio() -> i32 {
    rustix::io::Errno::IO.raw_os_error()
}

#[test]
fn pipe_05_other_read_errors_are_reported_then_close() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    // A TCP connection reset by its peer: reading gives ECONNRESET.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (peer, _) = l.accept().unwrap();
    let (s, f) = rec();
    let (_t, _) = read_pipe(&lp, f, c).unwrap();
    rustix::net::sockopt::set_socket_linger(&peer, Some(Duration::ZERO)).unwrap();
    drop(peer); // RST
    wait_lost(&lp, &s);
    let reset = rustix::io::Errno::CONNRESET.raw_os_error();
    assert_eq!(s.non_data(), vec![Ev::Made, Ev::Lost(Some(Some(reset)))]);
    let r = reports.borrow();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].message, "Fatal read error on pipe transport");
    assert!(r[0].extra.iter().any(|(k, _)| *k == "transport"));
    assert!(r[0].extra.iter().any(|(k, _)| *k == "protocol"));
}

// ---------------------------------------------------------------------------------------------
// PIPE-06, PIPE-07: pause, resume, close

#[test]
fn pipe_06_pause_and_resume_are_idempotent_and_noops_once_closed() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (s, f) = rec();
    let (t, _) = read_pipe(&lp, f, r).unwrap();
    t.pause_reading();
    t.pause_reading();
    assert!(!t.is_reading());
    rustix::io::write(&w, b"held back").unwrap();
    spin(&lp);
    assert_eq!(s.events(), vec![Ev::Made], "nothing delivered while paused");
    t.resume_reading();
    t.resume_reading();
    assert!(t.is_reading());
    wait_until(&lp, &s, |_| !s.data().is_empty());
    assert_eq!(s.data(), b"held back");
    t.close();
    t.pause_reading();
    t.resume_reading();
    assert!(!t.is_reading());
    wait_lost(&lp, &s);
    t.resume_reading();
    t.pause_reading();
    assert_eq!(
        s.events(),
        vec![Ev::Made, Ev::Data(b"held back".to_vec()), Ev::Lost(None)]
    );
}

#[test]
fn pipe_07_close_is_idempotent_stops_reading_and_releases_everything() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let with_loop = fd_count();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (s, f) = rec();
    let (t, p) = read_pipe(&lp, f, r).unwrap();
    t.close();
    t.close();
    assert!(t.is_closing() && !t.is_reading());
    assert!(!s.lost(), "connection_lost is deferred");
    rustix::io::write(&w, b"too late").unwrap();
    wait_lost(&lp, &s);
    spin(&lp);
    assert_eq!(s.events(), vec![Ev::Made, Ev::Lost(None)]);
    assert!(t.fileno().is_none());
    assert!(t.get_loop().is_none(), "the loop reference is dropped");
    assert!(
        t.with_protocol(|_: &mut Rec| ()).is_none(),
        "the transport let go of its protocol"
    );
    assert!(
        p.with(|_: &mut Rec| ()).is_some(),
        "the ProtocolRef keeps it alive"
    );
    drop(w);
    assert_eq!(fd_count(), with_loop);
}

// ---------------------------------------------------------------------------------------------
// PIPE-08: write pipes

/// A protocol with only the base methods' defaults.
struct Bare;
impl Protocol for Bare {}

#[test]
fn pipe_08_write_pipe_accepts_a_pipe_a_fifo_a_socket_and_a_pty() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();

    let (r, w) = rustix::pipe::pipe().unwrap();
    let (t, _) = write_pipe(&lp, || Bare, w).unwrap();
    assert!(is_nonblocking(&t));
    assert!(!t.is_reading());
    t.write(b"pipe").unwrap();
    assert_eq!(read_exact_fd(&r, 4), b"pipe");
    t.close();

    let path = fifo("write.fifo");
    let fr = rustix::fs::open(
        path.as_path(),
        OFlags::RDONLY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .unwrap();
    let fw = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let (t, _) = write_pipe(&lp, || Bare, fw).unwrap();
    t.write(b"fifo").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(rustix::io::read(&fr, &mut buf).unwrap(), 4);
    t.close();
    let _ = std::fs::remove_file(&path);

    let (a, mut b) = UnixStream::pair().unwrap();
    let (t, _) = write_pipe(&lp, || Bare, a).unwrap();
    t.write(b"socket").unwrap();
    let mut buf = [0u8; 6];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"socket");
    t.close();

    let (master, slave) = openpty();
    let (t, _) = write_pipe(&lp, || Bare, slave).unwrap();
    t.write(b"pty").unwrap();
    assert_eq!(read_exact_fd(&master, 3), b"pty");
    t.close();
    spin(&lp);
}

#[test]
fn pipe_08_write_pipe_refuses_regular_files_and_directories() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let dir = loop_testkit::TempDir::new("pipes-regular-w");
    let file_path = dir.join("regular-w");
    let before = fd_count();
    for (fd, what) in [
        (
            OwnedFd::from(std::fs::File::create(&file_path).unwrap()),
            "a regular file",
        ),
        (
            OwnedFd::from(std::fs::File::open(dir.path()).unwrap()),
            "a directory",
        ),
    ] {
        let e = write_pipe(&lp, || Bare, fd).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("Pipe transport is only for pipes, sockets and character devices"),
            "{text}"
        );
        assert!(text.contains(what), "{text} should say {what}");
    }
    assert_eq!(fd_count(), before);
    assert!(
        std::fs::read(&file_path).unwrap().is_empty(),
        "nothing written"
    );
    let _ = std::fs::remove_file(&file_path);
}

// ---------------------------------------------------------------------------------------------
// PIPE-09: peer close, per fd type

#[test]
fn pipe_09_a_socket_write_pipe_notices_the_reader_going_away() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let (s, f) = rec();
    let (t, _) = write_pipe(&lp, f, a).unwrap();
    drop(b);
    wait_lost(&lp, &s);
    assert_eq!(s.events(), vec![Ev::Made, Ev::Lost(None)]);
    assert!(t.is_closing());
}

/// A socket is readable also when its peer sends data: that is the peer being there, not going
/// away. On the `polling` backend, which watches a write pipe's readability, the transport
/// stays open and does not spin on the unread data (one readiness event per arrival).
#[test]
fn pipe_09_a_socket_write_pipe_whose_peer_sends_data_stays_open_without_spinning() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let (s, f) = rec();
    let (t, _) = write_pipe(&lp, f, a).unwrap();
    spin(&lp);
    let before = lp.stats().io_events;
    b.write_all(b"unexpected").unwrap();
    // Several polls while the data sits unread.
    for _ in 0..3 {
        spin(&lp);
    }
    assert_eq!(s.events(), vec![Ev::Made]);
    assert!(!t.is_closing());
    let events = lp.stats().io_events - before;
    assert!(events <= 1, "{events} readiness events for one arrival");
    // Still a working write pipe.
    t.write(b"still here").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(read_exact_fd(&b, 10), b"still here");
    // More data: one more event at most, still open.
    b.write_all(b"more").unwrap();
    spin(&lp);
    assert!(!t.is_closing());
    assert!(lp.stats().io_events - before <= 2);
    // The peer closes with its data unread by anyone: the next write fails (EPIPE) and closes
    // the transport, on either backend.
    drop(b);
    t.write(b"gone?").unwrap();
    wait_lost(&lp, &s);
    assert_eq!(
        s.events(),
        vec![
            Ev::Made,
            Ev::Lost(Some(Some(rustix::io::Errno::PIPE.raw_os_error())))
        ]
    );
}

#[test]
fn pipe_09_a_pty_write_pipe_learns_of_the_hang_up_from_a_write_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (master, slave) = openpty();
    let (s, f) = rec();
    let (t, _) = write_pipe(&lp, f, slave).unwrap();
    drop(master);
    // No detection for character devices: the transport stays open...
    spin(&lp);
    assert_eq!(s.events(), vec![Ev::Made]);
    assert!(!t.is_closing());
    // ...until a write fails (EIO), which closes it (PIPE-12, not reported).
    t.write(b"anyone?").unwrap();
    wait_lost(&lp, &s);
    assert_eq!(s.events(), vec![Ev::Made, Ev::Lost(Some(Some(libc_eio())))]);
    assert!(reports.borrow().is_empty());
}

// ---------------------------------------------------------------------------------------------
// PIPE-10, PIPE-12, PIPE-14: writing

#[test]
fn pipe_10_writes_go_straight_to_the_pipe_and_only_the_rest_is_buffered() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (s, f) = rec();
    let (t, _) = write_pipe(&lp, f, w).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    t.write(b"").unwrap();
    assert_eq!(t.get_write_buffer_size(), 0);
    // Room in the pipe: written at once, without running the loop.
    t.write(b"direct").unwrap();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(read_exact_fd(&r, 6), b"direct");
    // More than the pipe holds: what fits is written, only the rest is buffered.
    let big = pattern(1 << 20);
    t.write(&big).unwrap();
    let buffered = t.get_write_buffer_size();
    assert!(buffered > 0 && buffered < big.len(), "{buffered}");
    // A would-block write keeps everything buffered (the pipe is full now).
    t.write(b"tail").unwrap();
    assert_eq!(t.get_write_buffer_size(), buffered + 4);
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(r);
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        all
    });
    t.close();
    wait_lost(&lp, &s);
    let mut expect = big;
    expect.extend_from_slice(b"tail");
    assert!(reader.join().unwrap() == expect, "every byte, in order");
    assert_eq!(s.events(), vec![Ev::Made, Ev::Lost(None)]);
}

#[test]
fn pipe_12_a_write_error_discards_the_buffer_and_closes_without_a_report() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (master, slave) = openpty();
    let (s, f) = rec();
    let (t, _) = write_pipe(&lp, f, slave).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    // Fill the pty (nobody reads the master) until data is buffered.
    let chunk = pattern(4096);
    while t.get_write_buffer_size() == 0 {
        t.write(&chunk).unwrap();
    }
    t.write(&chunk).unwrap();
    assert!(t.get_write_buffer_size() > 0);
    // The master goes away: the next attempt to flush the buffer fails with EIO.
    drop(master);
    wait_lost(&lp, &s);
    assert_eq!(s.events(), vec![Ev::Made, Ev::Lost(Some(Some(libc_eio())))]);
    assert_eq!(t.get_write_buffer_size(), 0, "the buffer is discarded");
    assert!(t.is_closing());
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn pipe_14_abort_discards_buffered_data() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (s, f) = rec();
    let (t, _) = write_pipe(&lp, f, w).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let big = pattern(1 << 20);
    t.write(&big).unwrap();
    let sent = big.len() - t.get_write_buffer_size();
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.is_closing());
    wait_lost(&lp, &s);
    assert_eq!(s.events(), vec![Ev::Made, Ev::Lost(None)]);
    let mut f = std::fs::File::from(r);
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), sent, "only what was written before abort()");
    assert!(all[..] == big[..sent]);
}

// ---------------------------------------------------------------------------------------------
// PIPE-16: ptys both ways, inspection after the loop closed

#[test]
fn pipe_16_read_and_write_transports_on_one_pty_work_independently() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (master, slave) = openpty();
    let slave_w = slave.try_clone().unwrap(); // dup()
    let (rs, f) = rec();
    let (rt, _) = read_pipe(&lp, f, slave).unwrap();
    let (ws, f) = rec();
    let (wt, _) = write_pipe(&lp, f, slave_w).unwrap();

    rustix::io::write(&master, b"to the slave").unwrap();
    wait_until(&lp, &rs, |_| rs.data().len() == 12);
    assert_eq!(rs.data(), b"to the slave");

    wt.write(b"from the slave").unwrap();
    assert_eq!(read_exact_fd(&master, 14), b"from the slave");

    // Closing the writer leaves the reader working.
    wt.close();
    wait_lost(&lp, &ws);
    assert_eq!(ws.events(), vec![Ev::Made, Ev::Lost(None)]);
    rustix::io::write(&master, b"!").unwrap();
    wait_until(&lp, &rs, |_| rs.data().len() == 13);
    assert!(!rt.is_closing());
    rt.close();
    wait_lost(&lp, &rs);
    assert_eq!(rs.non_data(), vec![Ev::Made, Ev::Lost(None)]);
}

#[test]
fn pipe_16_transports_can_be_inspected_after_the_loop_closed() {
    let _g = serial();
    let before = fd_count();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (rs, f) = rec();
    let (rt, _) = read_pipe(&lp, f, r).unwrap();
    let (_ws, f) = rec();
    let (wt, _) = write_pipe(&lp, f, w).unwrap();
    lp.close().unwrap();
    // Still answering, nothing open.
    for t in [&rt, &wt] {
        assert!(t.is_closing());
        assert!(t.get_extra_info(Extra::Pipe).is_none());
        assert!(t.fileno().is_none());
        assert!(!format!("{t:?}").is_empty());
        t.close();
        t.abort();
    }
    wt.write(b"dropped").unwrap();
    assert_eq!(wt.get_write_buffer_size(), 0);
    assert!(
        !rs.lost(),
        "nothing can run after close(): no connection_lost"
    );
    assert_eq!(fd_count(), before);
}
