"""The loop's I/O: sockets, transports, servers, pipes, subprocesses and signal handlers.

These run asyncio's own implementations, taken from the running interpreter's ``asyncio``
(``base_events``, ``selector_events``, ``unix_events``) and driven by evloop's native fd
watchers (``_add_reader`` / ``_add_writer``), so that they behave exactly as asyncio's do on
every Python version: the ``sock_*`` operations, ``create_connection`` / ``create_server`` (TCP
and Unix), datagram endpoints, ``connect_accepted_socket``, pipes, ``sendfile`` and
``start_tls`` (asyncio's SSL protocol). evloop's own parts are the child watching of
subprocesses (a pidfd per child, watched by the loop: no child watcher, no helper thread, no
``SIGCHLD`` handler) and the signal handlers (the interpreter's wake-up fd, watched by the
loop). Transports that call Python protocols from native code replace these when evloop's
transport layer offers them.
"""

import errno
import os
import selectors
import signal
import socket
import weakref

import threading
import types

from asyncio import base_events, coroutines, events, selector_events, streams, unix_events
from asyncio.log import logger

from ._evloop import _STREAM_READ, LoopCore, _install_transport

__all__ = ("IOMixin",)


def _borrow(cls, names):
    """The functions ``names`` of asyncio's class ``cls``, by name (none of them uses
    ``super()``, so they run unchanged on another class). A name this Python's asyncio does
    not have is left out (``sock_recvfrom`` and ``sock_sendto`` came in 3.11): the loop then
    lacks it as asyncio's own loop does."""
    out = {}
    for name in names.split():
        func = cls.__dict__.get(name)
        if func is None:
            continue
        assert "__class__" not in func.__code__.co_freevars, name
        out[name] = func
    return out


_BORROWED = {}
_BORROWED.update(
    _borrow(
        base_events.BaseEventLoop,
        """
        create_connection _connect_sock _create_connection_transport _ensure_resolved
        create_server _create_server_getaddrinfo connect_accepted_socket
        create_datagram_endpoint
        connect_read_pipe connect_write_pipe
        subprocess_exec subprocess_shell _log_subprocess
        sendfile _sendfile_fallback start_tls
        sock_sendfile _sock_sendfile_fallback _check_sendfile_params
        """,
    )
)
_BORROWED.update(
    _borrow(
        selector_events.BaseSelectorEventLoop,
        """
        _make_socket_transport _make_ssl_transport _make_datagram_transport
        _start_serving _accept_connection _accept_connection2
        _ensure_fd_no_transport _sendfile_native
        sock_recv _sock_recv sock_recv_into _sock_recv_into _sock_read_done
        sock_recvfrom _sock_recvfrom sock_recvfrom_into _sock_recvfrom_into
        sock_sendall _sock_sendall sock_sendto _sock_sendto _sock_write_done
        sock_connect _sock_connect _sock_connect_cb
        sock_accept _sock_accept
        """,
    )
)
_BORROWED.update(
    _borrow(
        unix_events._UnixSelectorEventLoop,
        """
        create_unix_connection create_unix_server
        _make_read_pipe_transport _make_write_pipe_transport
        _sock_sendfile_native _sock_sendfile_native_impl _sock_sendfile_update_filepos
        _sock_add_cancellation_callback
        _check_signal
        """,
    )
)


class _SocketTransport(selector_events._SelectorSocketTransport):
    """asyncio's socket transport (TCP and Unix streams) with its per-message paths native.

    Everything but reading and writing is asyncio's own code, so the transport's states,
    flow control, ``close`` / ``abort`` / ``write_eof``, ``sendfile`` and the TLS upgrade
    behave as asyncio's. Reading: the loop's native reader ``recv``s into a fresh ``bytes``
    and calls the protocol's ``data_received`` (or ``get_buffer`` / ``buffer_updated``)
    itself, instead of calling ``_read_ready``. Writing: ``write`` (and ``is_closing``) are C
    methods: ``write`` sends at once when nothing is buffered and hands the rest to asyncio's
    ``write``. The state those paths read lives in slots, which the native code reads at
    fixed offsets (and Python code reads faster than instance-dict attributes)."""

    __slots__ = (
        "_sock_fd",
        "_protocol",
        "_conn_lost",
        "_closing",
        "_eof",
        "_empty_waiter",
        "_buffer",
    )

    def _add_reader(self, fd, callback, *args):
        if not args and callback == self._read_ready:
            callback, args = _STREAM_READ, (self,)
        super()._add_reader(fd, callback, *args)


