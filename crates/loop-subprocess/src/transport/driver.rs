//! The subprocess transport's driver: the engine hooks, the events of the pipes and of the
//! exit, `close()`, the exit watchers, and what closing the loop does to a running child.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use loop_core::{EventLoop, Remote, Result};
use loop_transport::engine::{Core, Driver, LiveKey, Note, Policy, Runtime};
use loop_transport::{Protocol, Transport};
use rustix::process::Signal;

use super::{Event, SubProto, SubprocessDriver, SubprocessTransport, Watch};
use crate::child::{self, Child, ReapGuard, EXIT_FD_KIND, REAPED_ELSEWHERE};
use crate::options::ExitWatcher;

/// The engine core of a subprocess transport.
type Sub = Core<SubprocessDriver>;

impl Driver for SubprocessDriver {
    type Protocol = SubProto;
    type Event = Event;
    /// A panic in any subprocess protocol method is reported and the transport goes on.
    const MADE_POLICY: Policy = Policy::Report;

    fn describe(core: &Sub, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &core.driver;
        let st = d.st.borrow();
        write!(f, "<SubprocessTransport pid={}", d.info.pid)?;
        if st.closed {
            f.write_str(" closed")?;
        }
        match st.returncode {
            Some(rc) => write!(f, " returncode={rc}")?,
            None => f.write_str(" running")?,
        }
        match st.watch {
            Watch::ExitFd(fd) => write!(f, " watched-by={EXIT_FD_KIND}:{fd}")?,
            Watch::Thread => f.write_str(" watched-by=thread")?,
            Watch::None | Watch::Done => {}
        }
        for (fd, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            if let Some(p) = &st.pipes[fd] {
                match p.transport.fileno() {
                    Some(n) => write!(f, " {name}=<pipe fd={n}>")?,
                    None => write!(f, " {name}=<closed pipe>")?,
                }
            }
        }
        f.write_str(">")
    }

    fn handle(core: &Rc<Sub>) -> SubprocessTransport {
        SubprocessTransport {
            inner: core.clone(),
        }
    }

    fn deliver_event(core: &Sub, event: Event) {
        let _ = match event {
            Event::Data(fd, data) => core.call("pipe_data_received", Policy::Report, |p| {
                p.0.pipe_data_received(fd, &data)
            }),
            Event::PipeLost(fd, exc) => core.call("pipe_connection_lost", Policy::Report, |p| {
                p.0.pipe_connection_lost(fd, exc)
            }),
            Event::Exited => core.call("process_exited", Policy::Report, |p| p.0.process_exited()),
        };
    }

    /// After `connection_made` (and what queued up meanwhile): maybe everything is in.
    fn started(core: &Sub) {
        SubprocessDriver::try_finish(core);
    }

    /// After `connection_lost`: wakes `wait()`ers (the engine then lets go of the protocol,
    /// breaking the protocol ↔ transport cycle, and leaves the live set).
    fn release(core: &Sub) {
        let (waiters, rc) = {
            let mut st = core.driver.st.borrow_mut();
            (std::mem::take(&mut st.exit_waiters), st.returncode)
        };
        let rc = rc.unwrap_or(REAPED_ELSEWHERE);
        for w in waiters {
            if !w.done() {
                let _ = w.set_result(rc);
            }
        }
    }

    /// The loop is closing: a child still running is killed and collected (asyncio kills it
    /// when its unclosed transport is collected); the protocol is let go of without
    /// `connection_lost`, as for every transport.
    fn loop_closed(core: &Sub, lp: &EventLoop) {
        let d = &core.driver;
        if !d.child.has_exited() {
            tracing::debug!(
                "the loop closed while child pid {} was running: killing it",
                d.child.pid()
            );
            let _ = d.child.signal(Some(Signal::KILL));
        }
        let watch = d.st.borrow().watch;
        match watch {
            Watch::ExitFd(raw) => {
                let _ = lp.remove_reader(raw);
                let rc = d.child.reap_blocking();
                d.child.close_exit_fd();
                d.st.borrow_mut().returncode.get_or_insert(rc);
            }
            // The waiter thread collects the status when it finds the loop closed.
            Watch::Thread => drop(d.thread.borrow_mut().take()),
            Watch::None => {
                let rc = d.child.reap_blocking();
                d.st.borrow_mut().returncode.get_or_insert(rc);
            }
            Watch::Done => {}
        }
        let mut st = d.st.borrow_mut();
        st.watch = Watch::Done;
        st.exit_waiters.clear();
    }
}

