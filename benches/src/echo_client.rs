//! The echo load generator: `conns` connections, each sending a `size`-byte message and
//! waiting for all of it to come back before sending the next (closed loop), for a number of
//! seconds or a fixed number of round trips per connection. A single thread on its own epoll
//! instance, pinned to its own core, so the server's CPU figures are its own.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use rustix::event::epoll;

/// One client connection.
struct Conn {
    /// The socket.
    s: TcpStream,
    /// Bytes of the current message still to send.
    to_send: usize,
    /// Bytes of the current echo still to receive.
    to_recv: usize,
    /// Round trips still to make, when the run is a fixed number of them.
    left: Option<u64>,
}

/// When the load stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this many seconds.
    Secs(f64),
    /// When every connection has made this many round trips: a fixed workload, whose cost
    /// does not depend on how fast the machine is.
    RoundTrips(u64),
}

/// Runs the load; returns the number of completed round trips.
pub fn run(addr: SocketAddr, conns: usize, size: usize, stop: Stop) -> u64 {
    let left = match stop {
        Stop::RoundTrips(0) => return 0,
        Stop::RoundTrips(r) => Some(r),
        Stop::Secs(_) => None,
    };
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    let msg = vec![0x5a_u8; size];
    let mut buf = vec![0u8; size.max(65536)];
    let mut map: HashMap<u64, Conn> = HashMap::new();
    for i in 0..conns {
        let s = TcpStream::connect(addr).expect("connect to the echo server");
        s.set_nodelay(true).expect("nodelay");
        s.set_nonblocking(true).expect("nonblocking");
        epoll::add(
            &ep,
            s.as_fd(),
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::ET,
        )
        .expect("epoll add");
        map.insert(
            i as u64,
            Conn {
                s,
                to_send: size,
                to_recv: size,
                left,
            },
        );
    }
    let deadline = match stop {
        Stop::Secs(secs) => Some(Instant::now() + Duration::from_secs_f64(secs)),
        Stop::RoundTrips(_) => None,
    };
    let finished = |map: &HashMap<u64, Conn>| match deadline {
        Some(d) => Instant::now() >= d,
        None => map.values().all(|c| c.left == Some(0)),
    };
    let mut done = 0u64;
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    // Kick off: every connection sends its first message.
    for c in map.values_mut() {
        pump(c, &msg, &mut buf, &mut done);
    }
    while !finished(&map) {
        events.clear();
        let ts = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        match epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("epoll_wait: {e}"),
        }
        for ev in events.iter() {
            let key = ev.data.u64();
            if let Some(c) = map.get_mut(&key) {
                pump(c, &msg, &mut buf, &mut done);
            }
        }
    }
    for c in map.values() {
        let _ = c.s.as_raw_fd();
    }
    done
}

/// Moves one connection as far as it can go without blocking, or until it has made all its
/// round trips.
fn pump(c: &mut Conn, msg: &[u8], buf: &mut [u8], done: &mut u64) {
    loop {
        if c.left == Some(0) {
            return;
        }
        if c.to_send > 0 {
            let off = msg.len() - c.to_send;
            match c.s.write(&msg[off..]) {
                Ok(n) => c.to_send -= n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => panic!("echo client write: {e}"),
            }
            continue;
        }
        match c.s.read(&mut buf[..c.to_recv]) {
            Ok(0) => panic!("the echo server closed a connection"),
            Ok(n) => {
                c.to_recv -= n;
                if c.to_recv == 0 {
                    *done += 1;
                    if let Some(l) = &mut c.left {
                        *l -= 1;
                    }
                    c.to_send = msg.len();
                    c.to_recv = msg.len();
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("echo client read: {e}"),
        }
    }
}
