//! Reliability under network faults, through the whole stack (`NetExt::create_server` /
//! `create_connection` / `open_connection`, the shared fd transport, the protocol): a peer
//! that resets mid-stream, writes to a peer that closed (with SIGPIPE at its killing default),
//! a tiny send buffer against a slow reader, and a panic injected into every method of a
//! stream and a datagram protocol while another connection keeps being served.
//!
//! Every test counts the process's fds before and after, so the tests of this binary run one
//! at a time.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

mod faults_common;

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{
    Addr, ConnectOptions, DatagramExt, DatagramOptions, DatagramTransport, NetExt, ServerOptions,
};
use evloop::timers::TimersExt;
use evloop::transport::{DatagramProtocol, Protocol, Transport};
use evloop::Error;
use faults_common::*;

/// What a recording protocol saw.
#[derive(Default)]
struct Seen {
    /// Bytes received.
    received: usize,
    /// Every `connection_lost` argument, as (kind, raw OS error).
    lost: Vec<Option<(ErrorKind, Option<i32>)>>,
    /// `eof_received` calls.
    eofs: u32,
    /// The transport, once made.
    transport: Option<Transport>,
}

/// Echoes (or just counts) what arrives and records how the connection ends.
struct Recorder {
    seen: Rc<RefCell<Seen>>,
    echo: bool,
    /// `eof_received`'s answer: true keeps the connection open for writing.
    keep_open_at_eof: bool,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &Transport) {
        self.seen.borrow_mut().transport = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        let mut s = self.seen.borrow_mut();
        s.received += data.len();
        if self.echo {
            s.transport.as_ref().unwrap().write(data).unwrap();
        }
    }
    fn eof_received(&mut self) -> bool {
        self.seen.borrow_mut().eofs += 1;
        self.keep_open_at_eof
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.seen
            .borrow_mut()
            .lost
            .push(exc.map(|e| (e.kind(), e.raw_os_error())));
    }
}

fn port_of(server: &evloop::net::Server) -> u16 {
    server.local_addrs()[0].as_inet().unwrap().port()
}

#[test]
fn reliability_peer_reset_mid_stream_connection_lost_econnreset_exactly_once() {
    let rig = Rig::new();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());
    let mut echo = EchoCheck::start(&lp);

    let seen = Rc::new(RefCell::new(Seen::default()));
    let s = seen.clone();
    let l = lp.clone();
    let server = run(&lp, 30, async move {
        l.create_server(
            move || Recorder {
                seen: s.clone(),
                echo: true,
                keep_open_at_eof: false,
            },
            "127.0.0.1",
            0,
            ServerOptions::new(),
        )
        .await
    })
    .unwrap();

    // Mid-stream: the client keeps sending and never reads the echo, so data is in flight both
    // ways and the server's write buffer holds echoed bytes when the reset arrives.
    let mut client = TcpStream::connect(("127.0.0.1", port_of(&server))).unwrap();
    client.set_nonblocking(true).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    until(&lp, 60, "server buffering echoed data", || {
        match client.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("client write: {e}"),
        }
        let s = seen.borrow();
        s.received >= 1 << 20
            && s.transport
                .as_ref()
                .is_some_and(|t| t.get_write_buffer_size() > 0)
    });
    assert!(seen.borrow().lost.is_empty());

    // SO_LINGER 0 then close: the kernel sends RST instead of FIN.
    rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO)).unwrap();
    drop(client);
    until(&lp, 30, "connection_lost after the reset", || {
        !seen.borrow().lost.is_empty()
    });
    spin(&lp, 5);

    assert_eq!(
        seen.borrow().lost,
        vec![Some((ErrorKind::ConnectionReset, Some(libc::ECONNRESET)))],
        "connection_lost(Some(ECONNRESET)) exactly once"
    );
    assert!(
        reports.borrow().is_empty(),
        "an OS error is not an exception-handler report: {:?}",
        reports.borrow()
    );
    echo.check(&lp);

    seen.borrow_mut().transport = None;
    server.close();
    run(&lp, 30, async move { server.wait_closed().await }).unwrap();
    echo.stop(&lp);
    rig.finish();
}

