"""evloop: an asyncio event loop with a native core.

    import evloop
    evloop.run(main())

or, to make every new loop an evloop one::

    evloop.install()

The loop runs callbacks, timers, futures, tasks, fd watchers (``add_reader``) and the executor
natively. Its I/O (``sock_*``, transports, servers, pipes, subprocesses, signal handlers) is
asyncio's own implementation over those native fd watchers, with subprocesses watched through
pidfds.
"""

import asyncio as __asyncio
import sys as __sys

from ._evloop import Handle, TimerHandle
from ._loop import Loop

__version__ = "0.1.0"
__all__ = ("Loop", "Handle", "TimerHandle", "new_event_loop", "EventLoopPolicy", "install", "run")


def new_event_loop():
    """A new evloop loop."""
    return Loop()


class EventLoopPolicy(__asyncio.DefaultEventLoopPolicy):
    """The event loop policy whose loops are evloop's (``asyncio.set_event_loop_policy``).

    It is asyncio's Unix policy with evloop's loops, so code that sets or reads the policy's
    child watcher (Python up to 3.13) keeps working; evloop's loops do not use it: each
    watches its own children through pidfds.
    """

    _loop_factory = Loop

    def __repr__(self):
        return f"<{type(self).__name__}>"


def install():
    """Makes evloop's policy asyncio's: ``asyncio.new_event_loop()`` and ``asyncio.run()`` then
    make evloop loops."""
    __asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, loop_factory=new_event_loop, debug=None, **run_kwargs):
    """Runs the coroutine ``main`` on a new evloop loop and returns its result, as
    ``asyncio.run`` does (closing the loop, its async generators and its executor after)."""
    if __sys.version_info >= (3, 12):
        return __asyncio.run(main, loop_factory=loop_factory, debug=debug, **run_kwargs)
    if run_kwargs:
        raise TypeError(f"run() got unexpected keyword arguments {sorted(run_kwargs)}")
    if __sys.version_info >= (3, 11):
        with __asyncio.Runner(loop_factory=loop_factory, debug=debug) as runner:
            return runner.run(main)
    return _run_before_311(main, loop_factory, debug)


def _run_before_311(main, loop_factory, debug):
    if not __asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    if __asyncio.events._get_running_loop() is not None:
        raise RuntimeError("evloop.run() cannot be called from a running event loop")
    loop = loop_factory()
    try:
        __asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            pending = [t for t in __asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(__asyncio.gather(*pending, return_exceptions=True))
            for t in pending:
                if not t.cancelled() and t.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception during evloop.run() shutdown",
                            "exception": t.exception(),
                            "task": t,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            __asyncio.set_event_loop(None)
            loop.close()
