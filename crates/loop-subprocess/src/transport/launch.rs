//! Spawning a child and connecting its pipes: the common part of the four public functions.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use loop_core::{Error, EventLoop, Result};
use loop_transport::engine::{Core, Flow};
use loop_transport::{
    StreamReader, StreamReaderProtocol, StreamWriter, Transport, TransportOptions,
};
use rustix::process::Signal;

use super::driver::PipeProto;
use super::{
    Pipe, ProcessInfo, State, SubProto, SubprocessDriver, SubprocessProtocol, SubprocessTransport,
    Watch,
};
use crate::child::{self, Defaults};
use crate::options::{self, SubprocessOptions};

/// The engine core of a subprocess transport.
type Sub = Core<SubprocessDriver>;

/// How the pipes are connected.
pub(crate) enum Mode {
    /// To the subprocess protocol (`subprocess_exec`).
    Forward,
    /// To streams (`create_subprocess_exec`), with this reader limit.
    Streams(usize),
}

/// The streams made in [`Mode::Streams`].
#[derive(Default)]
pub(crate) struct Streams {
    /// stdin.
    pub(crate) stdin: Option<StreamWriter>,
    /// stdout.
    pub(crate) stdout: Option<StreamReader>,
    /// stderr.
    pub(crate) stderr: Option<StreamReader>,
}

/// Abandons a setup that did not complete (error or cancellation, SUB-12, SUB-13): the child is
/// killed and collected, the pipes closed, the protocol never called.
struct SetupGuard(Option<Rc<Sub>>);

impl Drop for SetupGuard {
    fn drop(&mut self) {
        if let Some(core) = self.0.take() {
            SubprocessDriver::abandon(&core);
        }
    }
}

/// Spawns and connects a child: the common part of the four public functions.
pub(crate) async fn launch(
    lp: EventLoop,
    protocol: Box<dyn SubprocessProtocol>,
    program: OsString,
    args: Vec<OsString>,
    mut options: SubprocessOptions,
    defaults: Defaults,
    mode: Mode,
) -> Result<(SubprocessTransport, Streams)> {
    options::validate(&program, &args, &options)?;
    if lp.is_closed() {
        return Err(Error::Closed);
    }
    let watcher = options.exit_watcher;
    let spawned = child::spawn(&program, &args, &mut options, defaults)?;
    let info = Rc::new(ProcessInfo {
        pid: spawned.child.pid(),
        program,
        args,
    });
    let driver = SubprocessDriver {
        child: spawned.child,
        info: info.clone(),
        st: RefCell::new(State {
            returncode: None,
            closed: false,
            pipes: [None, None, None],
            exit_waiters: Vec::new(),
            watch: Watch::None,
        }),
        thread: RefCell::new(None),
    };
    let core = Core::new(&lp, SubProto(protocol), Flow::default(), driver);
    // Events wait for connection_made.
    core.cell().hold();
    core.make_live();
    let mut guard = SetupGuard(Some(core.clone()));
    if let Err(e) = SubprocessDriver::start_watch(&core, &lp, watcher) {
        // Nobody would collect the child: kill and collect it now.
        let child = &core.driver.child;
        let _ = child.signal(Some(Signal::KILL));
        let rc = child.reap_blocking();
        core.driver.st.borrow_mut().watch = Watch::Done;
        SubprocessDriver::process_exited(&core, rc);
        return Err(e);
    }

    let mut streams = Streams::default();
    let mut waiters = Vec::new();
    for (fd, end) in spawned.pipes.into_iter().enumerate() {
        let Some(end) = end else { continue };
        let waiter = lp.create_future::<()>();
        waiters.push(waiter.clone());
        let opts = if fd == 0 {
            TransportOptions::write_pipe()
        } else {
            TransportOptions::read_pipe()
        }
        .waiter(waiter)
        .extra("subprocess", info.clone() as Rc<dyn Any>);
        let t = connect_pipe(&core, &lp, fd, end, opts, &mode, &mut streams)?;
        core.driver.st.borrow_mut().pipes[fd] = Some(Pipe {
            transport: t,
            disconnected: false,
        });
    }
    for w in waiters {
        w.await?;
    }
    let made = lp.create_future::<()>();
    let m = made.clone();
    let me = core.clone();
    lp.call_soon(move |_| {
        me.deliver_made();
        let _ = m.set_result(());
    })?;
    made.await?;
    guard.0 = None;
    Ok((SubprocessTransport { inner: core }, streams))
}

/// Makes the pipe transport of child fd `fd`.
fn connect_pipe(
    core: &Rc<Sub>,
    lp: &EventLoop,
    fd: usize,
    end: OwnedFd,
    opts: TransportOptions,
    mode: &Mode,
    streams: &mut Streams,
) -> Result<Transport> {
    let core = Rc::downgrade(core);
    match *mode {
        Mode::Forward => Transport::new(lp, end, PipeProto { fd, core }, opts),
        Mode::Streams(limit) => {
            let opts = opts.on_connection_lost(move || {
                if let Some(c) = core.upgrade() {
                    SubprocessDriver::pipe_lost(&c, fd, None);
                }
            });
            if fd == 0 {
                let t = Transport::new(lp, end, StreamReaderProtocol::new(None), opts)?;
                streams.stdin = Some(StreamWriter::new(t.clone())?);
                Ok(t)
            } else {
                let reader = StreamReader::with_limit(limit)?;
                let t = Transport::new(lp, end, StreamReaderProtocol::new(Some(&reader)), opts)?;
                reader.set_transport(t.clone());
                if fd == 1 {
                    streams.stdout = Some(reader);
                } else {
                    streams.stderr = Some(reader);
                }
                Ok(t)
            }
        }
    }
}