/// The protocol of a pipe transport of `subprocess_exec`: forwards to the subprocess protocol.
pub(super) struct PipeProto {
    /// The child fd (0, 1, 2).
    pub(super) fd: usize,
    /// The subprocess transport.
    pub(super) core: Weak<Sub>,
}

impl Protocol for PipeProto {
    fn data_received(&mut self, data: &[u8]) {
        if let Some(c) = self.core.upgrade() {
            SubprocessDriver::pipe_data(&c, self.fd, data);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(c) = self.core.upgrade() {
            c.notify(Note::Pause);
        }
    }

    fn resume_writing(&mut self) {
        if let Some(c) = self.core.upgrade() {
            c.notify(Note::Resume);
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(c) = self.core.upgrade() {
            SubprocessDriver::pipe_lost(&c, self.fd, exc);
        }
    }
}

impl SubprocessDriver {
    /// The setup failed or was cancelled: the protocol is never called (nothing queued is
    /// delivered), the pipes are closed and the child killed.
    pub(super) fn abandon(core: &Rc<Sub>) {
        if !core.lifecycle().made() {
            core.skip_made();
            core.cell().detach();
        }
        SubprocessDriver::close(core);
        SubprocessDriver::try_finish(core);
    }

    /// Data from the child's stdout or stderr: delivered at once when nothing is queued or
    /// running (no copy), else queued.
    fn pipe_data(core: &Rc<Sub>, fd: usize, data: &[u8]) {
        if core.cell().is_quiet() {
            let _ = core.call("pipe_data_received", Policy::Report, |p| {
                p.0.pipe_data_received(fd as i32, data)
            });
        } else {
            core.notify(Note::Event(Event::Data(fd as i32, data.to_vec())));
        }
    }

    /// A pipe transport's `connection_lost` ran.
    pub(super) fn pipe_lost(core: &Rc<Sub>, fd: usize, exc: Option<io::Error>) {
        {
            let mut st = core.driver.st.borrow_mut();
            match st.pipes.get_mut(fd).and_then(Option::as_mut) {
                Some(p) if !p.disconnected => p.disconnected = true,
                _ => return,
            }
        }
        if core.loop_ref().get_open().is_none() {
            return;
        }
        core.notify(Note::Event(Event::PipeLost(fd as i32, exc)));
        SubprocessDriver::try_finish(core);
    }

    /// The child exited with `rc`.
    pub(super) fn process_exited(core: &Rc<Sub>, rc: i32) {
        core.driver.st.borrow_mut().returncode = Some(rc);
        if core.get_loop().is_some_and(|lp| lp.get_debug()) {
            tracing::info!("{} exited with return code {rc}", core.describe());
        }
        core.notify(Note::Event(Event::Exited));
        SubprocessDriver::try_finish(core);
    }

    /// Schedules `connection_lost` once `connection_made` ran, the child exited and every
    /// pipe closed.
    fn try_finish(core: &Sub) {
        let ready = {
            let st = core.driver.st.borrow();
            let life = core.lifecycle();
            life.made()
                && !life.lost_scheduled()
                && st.returncode.is_some()
                && st
                    .pipes
                    .iter()
                    .all(|p| p.as_ref().map_or(true, |p| p.disconnected))
        };
        if ready {
            core.schedule_lost(None);
        }
    }

    /// `close()`: closes the pipes; kills the child if it has not exited (SUB-10).
    pub(super) fn close(core: &Sub) {
        let d = &core.driver;
        let pipes: Vec<Transport> = {
            let mut st = d.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.pipes
                .iter()
                .flatten()
                .map(|p| p.transport.clone())
                .collect()
        };
        for t in pipes {
            t.close();
        }
        if !d.child.has_exited() {
            if core.get_loop().is_some_and(|lp| lp.get_debug()) {
                tracing::warn!("Close running child process: kill pid {}", d.child.pid());
            } else {
                tracing::debug!("Close running child process: kill pid {}", d.child.pid());
            }
            let _ = d.child.signal(Some(Signal::KILL));
        }
    }

    /// Starts watching for the exit (see [`ExitWatcher`]): with the exit fd (pidfd, or kqueue
    /// process filter) where there is one, else — or if it cannot be opened — with a thread.
    pub(super) fn start_watch(core: &Rc<Sub>, lp: &EventLoop, watcher: ExitWatcher) -> Result<()> {
        #[cfg(any(exit_pidfd, exit_kqueue))]
        if watcher == ExitWatcher::Auto {
            match SubprocessDriver::start_exit_fd(core, lp) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(
                    "no {EXIT_FD_KIND} for pid {} ({e}); watching it with a thread",
                    core.driver.child.pid()
                ),
            }
        }
        let _ = watcher;
        SubprocessDriver::start_thread(core, lp)
    }

    #[cfg(any(exit_pidfd, exit_kqueue))]
    fn start_exit_fd(core: &Rc<Sub>, lp: &EventLoop) -> Result<()> {
        let weak = Rc::downgrade(core);
        let raw = core.driver.child.with_new_exit_fd(|fd| {
            let raw = fd.as_raw_fd();
            lp.add_reader(fd, move |lp| match weak.upgrade() {
                Some(core) => SubprocessDriver::exit_fd_ready(&core, lp, raw),
                None => {
                    let _ = lp.remove_reader(raw);
                }
            })?;
            Ok(raw)
        })?;
        core.driver.st.borrow_mut().watch = Watch::ExitFd(raw);
        Ok(())
    }

    /// The exit fd is readable: the child exited.
    #[cfg(any(exit_pidfd, exit_kqueue))]
    fn exit_fd_ready(core: &Rc<Sub>, lp: &EventLoop, raw: RawFd) {
        let Some(rc) = core.driver.child.try_reap() else {
            // kqueue posts NOTE_EXIT while the kernel is still tearing the process down, so
            // the status may not be collectable yet; the kqueue stays readable until it is
            // read, so rather than poll it again, hand the last microseconds to a waiter
            // thread (`waitid(WNOWAIT)` returns as soon as the status is there). A pidfd is
            // readable only once the child is a zombie, whose status can be collected.
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                let _ = lp.remove_reader(raw);
                core.driver.child.close_exit_fd();
                if let Err(e) = SubprocessDriver::start_thread(core, lp) {
                    tracing::warn!(
                        "cannot start a waiter thread for pid {} ({e}); collecting its status here",
                        core.driver.child.pid()
                    );
                    let rc = core.driver.child.reap_blocking();
                    core.driver.st.borrow_mut().watch = Watch::Done;
                    SubprocessDriver::process_exited(core, rc);
                }
            }
            return;
        };
        let _ = lp.remove_reader(raw);
        core.driver.child.close_exit_fd();
        core.driver.st.borrow_mut().watch = Watch::Done;
        SubprocessDriver::process_exited(core, rc);
    }

