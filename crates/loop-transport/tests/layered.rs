//! A layered transport: length-prefixed message framing over a stream transport, built on the
//! engine's `Layer` (the way TLS sits on TCP). The application protocol gets whole messages,
//! its writes are framed; pause / resume of reading and writing pass through; close, abort and
//! errors end in one `connection_lost`, after the transport underneath is gone; StreamReader
//! and StreamWriter work over it unchanged.

mod common;

use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use common::*;
use loop_core::{EventLoop, Result};
use loop_transport::engine::{Core, Driver, Flow, Policy};
use loop_transport::{
    Extra, Layer, Protocol, StreamProtocol, StreamReader, StreamReaderProtocol, StreamWriter,
    Transport, TransportOptions,
};

/// The framing layer's own state.
struct Framing {
    /// The stream transport underneath.
    lower: RefCell<Option<Transport>>,
    /// Bytes of a message not complete yet.
    inbuf: RefCell<Vec<u8>>,
}

impl Driver for Framing {
    type Protocol = StreamProtocol;
    type Event = Infallible;

    fn describe(core: &Core<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Framing {}>", core.lifecycle().label())
    }

    fn handle(core: &Rc<Core<Self>>) -> Transport {
        Transport::from_backend(core.clone())
    }

    /// The lower transport's buffer is the layer's.
    fn buffer_size(core: &Core<Self>) -> usize {
        Framing::lower(core).map_or(0, |l| l.get_write_buffer_size())
    }

    /// A force-close (abort, a panic in the application protocol) closes the lower
    /// transport at once.
    fn discard(core: &Core<Self>) {
        if let Some(l) = Framing::lower(core) {
            l.abort();
        }
    }

    /// Teardown: let go of the lower transport (it is closed by now, or closes with the loop).
    fn release(core: &Core<Self>) {
        let lower = core.driver.lower.borrow_mut().take();
        drop(lower);
    }
}

impl Layer for Framing {
    fn write(core: &Core<Self>, bufs: &[&[u8]]) -> Result<()> {
        if core.lifecycle().is_closing() {
            return Ok(());
        }
        let Some(lower) = Framing::lower(core) else {
            return Ok(());
        };
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let header = u32::try_from(len)
            .map_err(|_| loop_core::Error::invalid_argument("message too long"))?
            .to_be_bytes();
        let mut parts: Vec<&[u8]> = vec![&header];
        parts.extend_from_slice(bufs);
        lower.writelines(parts)?;
        core.maybe_pause();
        Ok(())
    }

    fn lower(core: &Core<Self>) -> Option<Transport> {
        core.driver.lower.borrow().clone()
    }

    fn close(core: &Core<Self>) {
        core.close();
        if let Some(l) = Framing::lower(core) {
            l.close();
        }
    }

    fn set_write_buffer_limits(
        core: &Core<Self>,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<()> {
        core.set_write_buffer_limits(high, low)?;
        match Framing::lower(core) {
            Some(l) => l.set_write_buffer_limits(high, low),
            None => Ok(()),
        }
    }
}

/// The layering protocol, installed on the lower transport: frames in, upcalls through.
struct FramingProto(Rc<Core<Framing>>);

impl Protocol for FramingProto {
    fn connection_made(&mut self, lower: &Transport) {
        *self.0.driver.lower.borrow_mut() = Some(lower.clone());
        // The application's connection_made, before the lower transport starts reading.
        self.0.deliver_made();
    }

    fn data_received(&mut self, data: &[u8]) {
        let core = &self.0;
        core.driver.inbuf.borrow_mut().extend_from_slice(data);
        loop {
            if core.lifecycle().is_closing() {
                return;
            }
            let msg = {
                let mut buf = core.driver.inbuf.borrow_mut();
                if buf.len() < 4 {
                    return;
                }
                let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                if buf.len() < 4 + len {
                    return;
                }
                let msg = buf[4..4 + len].to_vec();
                buf.drain(..4 + len);
                msg
            };
            let r = core.call("data_received", Policy::Fatal, |p| match p {
                StreamProtocol::Plain(p) => p.data_received(&msg),
                StreamProtocol::Buffered(b) => {
                    let mut rest = &msg[..];
                    while !rest.is_empty() {
                        let dst = b.get_buffer(rest.len());
                        let n = dst.len().min(rest.len());
                        dst[..n].copy_from_slice(&rest[..n]);
                        b.buffer_updated(n);
                        rest = &rest[n..];
                    }
                }
            });
            if r.is_err() {
                return;
            }
        }
    }

    fn eof_received(&mut self) -> bool {
        let core = &self.0;
        let keep = core
            .call("eof_received", Policy::Fatal, |p| match p {
                StreamProtocol::Plain(p) => p.eof_received(),
                StreamProtocol::Buffered(b) => b.eof_received(),
            })
            .unwrap_or(false);
        if !keep {
            core.mark_closing();
        }
        keep
    }

    fn pause_writing(&mut self) {
        self.0.maybe_pause();
    }

