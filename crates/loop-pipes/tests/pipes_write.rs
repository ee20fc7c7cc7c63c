//! `connect_write_pipe` over real pipes, FIFOs, sockets and ptys (PIPE-08..PIPE-16; PIPE-09,
//! PIPE-11, PIPE-13 and PIPE-15 are also covered by loop-transport's own pipe tests).

mod common;
use common::*;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use std::time::Duration;

use loop_core::{Error, EventLoop};
use loop_transport::{Extra, Protocol};
use rustix::fs::{Mode, OFlags};

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
