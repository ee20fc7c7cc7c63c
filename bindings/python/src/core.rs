//! `LoopCore`: the native half of `evloop.Loop` (the Python class adds what asyncio does in
//! Python around it). It owns a `loop_core::EventLoop` on the thread that created it, and
//! implements what runs per callback natively: scheduling (`call_soon`, `call_later`,
//! `call_at`, `call_soon_threadsafe`), the run itself, futures and tasks, fd watchers, the
//! clock and debug settings.

use std::cell::RefCell;
use std::os::fd::{BorrowedFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use loop_core::internal::{IoHandler, LoopInternals};
use loop_core::{EventLoop, Readiness, Remote};
use loop_timers::TimersExt;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyTraverseError;
use pyo3::{ffi, intern};

use crate::bound::ThreadBound;
use crate::handle::{self, Handle, Queued, TimerHandle};
use crate::running::{self, Flags, Soon, State};
use crate::stream::{self, ProtocolCache, StreamRead};
use crate::threadsafe::Threadsafe;
use crate::{clock, errors, gil, pool};

/// `("loop",)`: the keyword names of `Future(loop=...)`.
static LOOP_KWNAMES: pyo3::sync::PyOnceLock<Py<PyTuple>> = pyo3::sync::PyOnceLock::new();

/// The loop's thread-bound part.
struct Core {
    lp: EventLoop,
    state: Rc<State>,
    /// The handler that runs the `call_soon` callbacks of `state.soon` ([`Soon`]).
    soon: Rc<dyn IoHandler>,
}

/// The handles of an fd's reader and writer (`None`: not watched).
type WatcherPair = (Option<Py<Handle>>, Option<Py<Handle>>);

/// The native part of `evloop.Loop`.
#[pyclass(
    module = "evloop._evloop",
    name = "LoopCore",
    subclass,
    frozen,
    weakref,
    dict
)]
pub struct LoopCore {
    core: ThreadBound<Core>,
    remote: Remote,
    /// The handles of `call_soon_threadsafe` from other threads, waiting for their drain.
    ts: Arc<Threadsafe>,
    flags: Arc<Flags>,
    running: AtomicBool,
}

const WRONG_THREAD: &str = "Non-thread-safe operation invoked on an event loop other than the \
    current one: an evloop loop is used only on the thread that created it (other threads: \
    call_soon_threadsafe, or asyncio.run_coroutine_threadsafe)";

impl LoopCore {
    fn core(&self) -> PyResult<&Core> {
        self.core
            .get()
            .ok_or_else(|| PyRuntimeError::new_err(WRONG_THREAD))
    }

    fn check_closed(&self) -> PyResult<()> {
        if self.remote.is_closed() {
            Err(PyRuntimeError::new_err("Event loop is closed"))
        } else {
            Ok(())
        }
    }

    /// A handle of `callback(*args)` in `context` (a copy of the current context if `None`).
    fn make_handle(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        method: &str,
    ) -> PyResult<Handle> {
        let (context, copied) = context_or_copy(py, context)?;
        let tb = if self.flags.debug() {
            check_callback(py, &callback, method)?;
            Some(crate::helpers(py)?.extract_stack.bind(py).call0()?.unbind())
        } else {
            None
        };
        Ok(Handle::new(
            callback.unbind(),
            args.unbind(),
            context,
            copied,
            tb,
        ))
    }

    /// Schedules the handle `base` as a timer due at `deadline` (`when` in `time()`'s
    /// seconds).
    fn schedule_timer(
        &self,
        py: Python<'_>,
        when: f64,
        deadline: Instant,
        base: Handle,
    ) -> PyResult<Py<TimerHandle>> {
        self.check_closed()?;
        let core = self.core()?;
        let h = Py::new(
            py,
            PyClassInitializer::from(base).add_subclass(TimerHandle::new(when)),
        )?;
        let run = Queued::new(h.bind(py));
        let state = core.state.clone();
        let timer = core
            .lp
            .call_at(deadline, move |_| {
                let py = gil::attached();
                let h = run.take(py);
                let r = handle::run(py, h.as_super(), Some(&state));
                drop(h);
                if let Err(e) = r {
                    state.fatal(e)
                }
            })
            .map_err(errors::to_py)?;
        h.get().attach(timer);
        Ok(h)
    }

    /// `call_soon`: schedules `callback(*args)` for the next iteration (called by
    /// [`crate::fast`], which parses the arguments).
    pub(crate) fn call_soon(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        self.soon(py, callback, args, context, "call_soon")
    }

