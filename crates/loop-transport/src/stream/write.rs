//! The fd stream transport's write path: straight to the fd when nothing is buffered, the
//! rest coalesced into chunks and sent with vectored system calls when the fd is writable.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use loop_core::{Error, Result};
use rustix::io::Errno;

use super::options::{CHUNK_MAX, COALESCE_MAX, MAX_IOV};
use super::{FdDriver, FdKind, StreamState};
use crate::engine::Core;

impl Core<FdDriver> {
    /// Sends one buffer.
    #[inline]
    fn send_one(&self, data: &[u8]) -> rustix::io::Result<usize> {
        let io = self.driver.io.borrow();
        let fd = io.fd().ok_or(Errno::BADF)?;
        loop {
            let r = if self.driver.kind == FdKind::Socket {
                rustix::net::send(fd, data, crate::sys::SEND_NOSIGNAL)
            } else {
                rustix::io::write(fd, data)
            };
            match r {
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// Sends several buffers with one system call.
    fn send_iov(&self, iov: &[IoSlice<'_>]) -> rustix::io::Result<usize> {
        if iov.len() == 1 {
            return self.send_one(&iov[0]);
        }
        let io = self.driver.io.borrow();
        let fd = io.fd().ok_or(Errno::BADF)?;
        loop {
            let r = if self.driver.kind == FdKind::Socket {
                rustix::net::sendmsg(
                    fd,
                    iov,
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    crate::sys::SEND_NOSIGNAL,
                )
            } else {
                rustix::io::writev(fd, iov)
            };
            match r {
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// Sends the caller's buffers straight to the fd; returns bytes sent and a fatal error.
    fn send_direct(&self, bufs: &[&[u8]]) -> (usize, Option<io::Error>) {
        if let [one] = bufs {
            return match self.send_one(one) {
                Ok(n) => (n, None),
                Err(Errno::AGAIN) => (0, None),
                Err(e) => (0, Some(e.into())),
            };
        }
        let mut sent = 0;
        let mut i = 0;
        while i < bufs.len() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            let mut batch = 0;
            while i + k < bufs.len() && k < MAX_IOV {
                iov[k] = IoSlice::new(bufs[i + k]);
                batch += bufs[i + k].len();
                k += 1;
            }
            match self.send_iov(&iov[..k]) {
                Ok(n) => {
                    sent += n;
                    if n < batch {
                        return (sent, None);
                    }
                    i += k;
                }
                Err(Errno::AGAIN) => return (sent, None),
                Err(e) => return (sent, Some(e.into())),
            }
        }
        (sent, None)
    }

    /// `write` of one buffer: the usual case — an open, writable transport with nothing
    /// buffered — sends it at once with a single check of the state; every other case (and
    /// what a send leaves) goes through [`write_slices`](Core::write_slices).
    #[inline]
    pub(super) fn write_one(&self, data: &[u8]) -> Result<()> {
        if self.write_direct(data) {
            return Ok(());
        }
        self.write_slices(&[data])
    }

    /// The direct case of [`write_one`](Core::write_one): sends `data` (what the socket does
    /// not take is buffered, a send error closes) and returns true, or returns false without
    /// doing anything when it is not that case. Its result is a flag, so that the usual path
    /// builds no `Result`.
    #[inline(never)]
    fn write_direct(&self, data: &[u8]) -> bool {
        let direct = {
            let st = self.driver.st.borrow();
            st.wsize == 0
                && !st.eof_requested
                && !data.is_empty()
                && self.driver.kind.is_writable()
                && !self.lifecycle().is_closing()
        };
        if !direct {
            return false;
        }
        match self.send_one(data) {
            Ok(n) if n == data.len() => {}
            Ok(n) => self.buffer_rest(&[data], n),
            Err(Errno::AGAIN) => self.buffer_rest(&[data], 0),
            Err(e) => self.fatal_os(e.into(), "send"),
        }
        true
    }

    /// `write` / `writelines` (NET-55 .. NET-59).
    pub(super) fn write_slices(&self, bufs: &[&[u8]]) -> Result<()> {
        let kind = self.driver.kind;
        if !kind.is_writable() {
            return Err(Error::invalid_state(
                "write() on a read-only pipe transport; it only reads",
            ));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let direct = {
            let st = self.driver.st.borrow();
            if st.eof_requested {
                return Err(Error::invalid_state(
                    "Cannot call write() after write_eof()",
                ));
            }
            if total == 0 {
                return Ok(());
            }
            if self.lifecycle().is_closing() {
                drop(st);
                // NET-57: dropped; warn once the counter reached the threshold.
                if self.count_dropped_write() {
                    if kind == FdKind::Socket {
                        tracing::warn!("socket.send() raised exception.");
                    } else {
                        tracing::warn!(
                            "pipe closed by peer or os.write(pipe, data) raised exception."
                        );
                    }
                }
                return Ok(());
            }
            st.wsize == 0
        };
        let mut skip = 0;
        if direct {
            let (n, err) = self.send_direct(bufs);
            if let Some(e) = err {
                self.fatal_os(e, "send");
                return Ok(());
            }
            if n == total {
                return Ok(());
            }
            skip = n;
        }
        self.buffer_rest(bufs, skip);
        Ok(())
    }

    /// Buffers `bufs` but their first `skip` bytes (already sent), and starts watching for
    /// writability if the buffer was empty.
    fn buffer_rest(&self, bufs: &[&[u8]], mut skip: usize) {
        let first = {
            let mut st = self.driver.st.borrow_mut();
            for b in bufs {
                if skip >= b.len() {
                    skip -= b.len();
                    continue;
                }
                push_chunk(&mut st, &b[skip..]);
                skip = 0;
            }
            !std::mem::replace(&mut st.want_write, true)
        };
        self.buffered(first);
    }

    /// The fd is writable: sends what is buffered, then resumes the protocol, wakes flushers,
    /// and finishes a pending close or `write_eof`. Out of line: its vector of buffers would
    /// give the read path's frame 4 KiB.
    #[inline(never)]
    pub(super) fn write_ready(&self) {
        loop {
            let res = {
                let st = self.driver.st.borrow();
                if st.wsize == 0 || self.lifecycle().lost_scheduled() {
                    break;
                }
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut k = 0;
                let mut batch = 0;
                for (i, chunk) in st.wbuf.iter().enumerate().take(MAX_IOV) {
                    let part = if i == 0 {
                        &chunk[st.head..]
                    } else {
                        &chunk[..]
                    };
                    iov[k] = IoSlice::new(part);
                    batch += part.len();
                    k += 1;
                }
                self.send_iov(&iov[..k]).map(|n| (n, batch))
            };
            match res {
                Ok((n, batch)) => {
                    let mut st = self.driver.st.borrow_mut();
                    consume(&mut st, n);
                    if n < batch || st.wsize == 0 {
                        break;
                    }
                }
                Err(Errno::AGAIN) => break,
                Err(e) => {
                    self.fatal_os(e.into(), "send");
                    return;
                }
            }
        }
        self.maybe_resume();
        let life = self.lifecycle();
        let (empty, shutdown, wakers) = {
            let mut st = self.driver.st.borrow_mut();
            if st.wsize > 0 || life.lost_scheduled() {
                return;
            }
            let was_watching = std::mem::replace(&mut st.want_write, false);
            let shutdown = !life.is_closing() && st.eof_requested && !st.eof_sent;
            if shutdown {
                st.eof_sent = true;
            }
            (was_watching, shutdown, std::mem::take(&mut st.flush_wakers))
        };
        if empty {
            self.update_interest();
        }
        for w in wakers {
            w.wake();
        }
        if life.is_closing() {
            self.schedule_lost(None);
        } else if shutdown {
            self.shutdown_write();
        }
    }

    /// Ready once the write buffer is empty; `BrokenPipe` if buffered data was discarded.
    pub(super) fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.driver.st.borrow_mut();
        if st.unsent_lost {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection was lost with data still buffered",
            )));
        }
        if st.wsize == 0 {
            return Poll::Ready(Ok(()));
        }
        if !st.flush_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.flush_wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Appends to the write buffer, coalescing small writes.
fn push_chunk(st: &mut StreamState, data: &[u8]) {
    st.wsize += data.len();
    if data.len() <= COALESCE_MAX {
        if let Some(last) = st.wbuf.back_mut() {
            if last.len() + data.len() <= CHUNK_MAX {
                last.extend_from_slice(data);
                return;
            }
        }
        let mut v = Vec::with_capacity(COALESCE_MAX.max(data.len()));
        v.extend_from_slice(data);
        st.wbuf.push_back(v);
    } else {
        st.wbuf.push_back(data.to_vec());
    }
}

/// Drops `n` sent bytes from the front of the write buffer.
fn consume(st: &mut StreamState, mut n: usize) {
    st.wsize -= n;
    while n > 0 {
        let Some(front) = st.wbuf.front() else { break };
        let rest = front.len() - st.head;
        if n >= rest {
            n -= rest;
            st.wbuf.pop_front();
            st.head = 0;
        } else {
            st.head += n;
            n = 0;
        }
    }
}
