"""The loop's I/O as asyncio code sees it: fd watcher handles, sockets, TCP / Unix / UDP
transports and servers, pipes, subprocesses and signal handlers, over real sockets, pipes,
processes and signals. Each test checks that what it opened is closed (fd counts) and that
children are reaped.
"""

import asyncio
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import evloop

from .test_loop import LoopTestCase, fd_count


class WatcherHandleTests(LoopTestCase):
    def test_a_replaced_or_removed_watcher_has_its_handle_cancelled(self):
        a, b = socket.socketpair()
        with a, b:
            h1 = self.loop._add_reader(a.fileno(), self.fired.append, 1)
            h2 = self.loop._add_reader(a.fileno(), self.fired.append, 2)
            self.assertTrue(h1.cancelled())
            self.assertFalse(h2.cancelled())
            self.assertIs(self.loop._watchers(a)[0], h2)
            self.assertTrue(self.loop.remove_reader(a))
            self.assertTrue(h2.cancelled())
            self.assertEqual(self.loop._watchers(a), (None, None))
            self.assertFalse(self.loop.remove_reader(a))

    def test_a_watcher_whose_handle_was_cancelled_goes_when_its_fd_is_ready(self):
        a, b = socket.socketpair()
        with a, b:
            h = self.loop._add_reader(a.fileno(), self.fired.append, "ran")
            h.cancel()
            b.send(b"x")
            # A loop that only runs callbacks may skip polling for a few iterations: give
            # it time to poll.
            self.loop.run_until_complete(asyncio.sleep(0.05))
            self.assertEqual(self.fired, [])
            self.assertEqual(self.loop._watchers(a), (None, None))

    def test_a_sock_recv_cancelled_then_restarted_gets_the_data(self):
        # The cancelled recv's clean-up must not remove the watcher of the recv that
        # replaced it (asyncio's racing tests).
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            first = asyncio.ensure_future(self.loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            # The second recv starts (and replaces the first's watcher) before the first's
            # clean-up runs.
            second = asyncio.ensure_future(self.loop.sock_recv(a, 10))
            first.cancel()
            await asyncio.sleep(0)
            b.send(b"hello")
            return await asyncio.wait_for(second, 5)

        with a, b:
            self.assertEqual(self.loop.run_until_complete(main()), b"hello")

    def test_public_watchers_refuse_a_transport_s_fd(self):
        a, b = socket.socketpair()

        async def main():
            transport, _ = await self.loop.connect_accepted_socket(asyncio.Protocol, a)
            try:
                with self.assertRaisesRegex(RuntimeError, "is used by transport"):
                    self.loop.add_reader(a.fileno(), print)
            finally:
                transport.close()
                await asyncio.sleep(0)

        with b:
            self.loop.run_until_complete(main())


class EchoProtocol(asyncio.Protocol):
    lost = []

    def connection_made(self, transport):
        self.transport = transport
        self.done = asyncio.get_running_loop().create_future()
        EchoProtocol.lost.append(self.done)

    def connection_lost(self, exc):
        self.done.set_result(exc)

    def data_received(self, data):
        self.transport.write(data)


class SocketTests(LoopTestCase):
    def test_sock_operations_over_tcp(self):
        before = fd_count()

        async def main():
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            client = socket.socket()
            client.setblocking(False)
            with listener, client:
                accepting = asyncio.ensure_future(self.loop.sock_accept(listener))
                await self.loop.sock_connect(client, listener.getsockname())
                server, _ = await asyncio.wait_for(accepting, 5)
                with server:
                    payload = os.urandom(1 << 20)
                    sending = asyncio.ensure_future(self.loop.sock_sendall(client, payload))
                    got = bytearray()
                    while len(got) < len(payload):
                        got += await self.loop.sock_recv(server, 65536)
                    await sending
                    self.assertEqual(bytes(got), payload)
                    buf = bytearray(4)
                    await self.loop.sock_sendall(server, b"ping")
                    n = await self.loop.sock_recv_into(client, buf)
                    self.assertEqual(buf[:n], b"ping"[:n])

        self.loop.run_until_complete(asyncio.wait_for(main(), 10))
        self.assertEqual(fd_count(), before)

    def test_tcp_server_and_client_streams(self):
        before = fd_count()

        async def main():
            server = await self.loop.create_server(EchoProtocol, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\n")
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            # The server side closes its transport when it reads the end of the stream.
            await asyncio.gather(*EchoProtocol.lost)
            EchoProtocol.lost.clear()
            return line

        self.assertEqual(self.loop.run_until_complete(asyncio.wait_for(main(), 10)), b"hello\n")
        self.assertEqual(fd_count(), before)

    def test_unix_server_and_datagrams(self):
        async def main():
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "sock")
                server = await self.loop.create_unix_server(EchoProtocol, path)
                reader, writer = await asyncio.open_unix_connection(path)
                writer.write(b"unix\n")
                line = await reader.readline()
                writer.close()
                await writer.wait_closed()
                server.close()
                await server.wait_closed()
                await asyncio.gather(*EchoProtocol.lost)
                EchoProtocol.lost.clear()
                # From Python 3.13 on, a Unix server removes its socket file when it closes.
                self.assertEqual(os.path.exists(path), sys.version_info < (3, 13))

            got = self.loop.create_future()

            class Receiver(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    got.set_result(data)

            rx, _ = await self.loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
            tx, _ = await self.loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=rx.get_extra_info("sockname")
            )
            tx.sendto(b"udp")
            data = await got
            tx.close()
            rx.close()
            await asyncio.sleep(0)
            return line, data

        before = fd_count()
        out = self.loop.run_until_complete(asyncio.wait_for(main(), 10))
        self.assertEqual(out, (b"unix\n", b"udp"))
        self.assertEqual(fd_count(), before)


class Recorder(asyncio.Protocol):
    """Records what a transport tells it; ``events`` in order."""

    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.data = bytearray()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.events.append(("data", type(data)))
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append(("lost", type(exc)))
        self.lost.set_result(exc)


class SmallBuffers(asyncio.BufferedProtocol):
    def __init__(self, loop, size):
        self.buf = bytearray(size)
        self.chunks = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.chunks.append(bytes(self.buf[:nbytes]))

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class NativeStreamTransportTests(LoopTestCase):
    """TCP and Unix stream transports: asyncio's transport with native reading and writing."""

    def connected(self, protocol_factory):
        """A transport over one end of a socket pair, and the other end (blocking)."""
        a, b = socket.socketpair()
        self.addCleanup(b.close)

        async def make():
            return await self.loop.connect_accepted_socket(protocol_factory, a)

        tr, proto = self.loop.run_until_complete(make())
        return tr, proto, b

    def wait_for(self, cond, timeout=5.0):
        async def poll():
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise AssertionError("timed out")
                await asyncio.sleep(0.001)

        self.loop.run_until_complete(poll())

    def test_reads_arrive_as_bytes_and_writes_go_out_at_once(self):
        before = fd_count()
        tr, p, peer = self.connected(lambda: Recorder(self.loop))
        self.assertEqual(type(tr).__name__, "_SocketTransport")
        self.assertIsInstance(tr, asyncio.Transport)
        # write and is_closing are C methods of the class (method descriptors).
        self.assertEqual(type(vars(type(tr))["write"]).__name__, "method_descriptor")
        self.assertEqual(type(vars(type(tr))["is_closing"]).__name__, "method_descriptor")
        self.assertIs(tr.is_closing(), False)
        peer.sendall(b"hello")
        self.wait_for(lambda: len(p.data) == 5)
        self.assertEqual(bytes(p.data), b"hello")
        self.assertEqual(p.events, ["made", ("data", bytes)])
        tr.write(b"world")
        # Nothing buffered: the bytes left at once.
        self.assertEqual(tr.get_write_buffer_size(), 0)
        self.assertEqual(peer.recv(100), b"world")
        # bytearray and memoryview take asyncio's own path.
        tr.write(bytearray(b"ab"))
        tr.write(memoryview(b"cd"))
        got = b""
        while len(got) < 4:
            got += peer.recv(100)
        self.assertEqual(got, b"abcd")
        with self.assertRaises(TypeError):
            tr.write("text")
        peer.shutdown(socket.SHUT_WR)
        exc = self.loop.run_until_complete(p.lost)
        self.assertIsNone(exc)
        self.assertEqual(p.events[-2:], ["eof", ("lost", type(None))])
        peer.close()
        self.assertEqual(fd_count(), before)

    def test_what_cannot_be_sent_is_buffered_with_the_water_marks(self):
        tr, p, peer = self.connected(lambda: Recorder(self.loop))
        tr.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        big = b"x" * (4 * 1024 * 1024)
        tr.write(big)
        self.assertGreater(tr.get_write_buffer_size(), 0)
        self.assertIn("pause_writing", p.events)
        got = bytearray()
        peer.setblocking(False)

        def drained():
            try:
                got.extend(peer.recv(1 << 20))
            except BlockingIOError:
                pass
            return len(got) == len(big)

        self.wait_for(drained)
        self.assertEqual(bytes(got), big)
        self.assertEqual(tr.get_write_buffer_size(), 0)
        self.assertEqual(p.events.count("resume_writing"), 1)
        # A write after buffering went on (the buffer is empty again) goes out at once.
        tr.write(b"tail")
        self.wait_for(lambda: drained() or bytes(got[-4:]) == b"tail")
        tr.close()
        self.loop.run_until_complete(p.lost)

    def test_buffered_protocols_read_into_their_own_buffer(self):
        tr, p, peer = self.connected(lambda: SmallBuffers(self.loop, 4))
        peer.sendall(b"0123456789")
        self.wait_for(lambda: sum(map(len, p.chunks)) == 10)
        self.assertEqual(b"".join(p.chunks), b"0123456789")
        self.assertTrue(all(len(c) <= 4 for c in p.chunks))
        # The protocol changes: the native reader follows it.
        other = Recorder(self.loop)
        tr.set_protocol(other)
        peer.sendall(b"more")
        self.wait_for(lambda: bytes(other.data) == b"more")
        tr.close()
        self.loop.run_until_complete(other.lost)

    def test_pause_reading_stops_delivery_until_resumed(self):
        tr, p, peer = self.connected(lambda: Recorder(self.loop))
        tr.pause_reading()
        self.assertFalse(tr.is_reading())
        peer.sendall(b"held")
        self.loop.run_until_complete(asyncio.sleep(0.05))
        self.assertEqual(bytes(p.data), b"")
        tr.resume_reading()
        self.wait_for(lambda: bytes(p.data) == b"held")
        tr.abort()
        self.assertIsNone(self.loop.run_until_complete(p.lost))

    def test_errors_take_asyncio_s_routes(self):
        reports = []
        self.loop.set_exception_handler(lambda loop, ctx: reports.append(ctx))

        class Failing(Recorder):
            def data_received(self, data):
                raise ZeroDivisionError("boom")

        tr, p, peer = self.connected(lambda: Failing(self.loop))
        peer.sendall(b"x")
        exc = self.loop.run_until_complete(p.lost)
        self.assertIsInstance(exc, ZeroDivisionError)
        self.assertEqual(
            reports[0]["message"], "Fatal error: protocol.data_received() call failed."
        )
        self.assertIs(reports[0]["exception"], exc)
        # A reset by the peer: connection_lost gets the OSError subclass, with its errno.
        reports.clear()
        tr, p, peer = self.connected(lambda: Recorder(self.loop))
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        tr.write(b"unread")
        peer.close()
        exc = self.loop.run_until_complete(p.lost)
        self.assertIsInstance(exc, ConnectionResetError)
        self.assertEqual(exc.errno, errno.ECONNRESET)

    def test_tcp_connections_use_it(self):
        served = []

        class Echo(Recorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                served.append(self)

            def data_received(self, data):
                self.transport.write(data)

        async def main():
            server = await self.loop.create_server(lambda: Echo(self.loop), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            self.assertEqual(type(w.transport).__name__, "_SocketTransport")
            w.write(b"ping")
            self.assertEqual(await r.readexactly(4), b"ping")
            self.assertEqual(type(served[0].transport).__name__, "_SocketTransport")
            w.close()
            await w.wait_closed()
            await served[0].lost
            server.close()
            await server.wait_closed()

        self.loop.run_until_complete(main())


    def test_is_closing_follows_close_and_the_state_lives_in_slots(self):
        tr, p, peer = self.connected(lambda: Recorder(self.loop))
        self.assertIs(tr.is_closing(), False)
        for name in ("_conn_lost", "_closing", "_eof", "_protocol", "_buffer"):
            self.assertNotIn(name, vars(tr))
        self.assertIs(tr._protocol, p)
        tr.close()
        self.assertIs(tr.is_closing(), True)
        self.assertIsNone(self.loop.run_until_complete(p.lost))
        self.assertIs(tr.is_closing(), True)
        # A write on a closing transport takes asyncio's route (nothing is sent).
        tr.write(b"late")
        peer.setblocking(False)
        self.assertEqual(peer.recv(100), b"")

    def stream_pair(self, protocol_class):
        """A StreamReader fed by ``protocol_class`` (a StreamReaderProtocol) over one end of a
        socket pair, and the other end (blocking)."""
        a, b = socket.socketpair()
        self.addCleanup(b.close)

        async def make():
            reader = asyncio.StreamReader()
            tr, proto = await self.loop.connect_accepted_socket(
                lambda: protocol_class(reader), a
            )
            return reader, tr, proto

        reader, tr, proto = self.loop.run_until_complete(make())
        return reader, tr, proto, b

    def test_stream_readers_are_fed_as_asyncio_s_protocol_feeds_them(self):
        reader, tr, proto, peer = self.stream_pair(asyncio.StreamReaderProtocol)
        peer.sendall(b"line one\nline two\n")

        async def lines():
            return [await reader.readline(), await reader.readline()]

        self.assertEqual(
            self.loop.run_until_complete(asyncio.wait_for(lines(), 5)),
            [b"line one\n", b"line two\n"],
        )
        # Past twice the limit the reader pauses the transport, and resumes it when read.
        big = b"y" * (3 * 64 * 1024)
        peer.sendall(big)
        self.wait_for(lambda: not tr.is_reading())
        self.assertTrue(reader._paused)
        got = self.loop.run_until_complete(reader.readexactly(len(big)))
        self.assertEqual(got, big)
        self.assertTrue(tr.is_reading())
        peer.shutdown(socket.SHUT_WR)
        self.assertEqual(self.loop.run_until_complete(reader.read()), b"")
        self.assertTrue(reader.at_eof())
        tr.close()
        self.wait_for(lambda: tr._sock is None)

    def test_a_stream_protocol_subclass_or_failing_reader_gets_asyncio_s_calls(self):
        seen = []

        class Counting(asyncio.StreamReaderProtocol):
            def data_received(self, data):
                seen.append(bytes(data))
                super().data_received(data)

        reader, tr, proto, peer = self.stream_pair(Counting)
        peer.sendall(b"abc")
        got = self.loop.run_until_complete(asyncio.wait_for(reader.readexactly(3), 5))
        self.assertEqual(got, b"abc")
        self.assertEqual(seen, [b"abc"])
        tr.close()
        self.wait_for(lambda: tr._sock is None)
        # A reader whose feed_data raises: the transport's fatal error, with the message of
        # a failing data_received.
        reports = []
        self.loop.set_exception_handler(lambda loop, ctx: reports.append(ctx))
        reader, tr, proto, peer = self.stream_pair(asyncio.StreamReaderProtocol)

        def broken(data):
            raise ZeroDivisionError("feed")

        reader.feed_data = broken
        peer.sendall(b"x")
        self.wait_for(lambda: tr._sock is None)
        self.assertEqual(
            reports[0]["message"], "Fatal error: protocol.data_received() call failed."
        )
        self.assertIsInstance(reports[0]["exception"], ZeroDivisionError)

    def test_tls_runs_asyncio_s_ssl_protocol_over_it(self):
        try:
            from test.test_asyncio import utils as test_utils
        except ImportError:
            self.skipTest("CPython's test package (its certificates) is not installed")
        served = []

        class Echo(Recorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                served.append(self)

            def data_received(self, data):
                self.transport.write(data)

        async def main():
            server = await self.loop.create_server(
                lambda: Echo(self.loop),
                "127.0.0.1",
                0,
                ssl=test_utils.simple_server_sslcontext(),
            )
            port = server.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection(
                "127.0.0.1", port, ssl=test_utils.simple_client_sslcontext()
            )
            w.write(b"secret" * 10000)
            self.assertEqual(await r.readexactly(60000), b"secret" * 10000)
            # The application transport is asyncio's; the socket transport under it is the
            # native one.
            raw = w.transport._ssl_protocol._transport
            self.assertEqual(type(raw).__name__, "_SocketTransport")
            w.close()
            await w.wait_closed()
            await served[0].lost
            server.close()
            await server.wait_closed()

        self.loop.run_until_complete(asyncio.wait_for(main(), 10))


class PipeTests(LoopTestCase):
    def test_read_and_write_pipes(self):
        rfd, wfd = os.pipe()

        async def main():
            reader = asyncio.StreamReader()
            rtransport, _ = await self.loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rfd, "rb", 0)
            )
            wtransport, _ = await self.loop.connect_write_pipe(
                asyncio.Protocol, os.fdopen(wfd, "wb", 0)
            )
            wtransport.write(b"through the pipe")
            wtransport.close()
            data = await reader.read()
            rtransport.close()
            await asyncio.sleep(0)
            return data

        before = fd_count() - 2
        self.assertEqual(
            self.loop.run_until_complete(asyncio.wait_for(main(), 10)), b"through the pipe"
        )
        self.assertEqual(fd_count(), before)


def zombies_of(pid):
    """This process's children that are zombies (``/proc``)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(entry))
    return out


class SubprocessTests(LoopTestCase):
    def test_exit_codes_output_and_no_zombie_or_fd_left(self):
        before = fd_count()

        async def main():
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import sys; sys.stdout.write(sys.stdin.read().upper()); sys.exit(3)",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            out, _ = await proc.communicate(b"shout")
            killed = await asyncio.create_subprocess_shell("sleep 30")
            killed.kill()
            return out, proc.returncode, await killed.wait()

        asyncio.set_event_loop(self.loop)
        out = self.loop.run_until_complete(asyncio.wait_for(main(), 20))
        self.assertEqual(out, (b"SHOUT", 3, -signal.SIGKILL))
        self.assertEqual(zombies_of(os.getpid()), [])
        self.assertEqual(self.loop._children, {})
        self.assertEqual(fd_count(), before)

    def test_a_child_still_running_when_the_loop_closes_is_reaped(self):
        async def main():
            proc = await asyncio.create_subprocess_exec("sleep", "0.2")
            return proc.pid, proc._transport

        pid, transport = self.loop.run_until_complete(asyncio.wait_for(main(), 10))
        self.assertIn(pid, self.loop._children)
        self.loop.close()
        self.assertEqual(self.loop._children, {})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.02)
        self.assertFalse(os.path.exists(f"/proc/{pid}"), "the child was not reaped")
        # The transport's pipes are the transport's (its process is gone).
        transport._proc.returncode = 0
        transport.close()

    def test_the_policy_keeps_asyncio_s_child_watcher_api(self):
        if sys.version_info >= (3, 14):
            self.skipTest("asyncio has no child watchers any more")
        policy = evloop.EventLoopPolicy()
        watcher = asyncio.SafeChildWatcher()
        policy.set_child_watcher(watcher)
        self.assertIs(policy.get_child_watcher(), watcher)
        policy.set_child_watcher(None)
        watcher.close()


class SignalTests(LoopTestCase):
    def setUp(self):
        super().setUp()
        if threading.current_thread() is not threading.main_thread():
            self.skipTest("signal handlers need the main thread")

    def test_a_signal_runs_its_handler_on_the_loop_and_removal_restores_the_default(self):
        before = fd_count()
        got = []

        def handler(*args):
            got.append(args)
            self.loop.stop()

        self.loop.add_signal_handler(signal.SIGUSR1, handler, "usr1")
        # The wake-up fd stays installed between runs while a handler is registered.
        self.assertNotEqual(signal.set_wakeup_fd(-1), -1)
        signal.set_wakeup_fd(self.loop._wakeup[1].fileno())
        self.guard(10)
        self.loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
        self.loop.run_forever()
        self.assertFalse(self.watchdog_fired)
        self.assertEqual(got, [("usr1",)])
        self.assertTrue(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)
        self.assertEqual(signal.set_wakeup_fd(-1), -1)
        self.assertEqual(fd_count(), before)

    def test_bad_handlers_and_signals_are_refused_and_close_removes_handlers(self):
        async def coro():
            pass

        with self.assertRaises(TypeError):
            self.loop.add_signal_handler(signal.SIGUSR2, coro)
        with self.assertRaises(ValueError):
            self.loop.add_signal_handler(0, print)
        with self.assertRaisesRegex(RuntimeError, "cannot be caught"):
            self.loop.add_signal_handler(signal.SIGKILL, print)
        self.loop.add_signal_handler(signal.SIGUSR2, print)
        self.loop.close()
        self.assertEqual(signal.getsignal(signal.SIGUSR2), signal.SIG_DFL)
        self.assertEqual(signal.set_wakeup_fd(-1), -1)

    def test_off_the_main_thread_it_is_a_runtime_error(self):
        errors = []

        def other():
            lp = evloop.new_event_loop()
            try:
                lp.add_signal_handler(signal.SIGUSR1, print)
            except RuntimeError as exc:
                errors.append(exc)
            finally:
                lp.close()

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        self.assertEqual(len(errors), 1)
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)


if __name__ == "__main__":
    unittest.main()