/// Makes SIGPIPE kill the process again (Rust's runtime ignores it for every binary), so a
/// write that raised it would end this test binary instead of returning EPIPE.
fn default_sigpipe() {
    // SAFETY: `signal` gets a valid signal number and the default disposition. Nothing in this
    // binary writes to a broken pipe or socket except through evloop (whose socket writes pass
    // MSG_NOSIGNAL), which is exactly what this checks.
    let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(prev, libc::SIG_ERR);
}

#[test]
fn reliability_write_to_closed_peer_epipe_connection_lost_once_no_sigpipe() {
    let rig = Rig::new();
    default_sigpipe();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());
    let mut echo = EchoCheck::start(&lp);

    // Protocol level, over create_connection: the peer closes, our protocol keeps the
    // connection open for writing at EOF (half-close), then writes into the void.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let s = seen.clone();
    let l = lp.clone();
    let (t, _protocol) = run(&lp, 30, async move {
        l.create_connection(
            move || Recorder {
                seen: s,
                echo: false,
                keep_open_at_eof: true,
            },
            "127.0.0.1",
            port,
            ConnectOptions::new(),
        )
        .await
    })
    .unwrap();
    let (peer, _) = listener.accept().unwrap();
    drop(peer); // FIN; our next segment gets a RST back, then the socket says EPIPE
    until(&lp, 30, "eof_received after the peer closed", || {
        seen.borrow().eofs == 1
    });
    let chunk = vec![7u8; 64 * 1024];
    let mut writes = 0u32;
    until(&lp, 60, "connection_lost while writing", || {
        if !t.is_closing() {
            t.write(&chunk).unwrap();
            writes += 1;
        }
        !seen.borrow().lost.is_empty()
    });
    spin(&lp, 5);
    // Writes after the loss are dropped silently, never a panic or an error.
    t.write(b"after the loss").unwrap();
    spin(&lp, 2);
    assert_eq!(
        seen.borrow().lost,
        vec![Some((ErrorKind::BrokenPipe, Some(libc::EPIPE)))],
        "connection_lost(Some(EPIPE)) exactly once (after {writes} writes)"
    );
    drop(t);

    // Stream level, over open_connection: write + drain until the error shows. As in asyncio,
    // the first drain() after the failing write may only see that the connection is gone
    // (ConnectionReset "Connection lost": connection_lost ran after drain looked at the
    // reader); from then on the reader holds the OS error, and drain() and wait_closed()
    // return that.
    let (peer_tx, peer_rx) = std::sync::mpsc::channel();
    let acceptor = std::thread::spawn(move || {
        let (peer, _) = listener.accept().unwrap();
        peer_tx.send(()).unwrap();
        drop(peer);
    });
    let l = lp.clone();
    let (first, again, closed) = run(&lp, 60, async move {
        let (_r, w) = l
            .open_connection("127.0.0.1", port, ConnectOptions::new())
            .await?;
        while peer_rx.try_recv().is_err() {
            l.sleep(Duration::from_millis(1)).await?;
        }
        let chunk = vec![1u8; 16 * 1024];
        let mut first = None;
        for _ in 0..100_000 {
            w.write(&chunk)?;
            if let Err(e) = w.drain().await {
                first = Some(e);
                break;
            }
        }
        let first = first.expect("writing to a closed peer ends in an error");
        let again = w.drain().await.expect_err("drain after the loss fails");
        let closed = w
            .wait_closed()
            .await
            .expect_err("wait_closed gives the error");
        Ok::<_, Error>((first, again, closed))
    })
    .unwrap();
    acceptor.join().unwrap();
    let is_os = |e: &Error| matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET));
    let is_lost = |e: &Error| {
        matches!(e, Error::Io(io) if io.kind() == ErrorKind::ConnectionReset
            && io.raw_os_error().is_none()
            && io.to_string() == "Connection lost")
    };
    assert!(
        is_os(&first) || is_lost(&first),
        "the first failing drain: the OS error or \"Connection lost\": {first:?}"
    );
    assert!(is_os(&again), "a later drain gives the OS error: {again:?}");
    assert!(is_os(&closed), "wait_closed gives the OS error: {closed:?}");

    assert!(
        reports.borrow().is_empty(),
        "OS errors are not reported: {:?}",
        reports.borrow()
    );
    echo.check(&lp);
    echo.stop(&lp);
    seen.borrow_mut().transport = None;
    rig.finish();
}