def _stream_protocol():
    """asyncio's ``StreamReaderProtocol`` if its ``data_received`` is ``reader =
    self._stream_reader; if reader is not None: reader.feed_data(data)`` with
    ``_stream_reader`` the dereferenced weak reference ``_stream_reader_wr`` (every Python
    from 3.9 on): the native reader then does that itself, without the two Python frames.
    ``None`` if this Python's differ."""
    cls = streams.StreamReaderProtocol
    data_received = cls.__dict__.get("data_received")
    prop = cls.__dict__.get("_stream_reader")
    if not isinstance(data_received, types.FunctionType) or not isinstance(prop, property):
        return None
    if data_received.__code__.co_names != ("_stream_reader", "feed_data"):
        return None
    if getattr(prop.fget, "__code__", None) is None or prop.fget.__code__.co_names != (
        "_stream_reader_wr",
    ):
        return None
    return cls


# write and is_closing as C methods, over the slots above; the stream protocol's reads.
_install_transport(
    _SocketTransport, selector_events._SelectorSocketTransport.write, _stream_protocol()
)


def _with_transport(func):
    """``func`` (one of asyncio's loop methods that make socket transports) making
    ``_SocketTransport`` instead of asyncio's class."""
    glob = dict(func.__globals__)
    glob["_SelectorSocketTransport"] = _SocketTransport
    out = types.FunctionType(func.__code__, glob, func.__name__, func.__defaults__, func.__closure__)
    out.__kwdefaults__ = func.__kwdefaults__
    out.__qualname__ = func.__qualname__
    out.__doc__ = func.__doc__
    return out


_BORROWED["_make_socket_transport"] = _with_transport(_BORROWED["_make_socket_transport"])
# TLS: asyncio's SSL protocol (a BufferedProtocol) over the same transport.
_BORROWED["_make_ssl_transport"] = _with_transport(_BORROWED["_make_ssl_transport"])


class _WatcherKeys:
    """What asyncio's transports read from their loop's selector (``_selector.get_key(fd)``,
    for their ``repr``): which events the loop watches ``fd`` for, from evloop's native
    watchers."""

    __slots__ = ("_loop",)

    def __init__(self, loop):
        self._loop = loop

    def get_key(self, fd):
        reader, writer = self._loop._watchers(fd)
        events = (selectors.EVENT_READ if reader is not None else 0) | (
            selectors.EVENT_WRITE if writer is not None else 0
        )
        if not events:
            raise KeyError(fd)
        return selectors.SelectorKey(fd, fd, events, (reader, writer))


