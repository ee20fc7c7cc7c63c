//! The native module of the Python package `evloop` (`evloop._evloop`): the loop core
//! ([`core::LoopCore`]) and the handles ([`handle::Handle`], [`handle::TimerHandle`]), over
//! evloop's `loop-core` and `loop-timers` crates. The package's Python half
//! (`python/evloop/`) builds `evloop.Loop` on `LoopCore`.

mod bound;
mod core;
mod fast;
mod fast_transport;
mod gil;
mod handle;
mod pool;
mod running;
mod stream;
mod threadsafe;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The Python objects the native code calls, looked up once.
struct Helpers {
    /// `asyncio.Future`.
    future: Py<PyAny>,
    /// `asyncio.Task`.
    task: Py<PyAny>,
    /// `evloop._loop._set_task_name(task, name)`.
    set_task_name: Py<PyAny>,
    /// `asyncio.format_helpers._format_callback_source(callback, args)`.
    format_callback_source: Py<PyAny>,
    /// Whether that formatter takes `debug=` (Python 3.13+, where a handle's arguments are
    /// shown only in debug mode).
    format_takes_debug: bool,
    /// `evloop._loop._extract_stack()`: the caller's stack, for debug mode.
    extract_stack: Py<PyAny>,
    /// `evloop._loop._report_without_loop(context)`: a callback's error when no loop runs.
    report_without_loop: Py<PyAny>,
}

static HELPERS: PyOnceLock<Helpers> = PyOnceLock::new();

/// The helpers (imported on first use).
fn helpers(py: Python<'_>) -> PyResult<&Helpers> {
    HELPERS.get_or_try_init(py, || {
        let asyncio = py.import("asyncio")?;
        let fh = py.import("asyncio.format_helpers")?;
        let ours = py.import("evloop._loop")?;
        Ok(Helpers {
            future: asyncio.getattr("Future")?.unbind(),
            task: asyncio.getattr("Task")?.unbind(),
            set_task_name: ours.getattr("_set_task_name")?.unbind(),
            format_callback_source: fh.getattr("_format_callback_source")?.unbind(),
            format_takes_debug: py.version_info() >= (3, 13),
            extract_stack: ours.getattr("_extract_stack")?.unbind(),
            report_without_loop: ours.getattr("_report_without_loop")?.unbind(),
        })
    })
}

/// `callback(args) at file:line` as asyncio describes a handle's callback: with `debug=` where
/// the formatter takes it. `debug` is whether the handle was made in debug mode (it then carries
/// its creation stack), which stands for the loop's flag asyncio reads there.
fn format_callback_source<'py>(
    py: Python<'py>,
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, pyo3::types::PyTuple>,
    debug: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let h = helpers(py)?;
    let f = h.format_callback_source.bind(py);
    if h.format_takes_debug {
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("debug", debug)?;
        f.call((callback, args), Some(&kw))
    } else {
        f.call1((callback, args))
    }
}

/// The loop's clock: `time.monotonic()`'s base, in seconds, and `Instant`s.
mod clock {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static BASE: OnceLock<(Instant, f64)> = OnceLock::new();

    /// Reads the base: an `Instant` and `time.monotonic()` back to back (both are
    /// `CLOCK_MONOTONIC`), so that `time()` is `time.monotonic()`'s clock. Called when the
    /// module is imported.
    pub fn init(py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
        use pyo3::types::PyAnyMethods;
        let monotonic = py.import("time")?.getattr("monotonic")?;
        let now = Instant::now();
        let secs: f64 = monotonic.call0()?.extract()?;
        let _ = BASE.set((now, secs));
        Ok(())
    }

    fn base() -> &'static (Instant, f64) {
        BASE.get_or_init(|| (Instant::now(), 0.0))
    }

    /// `time()`: now, in seconds.
    pub fn now_secs() -> f64 {
        secs_of(Instant::now())
    }

    /// An `Instant` in seconds of the loop's clock.
    pub fn secs_of(t: Instant) -> f64 {
        let (i0, s0) = *base();
        if t >= i0 {
            s0 + (t - i0).as_secs_f64()
        } else {
            s0 - (i0 - t).as_secs_f64()
        }
    }

    /// The `Instant` of `when` (seconds of the loop's clock); far values are clamped.
    pub fn instant_of(when: f64) -> Instant {
        let (i0, s0) = *base();
        let d = when - s0;
        if !d.is_finite() {
            return if d > 0.0 {
                i0 + Duration::from_secs(86400 * 365)
            } else {
                i0
            };
        }
        if d >= 0.0 {
            i0.checked_add(Duration::from_secs_f64(d.min(1e9)))
                .unwrap_or(i0)
        } else {
            i0.checked_sub(Duration::from_secs_f64((-d).min(1e9)))
                .unwrap_or(i0)
        }
    }

    /// `now + delay` seconds (a negative or NaN delay is now).
    pub fn after(now: Instant, delay: f64) -> Instant {
        if delay > 0.0 {
            now.checked_add(Duration::from_secs_f64(delay.min(1e9)))
                .unwrap_or(now)
        } else {
            now
        }
    }
}

/// loop-core errors as Python exceptions, with asyncio's classes and messages.
mod errors {
    use loop_core::Error;
    use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
    use pyo3::PyErr;

    pub fn to_py(e: Error) -> PyErr {
        match e {
            Error::Closed => PyRuntimeError::new_err("Event loop is closed"),
            Error::AlreadyRunning => PyRuntimeError::new_err("This event loop is already running"),
            Error::AnotherLoopRunning => {
                PyRuntimeError::new_err("Cannot run the event loop while another loop is running")
            }
            Error::CloseRunning => PyRuntimeError::new_err("Cannot close a running event loop"),
            Error::InvalidArgument(m) => PyValueError::new_err(m),
            Error::FdInUse { fd, owner } => PyRuntimeError::new_err(format!(
                "File descriptor {fd} is used by transport {owner}"
            )),
            Error::Io(e) => match e.raw_os_error() {
                Some(errno) => PyOSError::new_err((errno, e.to_string())),
                None => PyOSError::new_err(e.to_string()),
            },
            other => PyRuntimeError::new_err(other.to_string()),
        }
    }
}

#[pymodule]
fn _evloop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    clock::init(m.py())?;
    m.add_class::<core::LoopCore>()?;
    fast::install(&m.py().get_type::<core::LoopCore>())?;
    m.add_function(wrap_pyfunction!(fast::install_on, m)?)?;
    m.add_class::<handle::Handle>()?;
    m.add_class::<handle::TimerHandle>()?;
    pool::install(m.py())?;
    m.add_function(wrap_pyfunction!(fast_transport::install, m)?)?;
    m.add("_STREAM_READ", stream::StreamRead)?;
    Ok(())
}