    fn start_thread(core: &Rc<Sub>, lp: &EventLoop) -> Result<()> {
        let child = core.driver.child.clone();
        let remote = lp.remote();
        let key = core.live_key().map_or(u64::MAX, LiveKey::as_raw);
        let handle = std::thread::Builder::new()
            .name(child::next_thread_name())
            .spawn(move || waiter_thread(child, remote, key))?;
        *core.driver.thread.borrow_mut() = Some(handle);
        core.driver.st.borrow_mut().watch = Watch::Thread;
        Ok(())
    }

    /// The waiter thread saw the exit; collect the status here, on the loop's thread.
    fn thread_reported(core: &Rc<Sub>) {
        let d = &core.driver;
        let rc = match d.child.try_reap() {
            Some(rc) => rc,
            None => d.child.reap_blocking(),
        };
        let handle = d.thread.borrow_mut().take();
        if let Some(h) = handle {
            // It is returning from `call_soon_threadsafe`: this does not wait.
            let _ = h.join();
        }
        d.st.borrow_mut().watch = Watch::Done;
        SubprocessDriver::process_exited(core, rc);
    }
}

/// The body of a waiter thread: waits for the exit without collecting it, then hands the child
/// to the loop. If the loop is closed, the message is dropped and its guard collects the
/// status here.
fn waiter_thread(child: Arc<Child>, remote: Remote, key: u64) {
    child.wait_exit_nowait();
    let pid = child.pid();
    let guard = ReapGuard(Some(child));
    let sent = remote.call_soon_threadsafe(move |lp| {
        let mut guard = guard;
        let Some(child) = guard.disarm() else { return };
        let core = Runtime::get(lp)
            .lookup(LiveKey::from_raw(key))
            .and_then(|t| t.into_any().downcast::<Sub>().ok());
        match core {
            Some(core) => SubprocessDriver::thread_reported(&core),
            None => {
                child.try_reap();
            }
        }
    });
    if sent.is_err() {
        tracing::warn!("Loop that handles pid {pid} is closed");
    }
}