    fn resume_writing(&mut self) {
        self.0.maybe_resume();
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0.schedule_lost(exc);
    }
}

/// A framing transport over `fd`, driving `app`.
fn framed(lp: &EventLoop, fd: impl Into<OwnedFd>, app: impl Into<StreamProtocol>) -> Transport {
    let core = Core::new(
        lp,
        app.into(),
        Flow::default(),
        Framing {
            lower: RefCell::new(None),
            inbuf: RefCell::new(Vec::new()),
        },
    );
    Transport::new(
        lp,
        fd,
        FramingProto(core.clone()),
        TransportOptions::socket(),
    )
    .unwrap();
    core.make_live();
    Transport::from_backend(core)
}

/// A frame as the peer sends it.
fn frame(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

/// Reads one frame from a blocking peer.
fn read_frame(peer: &mut UnixStream) -> Vec<u8> {
    let mut h = [0u8; 4];
    peer.read_exact(&mut h).unwrap();
    let mut msg = vec![0u8; u32::from_be_bytes(h) as usize];
    peer.read_exact(&mut msg).unwrap();
    msg
}

fn messages(log: &Log) -> Vec<Vec<u8>> {
    log.borrow()
        .iter()
        .filter_map(|e| match e {
            Ev::Data(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn layered_app_gets_whole_messages_and_its_writes_are_framed() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = framed(&lp, a, rec);
    assert!(t.is_layered());
    spin(&lp, 2);
    assert_eq!(non_data(&log), [Ev::Made]);
    // Two messages in one write, then one split byte by byte over several writes.
    let mut both = frame(b"first");
    both.extend(frame(b""));
    peer.write_all(&both).unwrap();
    until(&lp, 30, || messages(&log).len() == 2);
    for byte in frame(b"third, in pieces") {
        peer.write_all(&[byte]).unwrap();
        spin(&lp, 1);
    }
    until(&lp, 30, || messages(&log).len() == 3);
    assert_eq!(
        messages(&log),
        [
            b"first".to_vec(),
            b"".to_vec(),
            b"third, in pieces".to_vec()
        ]
    );
    t.write(b"hello").unwrap();
    t.writelines([&b"wor"[..], b"ld"]).unwrap();
    assert_eq!(read_frame(&mut peer), b"hello");
    assert_eq!(read_frame(&mut peer), b"world");
    // Extra info and the socket are the lower transport's.
    assert!(t.peername().is_some());
    assert!(t.get_extra_info(Extra::Socket).is_some());
    assert_eq!(
        t.socket().unwrap().as_raw_fd(),
        t.get_extra_info(Extra::Socket).unwrap().as_fd().unwrap()
    );
    t.close();
    until(&lp, 30, || log.borrow().contains(&Ev::Lost(None)));
    errs.assert_none();
}

#[test]
fn layered_pause_and_resume_writing_pass_through() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = framed(&lp, a, rec);
    spin(&lp, 2);
    t.set_write_buffer_limits(Some(8192), Some(1024)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (1024, 8192));
    let chunk = vec![1u8; 16 * 1024];
    while !log.borrow().contains(&Ev::Pause) {
        t.write(&chunk).unwrap();
    }
    assert!(t.get_write_buffer_size() > 8192);
    assert_eq!(non_data(&log), [Ev::Made, Ev::Pause]);
    let reader = slow_reader(peer, 64 * 1024, std::time::Duration::ZERO);
    until(&lp, 30, || log.borrow().contains(&Ev::Resume));
    assert!(t.get_write_buffer_size() <= 1024);
    assert_eq!(non_data(&log), [Ev::Made, Ev::Pause, Ev::Resume]);
    t.close();
    until(&lp, 30, || log.borrow().contains(&Ev::Lost(None)));
    assert!(
        reader.join().unwrap().len() > 8192,
        "everything buffered was sent"
    );
    errs.assert_none();
}

#[test]
fn layered_pause_and_resume_reading_pass_through() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (mut rec, log, _lost) = Rec::new(&lp);
    rec.on_made = Some(Box::new(|t| t.pause_reading()));
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = framed(&lp, a, rec);
    spin(&lp, 2);
    assert!(!t.is_reading(), "paused in connection_made");
    peer.write_all(&frame(b"held back")).unwrap();
    spin(&lp, 5);
    assert!(messages(&log).is_empty(), "nothing while paused");
    t.resume_reading();
    assert!(t.is_reading());
    until(&lp, 30, || messages(&log).len() == 1);
    assert_eq!(messages(&log), [b"held back".to_vec()]);
    t.abort();
    spin(&lp, 3);
}

#[test]
fn layered_close_waits_for_the_lower_transport_then_connection_lost_once() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let baseline = fd_count();
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = framed(&lp, a, rec);
    spin(&lp, 2);
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let big = pattern(256 * 1024);
    t.write(&big).unwrap();
    assert!(t.get_write_buffer_size() > 0);
    t.close();
    t.close();
    assert!(t.is_closing(), "closing at once");
    spin(&lp, 3);
    assert!(
        !log.borrow().iter().any(|e| matches!(e, Ev::Lost(_))),
        "flushing first"
    );
    let reader = slow_reader(peer, 64 * 1024, std::time::Duration::ZERO);
    until(&lp, 30, || {
        log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    });
    spin(&lp, 3);
    assert_eq!(non_data(&log), [Ev::Made, Ev::Lost(None)]);
    let got = reader.join().unwrap();
    assert_eq!(
        &got[4..],
        &big[..],
        "the whole message went out before the close"
    );
    assert!(t.get_loop().is_none(), "torn down");
    assert_eq!(fd_count(), baseline, "both ends are closed");
    errs.assert_none();
}

#[test]
fn layered_abort_and_peer_eof_end_in_one_connection_lost() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    // abort() with data buffered below: discarded, connection_lost(None) once.
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, mut peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = framed(&lp, a, rec);
    spin(&lp, 2);
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    t.write(&pattern(256 * 1024)).unwrap();
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert!(t.is_closing());
    until(&lp, 30, || {
        log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    });
    spin(&lp, 3);
    assert_eq!(non_data(&log), [Ev::Made, Ev::Lost(None)]);
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    assert!(rest.len() < 256 * 1024, "the buffer was discarded");

    // The peer's EOF: eof_received, then connection_lost(None) once.
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    let t = framed(&lp, a, rec);
    spin(&lp, 2);
    peer.shutdown(Shutdown::Write).unwrap();
    until(&lp, 30, || {
        log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    });
    spin(&lp, 3);
    assert_eq!(non_data(&log), [Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert!(t.is_closing());
    errs.assert_none();
}

#[test]
fn layered_panic_in_data_received_is_fatal_and_closes_the_lower_transport() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (mut rec, log, _lost) = Rec::new(&lp);
    rec.on_data = Some(Box::new(|_, _| panic!("boom in data_received")));
    let (a, mut peer) = UnixStream::pair().unwrap();
    let _t = framed(&lp, a, rec);
    spin(&lp, 2);
    peer.write_all(&frame(b"x")).unwrap();
    peer.write_all(&frame(b"never delivered")).unwrap();
    until(&lp, 30, || {
        log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    });
    spin(&lp, 3);
    let lost: Vec<Ev> = non_data(&log);
    assert_eq!(lost.len(), 2, "{lost:?}");
    assert!(matches!(
        lost[1],
        Ev::Lost(Some((io::ErrorKind::Other, None)))
    ));
    assert_eq!(messages(&log), [b"x".to_vec()]);
    let r = reports.borrow();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0].message,
        "Fatal error: protocol.data_received() call failed."
    );
    assert_eq!(extra(&r[0], "transport"), Some("<Framing open>"));
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the lower transport was closed: EOF");
}