/// Sends `total` bytes of a counting pattern as fast as flow control allows, recording every
/// pause / resume with the write buffer size at that moment.
struct Producer {
    transport: Option<Transport>,
    sent: usize,
    total: usize,
    paused: bool,
    /// ('P' | 'R', buffer size when called).
    events: Rc<RefCell<Vec<(char, usize)>>>,
    high: usize,
    low: usize,
}

fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

impl Producer {
    fn pump(&mut self) {
        let t = self.transport.clone().unwrap();
        while !self.paused && self.sent < self.total {
            let n = (self.total - self.sent).min(8 * 1024);
            t.write(&pattern(self.sent, n)).unwrap();
            self.sent += n;
            // Inside a protocol method pause_writing is delivered when the method returns, so
            // look at the buffer to stop in time.
            if t.get_write_buffer_size() > self.high {
                break;
            }
        }
        if self.sent == self.total {
            t.close();
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, t: &Transport) {
        t.with_fd(|fd| rustix::net::sockopt::set_socket_send_buffer_size(fd, 4096))
            .unwrap()
            .unwrap();
        t.set_write_buffer_limits(Some(self.high), Some(self.low))
            .unwrap();
        self.transport = Some(t.clone());
        self.pump();
    }
    fn pause_writing(&mut self) {
        let size = self.transport.as_ref().unwrap().get_write_buffer_size();
        self.events.borrow_mut().push(('P', size));
        self.paused = true;
    }
    fn resume_writing(&mut self) {
        let size = self.transport.as_ref().unwrap().get_write_buffer_size();
        self.events.borrow_mut().push(('R', size));
        self.paused = false;
        self.pump();
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        assert!(exc.is_none(), "{exc:?}");
        self.transport = None;
    }
}

/// A slow reader with a small receive buffer: reads `chunk` bytes at a time with a short nap
/// between reads, to EOF, on its own thread. (A receive buffer of a few KiB would also make
/// loopback TCP crawl through zero-window probes; 64 KiB keeps the back-pressure and the
/// speed.)
fn slow_reader(mut s: TcpStream, chunk: usize) -> std::thread::JoinHandle<Vec<u8>> {
    rustix::net::sockopt::set_socket_recv_buffer_size(&s, 64 * 1024).unwrap();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
            // Being slow is the point of this reader (not a synchronisation).
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

#[test]
fn reliability_tiny_sndbuf_slow_reader_pause_resume_alternate_data_intact_drain_waits() {
    let rig = Rig::new();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());
    const TOTAL: usize = 1 << 20;
    const HIGH: usize = 32 * 1024;
    const LOW: usize = 8 * 1024;

    // Protocol level: a server pushing 1 MiB to a slow client.
    let events = Rc::new(RefCell::new(Vec::new()));
    let ev = events.clone();
    let l = lp.clone();
    let server = run(&lp, 30, async move {
        l.create_server(
            move || Producer {
                transport: None,
                sent: 0,
                total: TOTAL,
                paused: false,
                events: ev.clone(),
                high: HIGH,
                low: LOW,
            },
            "127.0.0.1",
            0,
            ServerOptions::new(),
        )
        .await
    })
    .unwrap();
    let client = TcpStream::connect(("127.0.0.1", port_of(&server))).unwrap();
    let reader = slow_reader(client, 4096);
    until(&lp, 120, "the whole stream flushed and closed", || {
        reader.is_finished()
    });
    let got = reader.join().unwrap();
    assert_eq!(got.len(), TOTAL, "every byte arrived");
    assert!(
        got == pattern(0, TOTAL),
        "the bytes arrived intact, in order"
    );
    let events = events.borrow().clone();
    let pauses = events.iter().filter(|e| e.0 == 'P').count();
    assert!(pauses >= 2, "flow control engaged repeatedly: {events:?}");
    for (i, (what, size)) in events.iter().enumerate() {
        let expected = if i % 2 == 0 { 'P' } else { 'R' };
        assert_eq!(*what, expected, "pause and resume alternate: {events:?}");
        match what {
            'P' => assert!(*size > HIGH, "paused only above high: {events:?}"),
            _ => assert!(*size <= LOW, "resumed only at or below low: {events:?}"),
        }
    }
    assert_eq!(events.last().unwrap().0, 'R', "resumed before the end");
    server.close();
    run(&lp, 30, async move { server.wait_closed().await }).unwrap();

    // Stream level: drain() does not return while the buffer is above the high-water mark.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        slow_reader(s, 4096).join().unwrap()
    });
    let l = lp.clone();
    let (waited, checked) = run(&lp, 120, async move {
        let (_r, w) = l
            .open_connection("127.0.0.1", port, ConnectOptions::new())
            .await?;
        w.transport()
            .with_fd(|fd| rustix::net::sockopt::set_socket_send_buffer_size(fd, 4096))
            .unwrap()?;
        w.transport()
            .set_write_buffer_limits(Some(HIGH), Some(LOW))?;
        let (mut waited, mut checked, mut sent) = (0u32, 0u32, 0usize);
        while sent < TOTAL {
            let n = (TOTAL - sent).min(24 * 1024);
            w.write(&pattern(sent, n))?;
            sent += n;
            if w.transport().get_write_buffer_size() > HIGH {
                waited += 1;
            }
            w.drain().await?;
            checked += 1;
            let size = w.transport().get_write_buffer_size();
            assert!(
                size <= HIGH,
                "drain() returned with {size} bytes buffered (high-water mark {HIGH})"
            );
        }
        w.close();
        w.wait_closed().await?;
        Ok::<_, Error>((waited, checked))
    })
    .unwrap();
    let got = acceptor.join().unwrap();
    assert!(waited > 0, "some drain() had to wait ({checked} drains)");
    assert_eq!(got.len(), TOTAL);
    assert!(
        got == pattern(0, TOTAL),
        "the streamed bytes arrived intact"
    );

    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    rig.finish();
}

