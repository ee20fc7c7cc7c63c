//! The Linux backend: epoll through rustix, and an eventfd that wakes the loop.
//!
//! evloop talks to epoll directly instead of going through `polling`: `polling`'s epoll `wait`
//! re-arms a timerfd and its notifier on every call (five system calls per wait), while an
//! event loop needs exactly one (`epoll_wait`) on its hot path.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::epoll;
use rustix::io::Errno;

use super::shared::{borrow_registered, Interest, WAKE_KEY};
use crate::readiness::Readiness;

/// The loop's wake-up: its eventfd, registered in the epoll set under [`WAKE_KEY`].
pub(crate) use crate::wake::EventFd as Waker;

/// epoll reports hang-ups and errors (`EPOLLHUP`, `EPOLLRDHUP`, `EPOLLERR`).
pub(crate) const HANGUP_REPORTED: bool = true;

/// The fds a loop keeps open: the epoll fd and the eventfd.
pub(crate) const LOOP_FDS: usize = 2;

/// The epoll set.
pub(crate) struct Poller {
    /// The epoll fd; `None` once closed.
    ep: RefCell<Option<OwnedFd>>,
}

/// The buffer `epoll_wait` fills.
pub(crate) struct Events(Vec<epoll::Event>);

impl Events {
    /// Room for `n` events per wait.
    pub(crate) fn with_capacity(n: usize) -> Events {
        Events(Vec::with_capacity(n))
    }

    /// How many events the last wait returned.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The `i`-th event of the last wait: (key, readiness).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<(u64, Readiness)> {
        self.0.get(i).map(|ev| (ev.data.u64(), readiness(ev.flags)))
    }
}

impl Poller {
    /// A new epoll set with a new eventfd in it, and the eventfd as the loop's waker.
    pub(crate) fn new() -> io::Result<(Poller, Waker)> {
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &ep,
            wake.as_fd(),
            epoll::EventData::new_u64(WAKE_KEY),
            epoll::EventFlags::IN,
        )?;
        Ok((
            Poller {
                ep: RefCell::new(Some(ep)),
            },
            Waker::new(wake),
        ))
    }

    /// Registers `fd` under `key` (or changes its registration if it is already in the set).
    pub(crate) fn add(&self, fd: RawFd, key: u64, interest: Interest) -> io::Result<()> {
        let ep = self.ep.borrow();
        let Some(ep) = ep.as_ref() else {
            return Err(Errno::BADF.into());
        };
        let (fd, data, flags) = (
            borrow_registered(fd),
            epoll::EventData::new_u64(key),
            flags(interest),
        );
        match epoll::add(ep, fd, data, flags) {
            Err(Errno::EXIST) => epoll::modify(ep, fd, data, flags)?,
            r => r?,
        }
        Ok(())
    }

    /// Changes the registration of `fd` (or adds it if it is not in the set).
    pub(crate) fn modify(&self, fd: RawFd, key: u64, interest: Interest) -> io::Result<()> {
        let ep = self.ep.borrow();
        let Some(ep) = ep.as_ref() else {
            return Err(Errno::BADF.into());
        };
        let (fd, data, flags) = (
            borrow_registered(fd),
            epoll::EventData::new_u64(key),
            flags(interest),
        );
        match epoll::modify(ep, fd, data, flags) {
            Err(Errno::NOENT) => epoll::add(ep, fd, data, flags)?,
            r => r?,
        }
        Ok(())
    }

    /// Removes `fd` from the set. EBADF / ENOENT are ignored: the fd was closed (which removes
    /// it from epoll) or never added.
    pub(crate) fn delete(&self, fd: RawFd) {
        if let Some(ep) = self.ep.borrow().as_ref() {
            let _ = epoll::delete(ep, borrow_registered(fd));
        }
    }

    /// Waits up to `timeout` (forever if `None`) and fills `events`. Returns true if the loop
    /// is known to have been woken without an event saying so: never here (the eventfd's
    /// event, under [`WAKE_KEY`], says it). Interrupted waits return no events; other errors
    /// are logged (a closed poller returns at once).
    #[inline]
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> bool {
        let ts = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: d.subsec_nanos() as _,
        });
        events.0.clear();
        let ep = self.ep.borrow();
        let Some(ep) = ep.as_ref() else {
            return false;
        };
        match epoll::wait(
            ep,
            rustix::buffer::spare_capacity(&mut events.0),
            ts.as_ref(),
        ) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => tracing::error!("epoll_wait failed: {e}"),
        }
        false
    }

    /// Closes the epoll fd; later calls do nothing (or fail with EBADF).
    pub(crate) fn close(&self) {
        *self.ep.borrow_mut() = None;
    }
}

/// epoll flags for `interest`.
#[inline]
fn flags(interest: Interest) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if interest.contains(Interest::READ) {
        f |= epoll::EventFlags::IN;
        if interest.contains(Interest::READ_CLOSED) {
            f |= epoll::EventFlags::RDHUP;
        }
    }
    if interest.contains(Interest::WRITE) {
        f |= epoll::EventFlags::OUT;
    }
    if interest.contains(Interest::EDGE) {
        f |= epoll::EventFlags::ET;
    }
    f
}

/// The readiness an epoll event reports.
#[inline]
fn readiness(flags: epoll::EventFlags) -> Readiness {
    let mut r = Readiness::EMPTY;
    if flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::PRI) {
        r = r | Readiness::READABLE;
    }
    if flags.contains(epoll::EventFlags::OUT) {
        r = r | Readiness::WRITABLE;
    }
    if flags.intersects(epoll::EventFlags::ERR | epoll::EventFlags::HUP) {
        r = r | Readiness::ERROR;
    }
    if flags.contains(epoll::EventFlags::RDHUP) {
        r = r | Readiness::READ_CLOSED;
    }
    r
}