#[test]
fn layered_streams_work_over_it() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let reader = StreamReader::new();
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = framed(&lp, a, StreamReaderProtocol::new(Some(&reader)));
    reader.set_transport(t.clone());
    let writer = StreamWriter::new(t.clone()).unwrap();
    peer.write_all(&frame(b"line one\nline ")).unwrap();
    peer.write_all(&frame(b"two\n")).unwrap();
    let (a, b, mut reader, writer) = run(&lp, 30, async move {
        let mut reader = reader;
        let a = reader.readline().await?;
        let b = reader.readline().await?;
        writer.write(b"reply")?;
        writer.drain().await?;
        Ok::<_, loop_core::Error>((a, b, reader, writer))
    })
    .unwrap();
    assert_eq!((a, b), (b"line one\n".to_vec(), b"line two\n".to_vec()));
    assert_eq!(read_frame(&mut peer), b"reply");
    assert!(writer.peername().is_some());
    assert!(writer.socket().is_some());
    drop(peer);
    let rest = run(&lp, 30, async move { reader.read_all().await }).unwrap();
    assert!(rest.is_empty(), "EOF after the peer closed");
    writer.close();
    spin(&lp, 3);
    errs.assert_none();
}

#[test]
fn layered_set_protocol_and_protocol_ref() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    struct Count(usize);
    impl Protocol for Count {
        fn data_received(&mut self, data: &[u8]) {
            self.0 += data.len();
        }
    }
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = framed(&lp, a, Count(0));
    let p = t.protocol_ref::<Count>();
    spin(&lp, 2);
    peer.write_all(&frame(b"abc")).unwrap();
    until(&lp, 30, || p.with(|c| c.0) == Some(3));
    assert!(t.protocol_type_name().unwrap().ends_with("Count"));
    let (rec, log, _lost) = Rec::new(&lp);
    t.set_protocol(rec);
    assert_eq!(p.with(|c| c.0), None, "replaced by another type");
    peer.write_all(&frame(b"to the new one")).unwrap();
    until(&lp, 30, || messages(&log).len() == 1);
    let q = t.protocol_ref::<Rec>();
    t.abort();
    until(&lp, 30, || t.get_loop().is_none());
    assert!(
        t.with_protocol(|_: &mut Rec| ()).is_none(),
        "the transport let go"
    );
    assert_eq!(
        q.with(|r| r.log.borrow().len()),
        Some(2),
        "kept alive by the ref"
    );
}
