"""``evloop.Loop``: an asyncio event loop whose core is native.

The native base class (``evloop._evloop.LoopCore``) schedules and runs the callbacks, owns the
clock, the timers and the fd watchers, and creates futures and tasks. This module adds what
asyncio itself does in Python around that core and what runs once per run rather than once per
callback: the checks and bookkeeping of ``run_forever`` / ``run_until_complete``, ``close``,
the exception handler, the default executor, async generator finalisation, and debug-mode
logging. The I/O (sockets, transports, servers, pipes, subprocesses, signals) is in
``_io.py``.
"""

import asyncio
import concurrent.futures
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
import weakref

from asyncio import events, format_helpers, futures, tasks

from ._evloop import LoopCore, _install_fast
from ._io import IOMixin

__all__ = ("Loop",)

logger = logging.getLogger("asyncio")

# How many frames debug mode keeps of where a callback, future or task was made.
_DEBUG_STACK_DEPTH = getattr(asyncio.constants, "DEBUG_STACK_DEPTH", 10)


def _debug_from_environment():
    """Debug mode as asyncio starts it: ``-X dev`` or ``PYTHONASYNCIODEBUG``."""
    is_debug = getattr(asyncio.coroutines, "_is_debug_mode", None)
    if is_debug is not None:
        return bool(is_debug())
    return sys.flags.dev_mode or (
        not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))
    )


def _extract_stack():
    """Where the native ``call_soon`` & co. were called from (debug mode's
    ``_source_traceback``)."""
    return format_helpers.extract_stack(sys._getframe(1))


def _set_task_name(task, name):
    setter = getattr(tasks, "_set_task_name", None)
    if setter is not None:
        setter(task, name)
    else:
        task.set_name(name)


def _report_without_loop(context):
    """A callback run by hand (``Handle._run()``) with no loop running raised: log it as the
    default exception handler would."""
    exc = context.get("exception")
    logger.error(
        context.get("message", "Unhandled exception in event loop"),
        exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else False,
    )


def _stop_when_done(fut):
    # A KeyboardInterrupt / SystemExit that finished the future already ended run_forever().
    if not fut.cancelled() and isinstance(fut.exception(), (SystemExit, KeyboardInterrupt)):
        return
    futures._get_loop(fut).stop()


