//! The transport write buffer: a `Transport` over a socketpair or a pipe (kernel buffers made
//! as small as possible) gets fuzzer-chosen writes, `writelines`, writes from `call_soon`
//! callbacks and from inside `resume_writing`, write-buffer limit changes, `write_eof`, loop
//! iterations and peer reads (the peer not reading is what fills the buffer). Checked:
//!
//! * every byte accepted arrives at the peer, once and in order (after `abort()`, a prefix);
//! * `pause_writing` / `resume_writing` alternate, starting with a pause; a pause is delivered
//!   only with the buffer above the high-water mark and a resume only at or below the low one;
//!   whenever the buffer is above the high-water mark the protocol is paused; after a full
//!   flush and `close()` it was resumed before `connection_lost`;
//! * writes after `write_eof()` fail, nothing reaches the exception handler, no fd leaks.
//!
//! Input layout: the first byte picks the fd kind and the initial limits; every following
//! byte is an op tag, some followed by argument bytes (see `scenario`).
#![no_main]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use loop_core::EventLoop;
use loop_transport::{Protocol, Transport, TransportOptions};

/// The byte at stream position `pos`: position-dependent, so a lost, repeated or reordered
/// byte shows.
fn pattern(pos: u64) -> u8 {
    (pos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (pos as u8)
}

/// State shared by the scenario and the protocol.
#[derive(Default)]
struct Shared {
    /// The transport (from `connection_made` to `connection_lost`).
    transport: Option<Transport>,
    /// Bytes accepted by the transport so far (the stream's length).
    sent: u64,
    /// `pause_writing` seen without `resume_writing`.
    paused: bool,
    /// How many pause / resume calls were delivered.
    flips: usize,
    /// `connection_lost` ran.
    lost: bool,
    /// Writes to make from inside the next `resume_writing` calls.
    on_resume: VecDeque<usize>,
    /// Violations seen inside protocol methods (a panic there would be caught by the loop).
    errors: Vec<String>,
    /// `write_eof()` was called.
    eof_requested: bool,
}

type SharedRef = Rc<RefCell<Shared>>;

/// Writes `len` pattern bytes (`writelines` in `parts` pieces when more than one) and counts
/// them as sent if the transport accepted them; a write after `write_eof()` must fail.
fn write_pattern(sh: &SharedRef, t: &Transport, len: usize, parts: usize) {
    let (start, eof) = {
        let s = sh.borrow();
        (s.sent, s.eof_requested)
    };
    let data: Vec<u8> = (0..len as u64).map(|i| pattern(start + i)).collect();
    // Writes to a closing transport are dropped (documented): not part of the stream.
    let accepted = !t.is_closing();
    let r = if parts <= 1 {
        t.write(&data)
    } else {
        let step = len.div_ceil(parts).max(1);
        t.writelines(data.chunks(step))
    };
    let mut s = sh.borrow_mut();
    match r {
        Ok(()) if eof => s.errors.push("write after write_eof() succeeded".into()),
        Ok(()) if accepted => s.sent += len as u64,
        Ok(()) => {}
        Err(e) if !eof => s.errors.push(format!("write failed: {e}")),
        Err(_) => {}
    }
}

/// The protocol: checks flow-control calls, writes from `resume_writing` when asked.
struct Flow(SharedRef);

impl Protocol for Flow {
    fn connection_made(&mut self, transport: &Transport) {
        self.0.borrow_mut().transport = Some(transport.clone());
    }

    fn pause_writing(&mut self) {
        let mut s = self.0.borrow_mut();
        s.flips += 1;
        if s.paused {
            s.errors
                .push("pause_writing() twice without resume_writing()".into());
        }
        s.paused = true;
        if let Some(t) = &s.transport {
            let (_, high) = t.get_write_buffer_limits();
            let size = t.get_write_buffer_size();
            if size <= high {
                s.errors.push(format!(
                    "pause_writing() with {size} bytes buffered, high {high}"
                ));
            }
        }
    }

    fn resume_writing(&mut self) {
        let (t, extra) = {
            let mut s = self.0.borrow_mut();
            s.flips += 1;
            if !s.paused {
                s.errors
                    .push("resume_writing() without pause_writing()".into());
            }
            s.paused = false;
            let t = s.transport.clone();
            if let Some(t) = &t {
                let (low, _) = t.get_write_buffer_limits();
                let size = t.get_write_buffer_size();
                if size > low {
                    s.errors.push(format!(
                        "resume_writing() with {size} bytes buffered, low {low}"
                    ));
                }
            }
            (t, s.on_resume.pop_front())
        };
        if let (Some(t), Some(len)) = (t, extra) {
            write_pattern(&self.0, &t, len, 1);
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let mut s = self.0.borrow_mut();
        if let Some(e) = exc {
            s.errors.push(format!("connection lost with {e}"));
        }
        s.lost = true;
        s.transport = None;
    }
}

/// The reading end: a socket or a pipe, non-blocking.
enum Peer {
    Socket(UnixStream),
    Pipe(OwnedFd),
}

impl Peer {
    /// Reads up to `max` bytes; `None` at EOF.
    fn read_some(&mut self, max: usize, got: &mut Vec<u8>) -> Option<()> {
        let mut buf = vec![0u8; max.clamp(1, 1 << 16)];
        let r = match self {
            Peer::Socket(s) => s.read(&mut buf),
            Peer::Pipe(fd) => rustix::io::read(&*fd, &mut buf).map_err(io::Error::from),
        };
        match r {
            Ok(0) => None,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                Some(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(()),
            Err(e) => panic!("peer read failed: {e}"),
        }
    }
}

fn spin(lp: &EventLoop, n: usize) {
    for _ in 0..n {
        lp.stop();
        lp.run_forever().expect("the loop runs");
    }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Checks the bytes received so far are the stream's next bytes.
fn check_received(got: &[u8], from: usize) {
    for (i, &b) in got.iter().enumerate().skip(from) {
        assert_eq!(b, pattern(i as u64), "byte {i} of the stream is wrong");
    }
}

/// Reads a byte; missing bytes read as zero.
fn next(inp: &mut &[u8]) -> u8 {
    match inp.split_first() {
        Some((&b, rest)) => {
            *inp = rest;
            b
        }
        None => 0,
    }
}

fn scenario(mut inp: &[u8]) {
    let Some((&cfg, rest)) = inp.split_first() else {
        return;
    };
    inp = rest;
    let pipe = cfg & 1 == 1;
    let lp = EventLoop::new().expect("a loop");
    let reports = Rc::new(RefCell::new(Vec::<String>::new()));
    let r2 = reports.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp, ctx| {
        r2.borrow_mut().push(ctx.render())
    })));
    let sh: SharedRef = Rc::default();
    let (t, mut peer) = if pipe {
        let (r, w) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
        )
        .expect("a pipe");
        let _ = rustix::pipe::fcntl_setpipe_size(&w, 4096);
        let t = Transport::new(&lp, w, Flow(sh.clone()), TransportOptions::write_pipe())
            .expect("a pipe transport");
        (t, Peer::Pipe(r))
    } else {
        let (a, b) = UnixStream::pair().expect("a socketpair");
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&a, 1024);
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&b, 1024);
        b.set_nonblocking(true).expect("non-blocking");
        let t = Transport::new(&lp, a, Flow(sh.clone()), TransportOptions::socket())
            .expect("a socket transport");
        (t, Peer::Socket(b))
    };
    match (cfg >> 1) & 3 {
        0 => {}
        1 => t.set_write_buffer_limits(Some(0), None).expect("limits"),
        2 => t
            .set_write_buffer_limits(Some(4096), Some(1024))
            .expect("limits"),
        _ => t
            .set_write_buffer_limits(Some(usize::from(cfg)), None)
            .expect("limits"),
    }
    spin(&lp, 1); // connection_made
    let mut got = Vec::new();
    let mut peer_eof = false;
    let mut abort = false;

    while let Some((&tag, rest)) = inp.split_first() {
        inp = rest;
        let hi = usize::from(tag >> 4);
        match tag & 0x0f {
            0..=2 => {
                let len =
                    usize::from(u16::from_le_bytes([next(&mut inp), next(&mut inp)])) % 20_000;
                write_pattern(&sh, &t, len, 1);
            }
            3 => {
                let len = usize::from(next(&mut inp)) * 32;
                write_pattern(&sh, &t, len, 1 + hi % 6);
            }
            4 => {
                let len = usize::from(next(&mut inp)) * 32;
                let (sh2, t2) = (sh.clone(), t.clone());
                lp.call_soon(move |_| write_pattern(&sh2, &t2, len, 1))
                    .expect("call_soon");
            }
            5 => {
                let a = usize::from(next(&mut inp)) * 64;
                let b = usize::from(next(&mut inp)) * 16;
                let r = match hi % 3 {
                    0 => t.set_write_buffer_limits(Some(a.max(b)), Some(a.min(b))),
                    1 => t.set_write_buffer_limits(Some(a), None),
                    _ => t.set_write_buffer_limits(None, Some(b)),
                };
                r.expect("valid limits are accepted");
            }
            6 | 7 => {
                let max = usize::from(next(&mut inp)) * 256 + 1;
                let from = got.len();
                if !peer_eof && peer.read_some(max, &mut got).is_none() {
                    peer_eof = true;
                }
                check_received(&got, from);
            }
            8 => spin(&lp, 1 + hi % 4),
            9 => sh
                .borrow_mut()
                .on_resume
                .push_back(usize::from(next(&mut inp)) * 64 + 1),
            10 => {
                t.write_eof().expect("write_eof on a writable transport");
                if pipe {
                    break; // write_eof() closes a write pipe: later writes are dropped
                }
                sh.borrow_mut().eof_requested = true;
            }
            11 if hi & 1 == 1 => {
                abort = true;
                break;
            }
            11 => break,
            _ => spin(&lp, 1),
        }
        // Outside protocol methods: above the high-water mark means paused.
        let s = sh.borrow();
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        if !s.lost {
            let (_, high) = t.get_write_buffer_limits();
            let size = t.get_write_buffer_size();
            assert!(
                !(size > high && !s.paused),
                "{size} bytes buffered, high {high}, not paused"
            );
        }
    }

    if abort {
        t.abort();
    } else {
        t.close();
    }
    // Drain: run the loop and read the peer until the transport is gone and the peer at EOF.
    let mut rounds = 0;
    while !(sh.borrow().lost && peer_eof) {
        rounds += 1;
        assert!(rounds < 1_000_000, "the transport never finished flushing");
        spin(&lp, 1);
        let from = got.len();
        while !peer_eof && got.len() < from + (1 << 20) {
            let before = got.len();
            if peer.read_some(1 << 16, &mut got).is_none() {
                peer_eof = true;
            } else if got.len() == before {
                break;
            }
        }
        check_received(&got, from);
    }
    let s = sh.borrow();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(
        got.len() as u64 <= s.sent,
        "more bytes arrived than were sent"
    );
    if !abort {
        assert_eq!(got.len() as u64, s.sent, "bytes lost");
        assert!(
            !s.paused,
            "closed after a full flush without resume_writing()"
        );
    }
    assert_eq!(s.flips % 2, usize::from(s.paused));
    assert!(
        reports.borrow().is_empty(),
        "exception handler: {:?}",
        reports.borrow()
    );
    drop(s);
    drop(t);
    lp.close().expect("close the loop");
}

fuzz_target!(|input: &[u8]| {
    let before = fd_count();
    scenario(input);
    assert_eq!(fd_count(), before, "fd leak");
});
