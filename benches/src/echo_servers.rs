//! Echo servers: evloop (a `Protocol`, and `start_server` streams) and its peers, a
//! hand-written epoll loop (the floor), tokio (current-thread) and smol (LocalExecutor +
//! async-io). Each listens on the given listener and serves until the process is killed.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use rustix::event::epoll;

/// The floor: edge-triggered epoll, read until short, write back at once, buffer only what the
/// socket refused.
pub fn floor(listener: TcpListener) {
    listener.set_nonblocking(true).expect("nonblocking");
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    const LISTENER: u64 = u64::MAX;
    epoll::add(
        &ep,
        listener.as_fd(),
        epoll::EventData::new_u64(LISTENER),
        epoll::EventFlags::IN,
    )
    .expect("epoll add");
    let mut conns: HashMap<u64, (TcpStream, Vec<u8>)> = HashMap::new();
    let mut next = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    loop {
        events.clear();
        match epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("epoll_wait: {e}"),
        }
        for ev in events.iter() {
            let key = ev.data.u64();
            if key == LISTENER {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).expect("nonblocking");
                    s.set_nodelay(true).expect("nodelay");
                    epoll::add(
                        &ep,
                        s.as_fd(),
                        epoll::EventData::new_u64(next),
                        epoll::EventFlags::IN | epoll::EventFlags::ET,
                    )
                    .expect("epoll add");
                    conns.insert(next, (s, Vec::new()));
                    next += 1;
                }
                continue;
            }
            let mut close = false;
            if let Some((s, pending)) = conns.get_mut(&key) {
                // Flush what is pending first.
                if !pending.is_empty() {
                    match s.write(pending) {
                        Ok(n) => {
                            pending.drain(..n);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => close = true,
                    }
                }
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            if pending.is_empty() {
                                match s.write(&buf[..n]) {
                                    Ok(w) => pending.extend_from_slice(&buf[w..n]),
                                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                        pending.extend_from_slice(&buf[..n])
                                    }
                                    Err(_) => {
                                        close = true;
                                        break;
                                    }
                                }
                            } else {
                                pending.extend_from_slice(&buf[..n]);
                            }
                            if n < buf.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
                if !close {
                    let flags = if pending.is_empty() {
                        epoll::EventFlags::IN | epoll::EventFlags::ET
                    } else {
                        epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::ET
                    };
                    let _ = epoll::modify(&ep, s.as_fd(), epoll::EventData::new_u64(key), flags);
                }
            }
            if close {
                if let Some((s, _)) = conns.remove(&key) {
                    let _ = epoll::delete(&ep, s.as_fd());
                }
            }
        }
    }
}

/// tokio, current-thread runtime: a task per connection, read then write_all.
pub fn tokio(listener: TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    listener.set_nonblocking(true).expect("nonblocking");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// smol's parts: `LocalExecutor` + `async_io::Async`, a task per connection.
pub fn smol(listener: TcpListener) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let ex = async_executor::LocalExecutor::new();
    let listener = async_io::Async::new(listener).expect("listener");
    async_io::block_on(ex.run(async {
        loop {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.get_ref().set_nodelay(true).expect("nodelay");
            ex.spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    }));
}

/// Serves `listener` with evloop's `create_server`, on one loop, until the process ends.
fn evloop_serve(listener: TcpListener, protocol: bool) {
    use evloop::prelude::*;

    /// Writes every chunk back as it arrives.
    struct Echo(Option<Transport>);

    impl Protocol for Echo {
        fn connection_made(&mut self, t: &Transport) {
            self.0 = Some(t.clone());
        }

        fn data_received(&mut self, data: &[u8]) {
            if let Some(t) = &self.0 {
                let _ = t.write(data);
            }
        }
    }

    /// One client: read up to 64 KiB into one buffer, write it back, wait for the buffer to
    /// drain.
    async fn echo(mut r: StreamReader, w: StreamWriter) -> Result<(), Error> {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = r.read_into(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n])?;
            w.drain().await?;
        }
        w.close();
        Ok(())
    }

    let lp = EventLoop::new().expect("loop");
    let opts = ServerOptions::new();
    let server = if protocol {
        lp.run_until_complete(lp.create_server_sock(|| Echo(None), listener, opts))
    } else {
        lp.run_until_complete(lp.start_server_sock(echo, listener, opts))
    }
    .expect("loop")
    .expect("server");
    lp.run_until_complete(async move { server.serve_forever().await })
        .expect("loop")
        .expect("serve_forever");
}

/// evloop, a `Protocol` whose `data_received` writes the data back.
pub fn evloop_protocol(listener: TcpListener) {
    evloop_serve(listener, true);
}

/// evloop, `start_server` with a task per client: `read_into` a 64 KiB buffer, `write`, `drain`.
pub fn evloop_streams(listener: TcpListener) {
    evloop_serve(listener, false);
}

/// evloop, one loop per core: two loops on two threads (each pinned to its own CPU), each with
/// its own `reuse_port` listener on the port of `listener`, so that the kernel spreads the
/// connections over them. The protocol is [`evloop_protocol`]'s.
pub fn evloop_protocol_two_loops(listener: TcpListener) {
    use evloop::prelude::*;

    struct Echo(Option<Transport>);

    impl Protocol for Echo {
        fn connection_made(&mut self, t: &Transport) {
            self.0 = Some(t.clone());
        }

        fn data_received(&mut self, data: &[u8]) {
            if let Some(t) = &self.0 {
                let _ = t.write(data);
            }
        }
    }

    // The port was chosen by binding `listener` (without SO_REUSEPORT); free it, then bind one
    // reuse_port listener per loop to it.
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let group = evloop::spawn_loops(2, move |lp, i| {
        crate::util::pin(Some(i));
        let opts = ServerOptions::new().reuse_port(true);
        // The loop keeps a serving server alive until it is closed.
        lp.run_until_complete(lp.create_server(|| Echo(None), "127.0.0.1", port, opts))??;
        Ok(())
    })
    .expect("two loops");
    // Serve until the process is killed.
    loop {
        std::thread::park();
        if group.is_empty() {
            break;
        }
    }
}