/// A protocol over transport `T` that panics in one chosen method and otherwise echoes:
/// [`Protocol`] over a stream [`Transport`], [`DatagramProtocol`] over a [`DatagramTransport`].
struct Faulty<T> {
    /// The method that panics.
    method: &'static str,
    /// Set by `connection_made`, dropped by `connection_lost`.
    transport: Option<T>,
    /// `connection_lost` calls, across every protocol of the test.
    lost: Rc<Cell<u32>>,
}

impl<T> Faulty<T> {
    fn maybe_panic(&self, method: &str) {
        inject(self.method, "", method);
    }

    /// The common part of `connection_lost`: counted, transport dropped, maybe the panic.
    fn lost(&mut self) {
        self.lost.set(self.lost.get() + 1);
        self.transport = None;
        self.maybe_panic("connection_lost");
    }
}

impl Protocol for Faulty<Transport> {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
        self.maybe_panic("connection_made");
    }
    fn data_received(&mut self, data: &[u8]) {
        self.maybe_panic("data_received");
        let t = self.transport.as_ref().unwrap();
        if data.starts_with(b"flood") {
            // More than the kernel takes while the client does not read: pause_writing.
            t.write(&vec![b'f'; 4 << 20]).unwrap();
        } else {
            t.write(data).unwrap();
        }
    }
    fn eof_received(&mut self) -> bool {
        self.maybe_panic("eof_received");
        false
    }
    fn pause_writing(&mut self) {
        self.maybe_panic("pause_writing");
    }
    fn resume_writing(&mut self) {
        self.maybe_panic("resume_writing");
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        self.lost();
    }
}

/// Reads whatever is available without blocking; true at EOF.
fn drain_nonblocking(s: &mut TcpStream, total: &mut usize) -> bool {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => *total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("client read: {e}"),
        }
    }
}