    /// Queues a handle of `callback(*args)` in the loop's `call_soon` FIFO (`method` names
    /// the caller in debug mode's errors). The loop's thread only.
    fn soon(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        method: &str,
    ) -> PyResult<Py<Handle>> {
        self.check_closed()?;
        let core = self.core()?;
        let h = pool::new_handle(py, self.make_handle(py, callback, args, context, method)?)?;
        let run = Queued::new(h.bind(py));
        core.state.soon.borrow_mut().push_back(run);
        if let Err(e) = core.lp.schedule_io(core.soon.clone(), Readiness::EMPTY) {
            let run = core.state.soon.borrow_mut().pop_back();
            drop(run);
            return Err(errors::to_py(e));
        }
        // Behind the drain of the open batch of threadsafe handles, if any (the core's queue
        // took the drain in before this entry): later ones go behind this one.
        self.ts.seal(py);
        Ok(h)
    }

    /// Schedules `callback(*args)` after `delay` seconds.
    pub(crate) fn call_later(
        &self,
        py: Python<'_>,
        delay: Option<f64>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let delay = delay.ok_or_else(|| PyTypeError::new_err("delay must not be None"))?;
        let now = Instant::now();
        let when = clock::secs_of(now) + delay;
        let deadline = clock::after(now, delay);
        let base = self.make_handle(py, callback, args, context, "call_later")?;
        self.schedule_timer(py, when, deadline, base)
    }

    /// Schedules `callback(*args)` at `when`, in `time()`'s seconds.
    pub(crate) fn call_at(
        &self,
        py: Python<'_>,
        when: Option<f64>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let when = when.ok_or_else(|| PyTypeError::new_err("when cannot be None"))?;
        let deadline = clock::instant_of(when);
        let base = self.make_handle(py, callback, args, context, "call_at")?;
        self.schedule_timer(py, when, deadline, base)
    }

    /// Schedules `callback(*args)` from any thread, and wakes the loop. On the loop's thread
    /// it is `call_soon` (as in asyncio, where both append to the ready queue; the loop is
    /// awake); from another thread the handle waits in the loop's threadsafe FIFO (see
    /// [`crate::threadsafe`]).
    pub(crate) fn call_soon_threadsafe(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        if self.core.get().is_some() {
            return self.soon(py, callback, args, context, "call_soon_threadsafe");
        }
        self.check_closed()?;
        let h = pool::new_handle(
            py,
            self.make_handle(py, callback, args, context, "call_soon_threadsafe")?,
        )?;
        let run = Queued::new(h.bind(py));
        self.ts.push(py, &self.remote, run)?;
        Ok(h)
    }

