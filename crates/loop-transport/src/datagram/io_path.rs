//! The datagram transport's I/O: bursts of `recvfrom`, direct sends, the send queue.

use loop_core::{Error, Result};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketAddrAny};

use super::{DgramDriver, MAX_DATAGRAM_READ};
use crate::addr::Addr;
use crate::engine::hooks::Readiness;
use crate::engine::{Core, Note, Policy};

/// Bookkeeping bytes counted per queued datagram in the write-buffer size (NET-77).
const QUEUE_OVERHEAD: usize = 8;
/// Datagrams read in one readiness event before yielding to other work.
const MAX_READS_PER_EVENT: u32 = 64;

impl Core<DgramDriver> {
    /// Read interest while open, write interest while datagrams are queued.
    pub(super) fn update_interest(&self) {
        let life = self.lifecycle();
        let write = self.driver.st.borrow().want_write && !life.is_lost();
        let io = self.driver.io.borrow();
        if let Err(e) = io.set_interest(life.is_open(), write) {
            tracing::debug!("epoll_ctl failed for fd {}: {e}", self.driver.raw);
        }
    }

    /// Reads datagrams until `WouldBlock`, at most [`MAX_READS_PER_EVENT`] per event.
    pub(super) fn read_ready(&self) {
        self.driver.st.borrow_mut().burst = 0;
        loop {
            if !self.lifecycle().is_open() {
                return;
            }
            {
                let mut st = self.driver.st.borrow_mut();
                if st.burst >= MAX_READS_PER_EVENT {
                    drop(st);
                    self.schedule_ready(Readiness::READABLE);
                    return;
                }
                st.burst += 1;
            }
            let go_on = self.runtime().with_read_buf(MAX_DATAGRAM_READ, |buf| {
                let res = {
                    let io = self.driver.io.borrow();
                    match io.fd() {
                        Some(fd) => rustix::net::recvfrom(fd, &mut *buf, RecvFlags::DONTWAIT),
                        None => Err(Errno::BADF),
                    }
                };
                match res {
                    Ok((n, _, from)) => {
                        let from = Addr::from_rustix(from);
                        let data = &buf[..n];
                        self.call("datagram_received", Policy::Fatal, |p| {
                            p.datagram_received(data, &from)
                        })
                        .is_ok()
                    }
                    Err(Errno::AGAIN) => false,
                    Err(Errno::INTR) => true,
                    Err(Errno::BADF) => false,
                    Err(e) => {
                        self.notify(Note::Event(e.into()));
                        true
                    }
                }
            });
            if !go_on {
                return;
            }
        }
    }

    /// Sends one datagram.
    fn send_one(&self, data: &[u8], to: Option<&SocketAddrAny>) -> rustix::io::Result<usize> {
        let io = self.driver.io.borrow();
        let fd = io.fd().ok_or(Errno::BADF)?;
        let flags = SendFlags::DONTWAIT | crate::sys::SEND_NOSIGNAL;
        loop {
            let r = match to {
                Some(a) => rustix::net::sendto(fd, data, flags, a),
                None => rustix::net::send(fd, data, flags),
            };
            match r {
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// Sends queued datagrams in order until the queue is empty or the socket would block.
    pub(super) fn write_ready(&self) {
        loop {
            let item = {
                let mut st = self.driver.st.borrow_mut();
                if self.lifecycle().lost_scheduled() {
                    return;
                }
                match st.queue.pop_front() {
                    Some(item) => {
                        st.qsize -= item.0.len() + QUEUE_OVERHEAD;
                        item
                    }
                    None => break,
                }
            };
            match self.send_one(&item.0, item.1.as_ref()) {
                Ok(_) => {}
                Err(Errno::AGAIN) => {
                    let mut st = self.driver.st.borrow_mut();
                    st.qsize += item.0.len() + QUEUE_OVERHEAD;
                    st.queue.push_front(item);
                    break;
                }
                // The datagram is dropped; the rest still goes out.
                Err(e) => self.notify(Note::Event(e.into())),
            }
        }
        self.maybe_resume();
        let life = self.lifecycle();
        let stop_watching = {
            let mut st = self.driver.st.borrow_mut();
            if !st.queue.is_empty() || life.lost_scheduled() {
                return;
            }
            std::mem::replace(&mut st.want_write, false)
        };
        if stop_watching {
            self.update_interest();
        }
        if life.is_closing() {
            self.schedule_lost(None);
        }
    }

    /// NET-75 .. NET-77.
    pub(super) fn sendto(&self, data: &[u8], addr: Option<&Addr>) -> Result<()> {
        let d = &self.driver;
        let target = match (&d.address, addr) {
            (Some(default), Some(a)) if a != default => {
                return Err(Error::invalid_argument(format!(
                    "Invalid address: must be None or {default}"
                )))
            }
            (Some(default), _) => {
                if d.connected {
                    None
                } else {
                    Some(default.to_rustix()?)
                }
            }
            (None, Some(a)) => Some(a.to_rustix()?),
            (None, None) if d.connected => None,
            (None, None) => {
                return Err(Error::invalid_argument(
                    "sendto() needs an address: this endpoint was made without remote_addr",
                ))
            }
        };
        if self.lifecycle().is_closing() {
            if self.count_dropped_write() {
                tracing::warn!("socket.send() raised exception.");
            }
            return Ok(());
        }
        let queue_now = !d.st.borrow().queue.is_empty();
        if !queue_now {
            match self.send_one(data, target.as_ref()) {
                Ok(_) => return Ok(()),
                Err(Errno::AGAIN) => {}
                Err(e) => {
                    self.notify(Note::Event(e.into()));
                    return Ok(());
                }
            }
        }
        let first = {
            let mut st = d.st.borrow_mut();
            st.qsize += data.len() + QUEUE_OVERHEAD;
            st.queue.push_back((data.to_vec(), target));
            !std::mem::replace(&mut st.want_write, true)
        };
        self.buffered(first);
        Ok(())
    }
}
