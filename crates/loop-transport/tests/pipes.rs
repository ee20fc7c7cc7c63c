//! The pipe behaviours that live in the shared transport (`FdKind::ReadPipe` /
//! `FdKind::WritePipe`); loop-pipes' `connect_read_pipe` / `connect_write_pipe` build on them.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::io::{self, Read, Write};
use std::time::Duration;

use common::*;
use loop_core::EventLoop;
use loop_transport::{Transport, TransportOptions};

#[test]
fn pipe_04_read_pipe_eof_always_closes_even_if_eof_received_keeps_open() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (mut rec, log, lost) = Rec::new(&lp);
    rec.keep_open = true;
    let t = Transport::new(&lp, r, rec, TransportOptions::read_pipe()).unwrap();
    rustix::io::write(&w, b"through the pipe").unwrap();
    drop(w);
    run_until(&lp, 30, lost);
    assert_eq!(data_of(&log), b"through the pipe");
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert!(t.is_closing());
    assert_eq!(fd_count(), before);
}

#[test]
fn pipe_09_write_pipe_notices_the_reader_going_away() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    // Nothing buffered: a clean connection_lost(None).
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let t = Transport::new(&lp, w, rec, TransportOptions::write_pipe()).unwrap();
    spin(&lp, 2);
    assert!(!t.is_reading());
    drop(r);
    run_until(&lp, 30, lost);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Lost(None)]);
    assert!(t.is_closing());

    // Data still buffered: connection_lost(BrokenPipe).
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let t = Transport::new(
        &lp,
        w,
        rec,
        TransportOptions::write_pipe().write_buffer_limits(Some(usize::MAX / 4), None),
    )
    .unwrap();
    spin(&lp, 2);
    t.write(&pattern(1 << 20)).unwrap();
    assert!(t.get_write_buffer_size() > 0);
    drop(r);
    run_until(&lp, 30, lost);
    assert!(
        matches!(
            log.borrow().last(),
            Some(Ev::Lost(Some((io::ErrorKind::BrokenPipe, _))))
        ),
        "{:?}",
        non_data(&log)
    );
}

#[test]
fn pipe_11_writes_after_close_are_dropped_and_warned_from_the_fifth_on() {
    let _g = serial();
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let cap = Capture::default();
    let c2 = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || c2.clone())
        .finish();
    let count = |c: &Capture| {
        String::from_utf8_lossy(&c.0.lock().unwrap())
            .matches("pipe closed by peer or os.write(pipe, data) raised exception.")
            .count()
    };
    tracing::subscriber::with_default(sub, || {
        let lp = EventLoop::new().unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        let (rec, _log, lost) = Rec::new(&lp);
        let t = Transport::new(&lp, w, rec, TransportOptions::write_pipe()).unwrap();
        t.write_eof().unwrap(); // = close() for a write pipe
        assert!(t.is_closing());
        for _ in 0..4 {
            t.write(b"x").unwrap(); // dropped, not refused
        }
        assert_eq!(count(&cap), 0);
        t.write(b"x").unwrap();
        assert_eq!(count(&cap), 1);
        run_until(&lp, 30, lost);
        let mut f = std::fs::File::from(r);
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    });
}

#[test]
fn pipe_13_write_eof_flushes_then_closes_the_write_pipe() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let t = Transport::new(
        &lp,
        w,
        rec,
        TransportOptions::write_pipe().write_buffer_limits(Some(usize::MAX / 4), None),
    )
    .unwrap();
    assert!(t.can_write_eof());
    let data = pattern(1 << 20);
    t.write(&data).unwrap();
    assert!(t.get_write_buffer_size() > 0);
    t.write_eof().unwrap();
    t.close(); // idempotent
    let reader = slow_reader(std::fs::File::from(r), 64 * 1024, Duration::ZERO);
    run_until(&lp, 60, lost);
    assert!(reader.join().unwrap() == data, "everything, then EOF");
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Lost(None)]);
}

#[test]
fn pipe_15_write_pipe_flow_control_is_the_socket_one() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let t = Transport::new(&lp, w, rec, TransportOptions::write_pipe()).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    spin(&lp, 2);
    t.write(&pattern(1 << 20)).unwrap();
    assert!(t.get_write_buffer_size() > 64 * 1024);
    assert_eq!(
        non_data(&log),
        vec![Ev::Made, Ev::Pause],
        "paused inside write()"
    );
    let reader = slow_reader(std::fs::File::from(r), 64 * 1024, Duration::ZERO);
    until(&lp, 60, || log.borrow().contains(&Ev::Resume));
    t.close();
    run_until(&lp, 60, lost);
    assert_eq!(reader.join().unwrap().len(), 1 << 20);
    assert_eq!(
        non_data(&log),
        vec![Ev::Made, Ev::Pause, Ev::Resume, Ev::Lost(None)]
    );
}

/// PIPE-10 with NET-59: `writelines` on a write pipe, straight into an empty pipe and from the
/// buffer once the pipe is full, delivers every piece once, in order.
#[test]
fn pipe_10_writelines_on_a_write_pipe_delivers_every_piece_in_order() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let t = Transport::new(
        &lp,
        w,
        rec,
        TransportOptions::write_pipe().write_buffer_limits(Some(usize::MAX / 4), None),
    )
    .unwrap();
    spin(&lp, 2);
    let pieces: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 5000 + usize::from(i)]).collect();
    // The first pieces go straight into the empty pipe (one vectored write), the rest is
    // buffered as several chunks and written, vectored, as the reader drains the pipe.
    t.writelines(&pieces[..3]).unwrap();
    t.writelines(&pieces[3..]).unwrap();
    assert!(t.get_write_buffer_size() > 0, "the pipe took everything");
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(r);
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        got
    });
    t.close();
    run_until(&lp, 30, lost);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Lost(None)]);
    assert_eq!(reader.join().unwrap(), pieces.concat());
}