    /// Runs the core with `run` (`run_forever` or `run_once`), the GIL held (see
    /// [`crate::gil`]): a callback's `KeyboardInterrupt` / `SystemExit` ends it.
    fn run_core<R>(
        slf: &Bound<'_, Self>,
        run: impl FnOnce(&EventLoop) -> loop_core::Result<R>,
    ) -> PyResult<R> {
        let this = slf.get();
        let core = this.core()?;
        if this.running.swap(true, Ordering::AcqRel) {
            return Err(PyRuntimeError::new_err(
                "This event loop is already running",
            ));
        }
        *core.state.pyloop.borrow_mut() = Some(slf.clone().into_any().unbind());
        let previous = running::set(Some(core.state.clone()));
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&core.lp)));
        running::set(previous);
        this.running.store(false, Ordering::Release);
        let pyloop = core.state.pyloop.borrow_mut().take();
        drop(pyloop);
        let fatal = core.state.fatal.borrow_mut().take();
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(errors::to_py(e)),
            Err(payload) => match fatal {
                Some(err) => Err(err),
                None => resume_unwind(payload),
            },
        }
    }

    fn watch(
        &self,
        py: Python<'_>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        read: bool,
    ) -> PyResult<Py<Handle>> {
        self.check_closed()?;
        let core = self.core()?;
        let fd = fileno(fd)?;
        let method = if read { "add_reader" } else { "add_writer" };
        // `_add_reader(fd, _STREAM_READ, transport)`: the transport's native reader (see
        // `stream`), with a handle of `transport._read_ready` as asyncio's would have.
        let stream = if read && callback.is_exact_instance_of::<StreamRead>() {
            let tr = args.get_item(0)?;
            Some((tr.unbind(), RefCell::new(ProtocolCache::default())))
        } else {
            None
        };
        let (callback, args) = match &stream {
            Some((tr, _)) => (
                tr.bind(py).getattr(intern!(py, "_read_ready"))?,
                PyTuple::empty(py),
            ),
            None => (callback, args),
        };
        let h = Py::new(py, self.make_handle(py, callback, args, None, method)?)?;
        handle::track(h.bind(py));
        let run = h.clone_ref(py);
        let state = core.state.clone();
        let cb = move |lp: &EventLoop| {
            let py = gil::attached();
            if run.get().is_cancelled() {
                // Cancelled through its handle: the watcher goes (asyncio's selector loop
                // removes it when the fd is next ready, too), and the handle leaves the map
                // unless a newer watcher took its place.
                let key = (fd, read);
                let mine = matches!(state.watchers.borrow().get(&key), Some(w) if w.is(&run));
                if mine {
                    let old = state.watchers.borrow_mut().remove(&key);
                    // Removing a watcher the loop has just run cannot fail but on a closed
                    // loop, which has no watchers left.
                    let _ = if read {
                        lp.remove_reader(fd)
                    } else {
                        lp.remove_writer(fd)
                    };
                    drop(old);
                }
            } else {
                let r = match &stream {
                    Some((tr, cache)) => {
                        stream::read_ready(py, run.bind(py), fd, tr.bind(py), cache, &state)
                    }
                    None => handle::run(py, run.bind(py), Some(&state)),
                };
                if let Err(e) = r {
                    state.fatal(e)
                }
            }
        };
        // SAFETY: the fd number is non-negative (checked by `fileno`) and is borrowed only for
        // the registration call: the loop core keeps the number, not the borrow, and the
        // Python caller keeps owning the fd (asyncio's `add_reader` contract: remove the
        // watcher before closing the fd).
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let r = if read {
            core.lp.add_reader(borrowed, cb)
        } else {
            core.lp.add_writer(borrowed, cb)
        };
        r.map_err(errors::to_py)?;
        // The watcher this one replaced (if any) is cancelled, as asyncio's is.
        let old = core
            .state
            .watchers
            .borrow_mut()
            .insert((fd, read), h.clone_ref(py));
        if let Some(old) = old {
            old.get().cancel_parts();
        }
        Ok(h)
    }

    /// Stops the watcher of `fd` for reading (`read`) or writing, cancelling its handle;
    /// whether there was one.
    fn unwatch(&self, fd: &Bound<'_, PyAny>, read: bool) -> PyResult<bool> {
        let fd = fileno(fd)?;
        if self.is_closed() {
            return Ok(false);
        }
        let core = self.core()?;
        let removed = if read {
            core.lp.remove_reader(fd)
        } else {
            core.lp.remove_writer(fd)
        }
        .map_err(errors::to_py)?;
        let old = core.state.watchers.borrow_mut().remove(&(fd, read));
        if let Some(old) = old {
            old.get().cancel_parts();
        }
        Ok(removed)
    }
}

/// `context`, checked to be a `contextvars.Context`, or a copy of the current one; whether it
/// is a copy.
fn context_or_copy(
    py: Python<'_>,
    context: Option<Bound<'_, PyAny>>,
) -> PyResult<(Py<PyAny>, bool)> {
    match context {
        Some(c) if !c.is_none() => {
            // SAFETY: a type check of a live object, GIL held.
            if unsafe { ffi::PyContext_CheckExact(c.as_ptr()) } == 0 {
                return Err(PyTypeError::new_err(format!(
                    "context must be a contextvars.Context, not {}",
                    c.get_type().name()?
                )));
            }
            Ok((c.unbind(), false))
        }
        _ => {
            // SAFETY: GIL held; returns a new reference or NULL with an exception set.
            let ptr = unsafe { ffi::PyContext_CopyCurrent() };
            // SAFETY: `ptr` is an owned reference (or NULL, turned into the exception).
            Ok((
                unsafe { Bound::from_owned_ptr_or_err(py, ptr) }?.unbind(),
                true,
            ))
        }
    }
}

/// Debug mode's check of a callback (asyncio's `_check_callback`).
fn check_callback(py: Python<'_>, callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
    let asyncio = py.import("asyncio")?;
    let is_coro = asyncio
        .getattr("iscoroutine")?
        .call1((callback,))?
        .is_truthy()?
        || asyncio
            .getattr("iscoroutinefunction")?
            .call1((callback,))?
            .is_truthy()?;
    if is_coro {
        return Err(PyTypeError::new_err(format!(
            "coroutines cannot be used with {method}()"
        )));
    }
    if !callback.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "a callable object was expected by {method}(), got {}",
            callback.repr()?
        )));
    }
    Ok(())
}