#[test]
fn reliability_panic_in_each_protocol_method_reported_once_other_connection_served() {
    let rig = Rig::new();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());
    let mut echo = EchoCheck::start(&lp);

    let mode = Rc::new(Cell::new(""));
    let lost = Rc::new(Cell::new(0u32));
    let (m, lo) = (mode.clone(), lost.clone());
    let l = lp.clone();
    let server = run(&lp, 30, async move {
        l.create_server(
            move || Faulty {
                method: m.get(),
                transport: None,
                lost: lo.clone(),
            },
            "127.0.0.1",
            0,
            ServerOptions::new(),
        )
        .await
    })
    .unwrap();
    let port = port_of(&server);

    for method in [
        "connection_made",
        "data_received",
        "eof_received",
        "pause_writing",
        "resume_writing",
        "connection_lost",
    ] {
        mode.set(method);
        let lost_before = lost.get();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_nonblocking(true).unwrap();
        let mut got = 0usize;
        let needle = format!("{INJECTED} in {method}");
        let reported = || reports_with(&reports, &needle).len();
        match method {
            "connection_made" => until(&lp, 30, method, || reported() == 1),
            "data_received" => {
                c.write_all(b"hello").unwrap();
                until(&lp, 30, method, || reported() == 1);
            }
            "eof_received" => {
                c.shutdown(std::net::Shutdown::Write).unwrap();
                until(&lp, 30, method, || reported() == 1);
            }
            "pause_writing" | "resume_writing" => {
                c.write_all(b"flood").unwrap();
                if method == "pause_writing" {
                    until(&lp, 30, method, || reported() == 1);
                }
                // The client reads everything: the buffer drains, resume_writing runs.
                until(&lp, 60, "the flood read back", || {
                    drain_nonblocking(&mut c, &mut got);
                    got == 4 << 20
                });
                until(&lp, 30, method, || reported() == 1);
                // Not fatal: the connection still echoes.
                c.write_all(b"still here").unwrap();
                let mut back = 0;
                until(&lp, 30, "echo after a non-fatal panic", || {
                    drain_nonblocking(&mut c, &mut back);
                    back == 10
                });
                c.shutdown(std::net::Shutdown::Write).unwrap();
            }
            "connection_lost" => {
                c.shutdown(std::net::Shutdown::Write).unwrap();
                until(&lp, 30, method, || reported() == 1);
            }
            _ => unreachable!(),
        }
        // The faulty connection ends (fatal panics close it; the others end at EOF) with
        // connection_lost exactly once, and nothing is reported twice.
        until(&lp, 30, "the faulty connection closed", || {
            drain_nonblocking(&mut c, &mut got)
        });
        until(&lp, 30, "connection_lost", || lost.get() == lost_before + 1);
        spin(&lp, 5);
        assert_eq!(
            lost.get(),
            lost_before + 1,
            "{method}: connection_lost once"
        );
        let mine = reports_with(&reports, &needle);
        assert_eq!(mine.len(), 1, "{method}: reported once: {mine:?}");
        assert!(
            mine[0].message.contains(&format!("protocol.{method}()")),
            "{method}: the report names the method: {:?}",
            mine[0]
        );
        echo.check(&lp);
    }
    let injected = reports_with(&reports, INJECTED).len();
    assert_eq!(
        injected,
        reports.borrow().len(),
        "nothing else reported: {:?}",
        reports.borrow()
    );
    assert_eq!(injected, 6);

    server.close();
    run(&lp, 30, async move { server.wait_closed().await }).unwrap();
    echo.stop(&lp);
    rig.finish();
}

impl DatagramProtocol for Faulty<DatagramTransport> {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.transport = Some(t.clone());
        self.maybe_panic("connection_made");
    }
    fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
        self.maybe_panic("datagram_received");
        if let Some(t) = &self.transport {
            let _ = t.sendto(data, Some(addr));
        }
    }
    fn error_received(&mut self, _exc: io::Error) {
        self.maybe_panic("error_received");
    }
    fn pause_writing(&mut self) {
        self.maybe_panic("pause_writing");
    }
    fn resume_writing(&mut self) {
        self.maybe_panic("resume_writing");
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        self.lost();
    }
}