class Loop(IOMixin, LoopCore, asyncio.AbstractEventLoop):
    """An asyncio event loop over evloop's native core (``asyncio.AbstractEventLoop``).

    A loop is used on the thread that created it; other threads may call
    ``call_soon_threadsafe``, ``stop``, ``time``, ``is_running``, ``is_closed`` and
    ``get_debug``.
    """

    def __init__(self):
        self._default_executor = None
        # asyncio's attributes of the same names: the clock's resolution, and the stop request
        # of a run driven one iteration at a time (see ``_run_once``).
        self._clock_resolution = time.get_clock_info("monotonic").resolution
        self._stopping = False
        self._executor_shutdown_called = False
        self._exception_handler = None
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._thread_id = None
        self._current_handle = None
        self._origin_tracking = False
        self._origin_tracking_saved_depth = None
        self._init_io()
        if _debug_from_environment():
            self.set_debug(True)

    def __repr__(self):
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    # -- running -------------------------------------------------------------------------

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError("Event loop is closed")

    def _check_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def run_forever(self):
        """Runs until ``stop()`` is called."""
        self._check_closed()
        self._check_running()
        self._set_origin_tracking(self.get_debug())
        old_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            events._set_running_loop(self)
            self._watch_signals()
            if "_run_once" in self.__dict__:
                # ``_run_once`` replaced on the instance (as asyncio's tests do to count
                # iterations): the run goes through it, one iteration at a time.
                while True:
                    self._run_once()
                    if self._stopping:
                        break
            else:
                self._run()
        finally:
            self._stopping = False
            self._unwatch_signals()
            self._thread_id = None
            events._set_running_loop(None)
            self._set_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_hooks)

    def _run_once(self):
        """Runs one iteration (asyncio's ``_run_once``): waits for I/O until the next timer is
        due (not at all when callbacks are ready), then runs what is ready."""
        if self._run_once_core():
            self._stopping = True

    def run_until_complete(self, future):
        """Runs until ``future`` (a future, a task or a coroutine) is done; returns its result
        or raises its exception."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # The task is ours: an exception it ends with is raised here, not logged as
            # never retrieved.
            future._log_destroy_pending = False
        future.add_done_callback(_stop_when_done)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # Raised here: do not log it again as "never retrieved".
                future.exception()
            raise
        finally:
            future.remove_done_callback(_stop_when_done)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def _set_origin_tracking(self, enabled):
        if bool(enabled) == self._origin_tracking:
            return
        if enabled:
            self._origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._origin_tracking_saved_depth)
        self._origin_tracking = bool(enabled)

    def set_debug(self, enabled):
        """Turns debug mode on or off."""
        LoopCore.set_debug(self, enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_origin_tracking, enabled)

    # -- closing -------------------------------------------------------------------------

    def close(self):
        """Closes the loop: pending callbacks are dropped, the default executor is shut down
        without waiting. Idempotent; not allowed while the loop runs."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self.get_debug():
            logger.debug("Close %r", self)
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        self._close_io()
        self._close()

    def __del__(self, _warn=warnings.warn):
        try:
            closed = self.is_closed()
        except Exception:
            return
        if not closed:
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running() and self._on_loop_thread():
                self.close()

    async def shutdown_asyncgens(self):
        """Closes the async generators still open (``aclose()`` on each)."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        agens = list(self._asyncgens)
        self._asyncgens.clear()
        results = await tasks.gather(*[ag.aclose() for ag in agens], return_exceptions=True)
        for result, agen in zip(results, agens):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": "an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    async def shutdown_default_executor(self, timeout=None):
        """Shuts the default executor down, waiting for its jobs (in a thread, so the loop
        keeps running); gives up waiting after ``timeout`` seconds if given."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._shutdown_executor, args=(future,))
        thread.start()
        try:
            if timeout is None:
                await future
            else:
                try:
                    await tasks.wait_for(asyncio.shield(future), timeout)
                except asyncio.TimeoutError:
                    warnings.warn(
                        "The executor did not finish joining its threads within "
                        f"{timeout} seconds.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    self._default_executor.shutdown(wait=False)
        finally:
            thread.join(timeout)

    def _shutdown_executor(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(futures._set_result_unless_cancelled, future, None)
        except Exception as exc:
            if not self.is_closed():
                self.call_soon_threadsafe(_set_exception_unless_cancelled, future, exc)

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                "loop.shutdown_asyncgens() call",
                ResourceWarning,
                source=self,
            )
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    # -- executor ------------------------------------------------------------------------

    def run_in_executor(self, executor, func, *args):
        """Runs ``func(*args)`` in ``executor`` (the default thread pool if ``None``); returns
        an asyncio future of its result."""
        self._check_closed()
        if self.get_debug():
            _check_callable(func, "run_in_executor")
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            executor = self._default_executor
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        """Sets the executor ``run_in_executor(None, ...)`` uses (a ``ThreadPoolExecutor``)."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor")
        self._default_executor = executor

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """``socket.getaddrinfo`` in the default executor."""
        return await self.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr, flags=0):
        """``socket.getnameinfo`` in the default executor."""
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    # -- errors --------------------------------------------------------------------------

    def get_exception_handler(self):
        """The exception handler, or ``None`` (the default one)."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Sets the exception handler: ``handler(loop, context)``, or ``None`` for the
        default."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Logs ``context`` on the ``asyncio`` logger: its message, the exception with its
        traceback, and every other key."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info = (type(exception), exception, exception.__traceback__) if exception else False
        if (
            "source_traceback" not in context
            and self._current_handle is not None
            and getattr(self._current_handle, "_source_traceback", None)
        ):
            context["handle_traceback"] = self._current_handle._source_traceback
        lines = [message]
        for key in sorted(context):
            if key in ("message", "exception"):
                continue
            value = context[key]
            if key == "source_traceback":
                value = "Object created at (most recent call last):\n" + "".join(
                    traceback.format_list(value)
                ).rstrip()
            elif key == "handle_traceback":
                value = "Handle created at (most recent call last):\n" + "".join(
                    traceback.format_list(value)
                ).rstrip()
            else:
                value = repr(value)
            lines.append(f"{key}: {value}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Sends ``context`` to the exception handler (or the default one). An error of the
        handler is logged; ``KeyboardInterrupt`` and ``SystemExit`` pass through."""
        handler = self._exception_handler
        if handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            ctx = _context_of(context) if _HANDLER_IN_CONTEXT else None
            if ctx is not None:
                ctx.run(handler, self, context)
            else:
                handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler(
                    {
                        "message": "Unhandled error in exception handler",
                        "exception": exc,
                        "context": context,
                    }
                )
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error(
                    "Exception in default exception handler while handling an unexpected "
                    "error in custom exception handler",
                    exc_info=True,
                )

    def _log_slow_callback(self, handle, seconds):
        logger.warning("Executing %r took %.3f seconds", handle, seconds)


# From Python 3.12 on, asyncio calls a custom exception handler in the context of the task,
# future or handle that failed (so it sees the context variables the failing code set).
_HANDLER_IN_CONTEXT = sys.version_info >= (3, 12)


def _context_of(context):
    """The ``contextvars.Context`` of what an exception handler's ``context`` is about: its
    task, else its future (a task may be there), else its handle; ``None`` if none has one."""
    thing = context.get("task")
    if thing is None:
        thing = context.get("future")
    if thing is None:
        thing = context.get("handle")
    get_context = getattr(thing, "get_context", None)
    if get_context is None:
        return None
    ctx = get_context()
    return ctx if hasattr(ctx, "run") else None


def _check_callable(func, method):
    if asyncio.iscoroutine(func) or asyncio.iscoroutinefunction(func):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(func):
        raise TypeError(f"a callable object was expected by {method}(), got {func!r}")


def _set_exception_unless_cancelled(fut, exc):
    if not fut.cancelled():
        fut.set_exception(exc)


# call_soon & co. as C methods of Loop itself: their type check of `self` is then one
# comparison instead of a walk of the class hierarchy.
_install_fast(Loop)