/// The fd of an int or of an object with `fileno()` (asyncio's rule).
fn fileno(obj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = match obj.extract::<i64>() {
        Ok(fd) => fd,
        Err(_) => obj
            .call_method0("fileno")
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "Invalid file object: {}",
                    obj.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?
            .extract()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "Invalid file object: {}",
                    obj.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?,
    };
    if fd < 0 || fd > RawFd::MAX as i64 {
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        )));
    }
    Ok(fd as RawFd)
}

#[pymethods]
impl LoopCore {
    /// The task factory, for the cycle collector (a factory that references the loop).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(core) = self.core.get() {
            if let Ok(f) = core.state.task_factory.try_borrow() {
                visit.call(&*f)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Some(core) = self.core.get() {
            let f = core.state.task_factory.borrow_mut().take();
            drop(f);
        }
    }

    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let lp = EventLoop::new().map_err(errors::to_py)?;
        gil::install(&lp);
        let remote = lp.remote();
        let flags = Arc::new(Flags::new());
        let state = Rc::new(State::new(flags.clone()));
        Ok(LoopCore {
            core: ThreadBound::new(Core {
                lp,
                soon: Rc::new(Soon(state.clone())),
                state,
            }),
            remote,
            ts: Threadsafe::new(),
            flags,
            running: AtomicBool::new(false),
        })
    }

    /// The loop's clock: `time.monotonic()`'s, in seconds.
    fn time(&self) -> f64 {
        clock::now_secs()
    }

    /// Runs the loop until `stop()` (the native part of `run_forever`: the Python part checks
    /// the state and sets the running loop and the async generator hooks).
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::run_core(slf, EventLoop::run_forever)
    }

    /// Runs one iteration of the loop (the native part of `_run_once`): waits for I/O until
    /// the next timer is due (not at all when callbacks are ready), then runs what is ready.
    /// Returns whether `stop()` was called; the request is then consumed.
    fn _run_once_core(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::run_core(slf, EventLoop::run_once)
    }

    /// Asks the loop to stop after the current iteration (from any thread).
    fn stop(&self) {
        match self.core.get() {
            Some(core) => core.lp.stop(),
            None => {
                // Closed: nothing runs to stop.
                let _ = self.remote.stop();
            }
        }
    }

    /// Whether the loop runs.
    fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Whether the loop was closed.
    fn is_closed(&self) -> bool {
        self.remote.is_closed()
    }

    /// Closes the core: pending callbacks and timers are dropped, fd watchers removed, the
    /// loop's fds closed (the native part of `close`).
    fn _close(&self, py: Python<'_>) -> PyResult<()> {
        if self.is_running() {
            return Err(PyRuntimeError::new_err("Cannot close a running event loop"));
        }
        let core = self.core()?;
        core.lp.close().map_err(errors::to_py)?;
        let soon = std::mem::take(&mut *core.state.soon.borrow_mut());
        drop(soon);
        self.ts.clear(py);
        let watchers = std::mem::take(&mut *core.state.watchers.borrow_mut());
        drop(watchers);
        Ok(())
    }

    /// Whether the calling thread is the loop's.
    fn _on_loop_thread(&self) -> bool {
        self.core.get().is_some()
    }

    fn get_debug(&self) -> bool {
        self.flags.debug()
    }

    fn set_debug(&self, enabled: bool) {
        self.flags.debug.store(enabled, Ordering::Relaxed);
    }

    #[getter]
    fn get_slow_callback_duration(&self) -> f64 {
        self.flags.slow()
    }

    #[setter]
    fn set_slow_callback_duration(&self, secs: f64) {
        self.flags.set_slow(secs);
    }

    /// A new `asyncio.Future` of this loop.
    fn create_future<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let future = &crate::helpers(py)?.future;
        // `Future(loop=self)` as a vectorcall: no keyword dict is built per future.
        let kwnames = LOOP_KWNAMES.get_or_init(py, || {
            PyTuple::new(py, [intern!(py, "loop")])
                .expect("a tuple of one string")
                .unbind()
        });
        let args = [slf.as_ptr()];
        // SAFETY: one keyword argument (`slf`, alive for the call) named by `kwnames`, no
        // positional ones; GIL held. Returns a new reference or NULL with an exception set.
        unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyObject_Vectorcall(future.as_ptr(), args.as_ptr(), 0, kwnames.as_ptr()),
            )
        }
    }

    /// Wraps `coro` in an `asyncio.Task` of this loop (or what the task factory makes).
    #[pyo3(signature = (coro, *, name=None, context=None))]
    fn create_task<'py>(
        slf: &Bound<'py, Self>,
        coro: Bound<'py, PyAny>,
        name: Option<Bound<'py, PyAny>>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let core = this.core()?;
        let context = context.filter(|c| !c.is_none());
        if context.is_some() && py.version_info() < (3, 11) {
            return Err(PyTypeError::new_err(
                "create_task() takes a context only on Python 3.11 and later (asyncio.Task \
                 has no context parameter before): run the task's coroutine inside \
                 context.run() instead",
            ));
        }
        let name = name.filter(|n| !n.is_none());
        let factory = core
            .state
            .task_factory
            .borrow()
            .as_ref()
            .map(|f| f.clone_ref(py));
        let helpers = crate::helpers(py)?;
        match factory {
            None => {
                let kwargs = PyDict::new(py);
                kwargs.set_item(intern!(py, "loop"), slf)?;
                if let Some(name) = &name {
                    kwargs.set_item(intern!(py, "name"), name)?;
                }
                if let Some(context) = &context {
                    kwargs.set_item(intern!(py, "context"), context)?;
                }
                let task = helpers.task.bind(py).call((coro,), Some(&kwargs))?;
                if this.flags.debug() {
                    // The traceback ends in this call; asyncio drops that last frame.
                    if let Ok(tb) = task.getattr(intern!(py, "_source_traceback")) {
                        if tb.is_truthy()? {
                            tb.del_item(-1)?;
                        }
                    }
                }
                Ok(task)
            }
            Some(factory) => {
                let task = match &context {
                    None => factory.bind(py).call1((slf, coro))?,
                    Some(c) => {
                        let kwargs = PyDict::new(py);
                        kwargs.set_item(intern!(py, "context"), c)?;
                        factory.bind(py).call((slf, coro), Some(&kwargs))?
                    }
                };
                if let Some(name) = name {
                    helpers.set_task_name.bind(py).call1((&task, name))?;
                }
                Ok(task)
            }
        }
    }

    /// Sets the task factory (`None`: `asyncio.Task`).
    fn set_task_factory(&self, factory: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let factory = factory.filter(|f| !f.is_none());
        if let Some(f) = &factory {
            if !f.is_callable() {
                return Err(PyTypeError::new_err(
                    "task factory must be a callable or None",
                ));
            }
        }
        *self.core()?.state.task_factory.borrow_mut() = factory.map(Bound::unbind);
        Ok(())
    }

    /// The task factory, or `None`.
    fn get_task_factory(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self
            .core()?
            .state
            .task_factory
            .borrow()
            .as_ref()
            .map(|f| f.clone_ref(py)))
    }

    /// Calls `callback(*args)` whenever `fd` is readable (level-triggered), until
    /// `remove_reader(fd)`.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        &self,
        py: Python<'_>,
        fd: Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        self.watch(py, &fd, callback, args, true)
    }

    /// Calls `callback(*args)` whenever `fd` is writable, until `remove_writer(fd)`.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        &self,
        py: Python<'_>,
        fd: Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        self.watch(py, &fd, callback, args, false)
    }

    /// Stops watching `fd` for reading (the watcher's handle is cancelled); whether a reader
    /// was registered.
    fn remove_reader(&self, fd: Bound<'_, PyAny>) -> PyResult<bool> {
        self.unwatch(&fd, true)
    }

    /// Stops watching `fd` for writing (the watcher's handle is cancelled); whether a writer
    /// was registered.
    fn remove_writer(&self, fd: Bound<'_, PyAny>) -> PyResult<bool> {
        self.unwatch(&fd, false)
    }

    /// The handles of the watchers of `fd`: `(reader, writer)`, each `None` when not watched
    /// (what asyncio's transports show in their `repr`).
    fn _watchers(&self, py: Python<'_>, fd: Bound<'_, PyAny>) -> PyResult<WatcherPair> {
        let fd = fileno(&fd)?;
        let core = self.core()?;
        let w = core.state.watchers.borrow();
        let get = |read: bool| w.get(&(fd, read)).map(|h| h.clone_ref(py));
        Ok((get(true), get(false)))
    }

    /// `call_soon` and `call_soon_threadsafe` callbacks queued and not yet run (for tests of
    /// the binding).
    fn _pending_callbacks(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.core()?.state.soon.borrow().len() + self.ts.len(py))
    }
}