def _reap(pid):
    """Waits for the child ``pid`` (of a closed loop) and reaps it."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _sighandler_noop(signum, frame):
    """The Python-level handler of a signal the loop handles: the wake-up fd does the work."""


class IOMixin:
    """The I/O half of ``evloop.Loop`` (see the module's doc)."""

    locals().update(_BORROWED)

    @property
    def _selector(self):
        # None once closed, as asyncio's: closed transports then say "open", not "idle".
        return None if self.is_closed() else _WatcherKeys(self)

    # What asyncio's transports call to stop watching their fd.
    _remove_reader = LoopCore.remove_reader
    _remove_writer = LoopCore.remove_writer

    _selector_stop_serving = selector_events.BaseSelectorEventLoop._stop_serving

    def _init_io(self):
        self._transports = weakref.WeakValueDictionary()
        # Unix servers whose socket file goes when they close (Python 3.13+'s
        # create_unix_server(cleanup_socket=True)): listening socket → the file's inode.
        self._unix_server_sockets = {}
        self._signal_handlers = {}
        self._children = {}
        # The socket pair whose write end is the interpreter's wake-up fd, and whether it is
        # installed there (see _watch_signals).
        self._wakeup = None
        self._wakeup_installed = False

    @property
    def _debug(self):
        return self.get_debug()

    # -- fd watchers ---------------------------------------------------------------------

    def add_reader(self, fd, callback, *args):
        """Calls ``callback(*args)`` while ``fd`` is readable."""
        self._ensure_fd_no_transport(fd)
        self._add_reader(fd, callback, *args)

    def add_writer(self, fd, callback, *args):
        """Calls ``callback(*args)`` while ``fd`` is writable."""
        self._ensure_fd_no_transport(fd)
        self._add_writer(fd, callback, *args)

    def remove_reader(self, fd):
        """Stops watching ``fd`` for reading; whether a reader was registered."""
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def remove_writer(self, fd):
        """Stops watching ``fd`` for writing; whether a writer was registered."""
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    def _stop_serving(self, sock):
        """A server stops listening on ``sock``: the watcher goes, the socket is closed, and
        a Unix socket file the server made is removed if it is still the server's."""
        path = sock.getsockname() if sock in self._unix_server_sockets else None
        self._selector_stop_serving(sock)
        if path is not None:
            inode = self._unix_server_sockets.pop(sock)
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)

    # -- subprocesses --------------------------------------------------------------------

    async def _make_subprocess_transport(
        self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=None, **kwargs
    ):
        waiter = self.create_future()
        transp = unix_events._UnixSubprocessTransport(
            self,
            protocol,
            args,
            shell,
            stdin,
            stdout,
            stderr,
            bufsize,
            waiter=waiter,
            extra=extra,
            **kwargs,
        )
        self._watch_child(transp.get_pid(), transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    def _watch_child(self, pid, transp):
        """Reaps ``pid`` when it exits and tells ``transp``: the loop watches the child's
        pidfd, readable once the child has exited."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            # Already gone (reaped by someone else): nothing left to wait for.
            self.call_soon(transp._process_exited, 255)
            return
        except (AttributeError, OSError) as exc:
            raise RuntimeError(
                f"evloop watches subprocesses through pidfds (Linux 5.3+), which this system "
                f"does not offer: {exc}"
            ) from None
        self._children[pid] = pidfd
        self._add_reader(pidfd, self._child_exited, pid, pidfd, transp)

    def _child_exited(self, pid, pidfd, transp):
        self._remove_reader(pidfd)
        self._children.pop(pid, None)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            # Reaped elsewhere (a Popen.poll() of the user's, say): the status is lost.
            returncode = 255
            logger.warning(
                "child process pid %d exit status already read: will report returncode 255", pid
            )
        else:
            returncode = os.waitstatus_to_exitcode(status)
        if self.get_debug():
            logger.debug("process %s exited with returncode %s", pid, returncode)
        transp._process_exited(returncode)

    def _close_children(self):
        """The loop closes: its pidfds are closed, and a child still running is reaped by a
        thread when it exits (so it does not stay a zombie); its transport is not told, the
        loop being closed."""
        for pid, pidfd in self._children.items():
            os.close(pidfd)
            threading.Thread(
                target=_reap, args=(pid,), name=f"evloop-reap-{pid}", daemon=True
            ).start()
        self._children.clear()

    # -- signals -------------------------------------------------------------------------
    #
    # While the loop waits in the kernel no Python code runs, so a signal's Python handler
    # would wait for the next callback. The interpreter writes the number of every signal it
    # catches to its wake-up fd (signal.set_wakeup_fd): evloop points it at a socket the loop
    # watches, so a signal wakes the loop, the interpreter's handlers (KeyboardInterrupt from
    # Ctrl-C) run in the watcher's callback, and the loop's own signal handlers are scheduled
    # there. The wake-up fd is installed for each run on the main thread (unless someone
    # else's is set), and stays while signal handlers are registered.

    def _open_wakeup(self):
        if self._wakeup is None:
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            self._wakeup = (r, w)
            self._add_reader(r.fileno(), self._drain_wakeup, r)
        return self._wakeup

    def _close_wakeup(self):
        if self._wakeup_installed:
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError):
                pass
            self._wakeup_installed = False
        if self._wakeup is not None:
            r, w = self._wakeup
            self._wakeup = None
            if not self.is_closed():
                self._remove_reader(r.fileno())
            r.close()
            w.close()

    def _watch_signals(self):
        if self._wakeup_installed:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        r, w = self._open_wakeup()
        try:
            previous = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            self._close_wakeup()
            return
        if previous != -1:
            # Someone else's wake-up fd: leave it in place.
            signal.set_wakeup_fd(previous)
            self._close_wakeup()
            return
        self._wakeup_installed = True

    def _unwatch_signals(self):
        if not self._signal_handlers:
            self._close_wakeup()

    def _drain_wakeup(self, r):
        while True:
            try:
                data = r.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signum in data:
                self._handle_signal(signum)

    def _handle_signal(self, signum):
        handle = self._signal_handlers.get(signum)
        if handle is None:
            return
        if handle._cancelled:
            self.remove_signal_handler(signum)
        else:
            self.call_soon(handle._run)

    def add_signal_handler(self, sig, callback, *args):
        """Calls ``callback(*args)`` on the loop when signal ``sig`` arrives (main thread
        only; replaces the signal's Python handler until ``remove_signal_handler``)."""
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        r, w = self._open_wakeup()
        try:
            # Raises ValueError off the main thread.
            signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
            self._wakeup_installed = True
        except (ValueError, OSError) as exc:
            if not self._signal_handlers and not self.is_running():
                self._close_wakeup()
            raise RuntimeError(str(exc))
        handle = events.Handle(callback, args, self, None)
        self._signal_handlers[sig] = handle
        try:
            # The Python handler does nothing: the wake-up fd brings the signal to the loop.
            signal.signal(sig, _sighandler_noop)
            # Interrupted system calls are restarted.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers and not self.is_running():
                self._close_wakeup()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise

    def remove_signal_handler(self, sig):
        """Removes the handler of signal ``sig`` (the signal gets its default handling back);
        whether one was registered."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise
        if not self._signal_handlers and not self.is_running():
            self._close_wakeup()
        return True

    def _close_io(self):
        """The loop closes: its signal handlers go, its wake-up socket and pidfds are
        closed."""
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        self._close_wakeup()
        self._close_children()