#[test]
fn reliability_panic_in_each_datagram_protocol_method_reported_once_other_connection_served() {
    let rig = Rig::new();
    let (lp, reports) = (rig.lp.clone(), rig.reports.clone());
    let mut echo = EchoCheck::start(&lp);
    // Every endpoint below must give its fd back once closed, panic or not.
    let with_echo = fd_count();
    let lost = Rc::new(Cell::new(0u32));

    let faulty = |method: &'static str| {
        let lost = lost.clone();
        move || Faulty::<DatagramTransport> {
            method,
            transport: None,
            lost,
        }
    };
    let endpoint = |method: &'static str, options: DatagramOptions| {
        let l = lp.clone();
        let factory = faulty(method);
        run(&lp, 30, async move {
            l.create_datagram_endpoint(factory, options)
                .await
                .map(|(t, _)| t)
        })
    };
    let check = |method: &str, echo: &mut EchoCheck| {
        let needle = format!("{INJECTED} in {method}");
        until(&lp, 30, method, || {
            !reports_with(&reports, &needle).is_empty()
        });
        spin(&lp, 5);
        let mine = reports_with(&reports, &needle);
        assert_eq!(mine.len(), 1, "{method}: reported once: {mine:?}");
        assert!(
            mine[0].message.contains(&format!("protocol.{method}()")),
            "{method}: the report names the method: {:?}",
            mine[0]
        );
        echo.check(&lp);
    };

    // connection_made: reported, and create_datagram_endpoint returns the panic.
    let err = endpoint("connection_made", DatagramOptions::local(("127.0.0.1", 0)))
        .expect_err("a panicking connection_made fails the call");
    assert!(err.to_string().contains(INJECTED), "{err}");
    check("connection_made", &mut echo);
    assert_eq!(
        fd_count(),
        with_echo,
        "connection_made: the endpoint's fd closed"
    );

    // datagram_received: fatal for that endpoint.
    let t = endpoint(
        "datagram_received",
        DatagramOptions::local(("127.0.0.1", 0)),
    )
    .unwrap();
    let at = t.sockname().unwrap().as_inet().unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"boom", at).unwrap();
    check("datagram_received", &mut echo);
    until(&lp, 30, "datagram endpoint closed", || t.fileno().is_none());
    drop(t);
    drop(peer);
    assert_eq!(
        fd_count(),
        with_echo,
        "datagram_received: the endpoint's fd closed"
    );

    // error_received: a connected UDP endpoint whose peer port is closed gets ECONNREFUSED.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_at = closed.local_addr().unwrap();
    drop(closed);
    let t = endpoint("error_received", DatagramOptions::remote(closed_at)).unwrap();
    t.sendto(b"anyone?", None).unwrap();
    check("error_received", &mut echo);
    t.close();
    drop(t);
    spin(&lp, 5);
    assert_eq!(
        fd_count(),
        with_echo,
        "error_received: the endpoint's fd closed"
    );

    // pause_writing / resume_writing: a Unix datagram pair whose reader does not read fills up
    // (EAGAIN), so datagrams queue in the transport; reading drains them.
    for method in ["pause_writing", "resume_writing"] {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let options = DatagramOptions::new();
        let t = run(
            &lp,
            30,
            lp.create_datagram_endpoint_sock(faulty(method), ours, options),
        )
        .map(|(t, _)| t)
        .unwrap();
        t.set_write_buffer_limits(Some(0), Some(0)).unwrap();
        let mut sent = 0;
        until(&lp, 30, "the datagram queue backs up", || {
            t.sendto(&[1u8; 512], None).unwrap();
            sent += 1;
            t.get_write_buffer_size() > 0
        });
        if method == "pause_writing" {
            check(method, &mut echo);
        }
        theirs.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1024];
        let mut got = 0;
        until(&lp, 30, "every datagram read", || {
            while theirs.recv(&mut buf).is_ok() {
                got += 1;
            }
            got == sent
        });
        if method == "resume_writing" {
            check(method, &mut echo);
        }
        assert!(!t.is_closing(), "{method}: not fatal");
        t.close();
        drop(t);
        drop(theirs);
        spin(&lp, 5);
        assert_eq!(fd_count(), with_echo, "{method}: the endpoint's fd closed");
    }

    // connection_lost.
    let t = endpoint("connection_lost", DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    t.close();
    check("connection_lost", &mut echo);
    drop(t);
    spin(&lp, 5);
    assert_eq!(
        fd_count(),
        with_echo,
        "connection_lost: the endpoint's fd closed"
    );
    assert_eq!(
        lost.get(),
        6,
        "connection_lost exactly once per endpoint, panic or not"
    );
    let injected = reports_with(&reports, INJECTED).len();
    assert_eq!(injected, 6, "{:?}", reports.borrow());
    assert_eq!(injected, reports.borrow().len(), "{:?}", reports.borrow());
    echo.stop(&lp);
    rig.finish();
}
