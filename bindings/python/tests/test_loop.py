"""The evloop package's own tests: the loop core as asyncio code sees it.

Run with ``python -m unittest discover -s bindings/python/tests`` in a venv with the package
built (``cargo xtask test --python`` does both). Every test that waits has a way out: a
watchdog timer on the loop, a timeout on joins, and a process-wide traceback dump.
"""

import asyncio
from asyncio import format_helpers
import concurrent.futures
import contextvars
import faulthandler
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
import unittest
import warnings
import weakref

import evloop

# A test that hangs ends the run with the stacks of every thread.
faulthandler.dump_traceback_later(300, exit=True)

VAR = contextvars.ContextVar("VAR", default="unset")


def fd_count():
    return len(os.listdir("/proc/self/fd"))


class LoopTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()
        self.fired = []

    def tearDown(self):
        if not self.loop.is_closed():
            self.loop.close()
        asyncio.set_event_loop(None)

    def run_briefly(self):
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()

    def guard(self, seconds=10.0):
        """A watchdog: stops the loop after ``seconds`` and notes it. It runs no Python
        bytecode (C callables only), so a signal's Python handler does not run in it."""
        self.loop.call_later(seconds, self.fired.append, True)
        self.loop.call_later(seconds, self.loop.stop)

    @property
    def watchdog_fired(self):
        return bool(self.fired)


class CallSoonTests(LoopTestCase):
    def test_callbacks_run_in_order_with_their_arguments(self):
        out = []
        for i in range(5):
            self.loop.call_soon(out.append, i)
        self.loop.call_soon(out.extend, (7, 8))
        self.run_briefly()
        self.assertEqual(out, [0, 1, 2, 3, 4, 7, 8])

    def test_core_07_core_19_callbacks_keep_their_place_among_threadsafe_callbacks(self):
        out = []
        self.loop.call_soon(out.append, 1)
        self.loop.call_soon_threadsafe(out.append, 2)
        self.loop.call_soon(out.append, 3)
        th = threading.Thread(target=self.loop.call_soon_threadsafe, args=(out.append, 4))
        th.start()
        th.join(10)
        self.loop.call_soon(out.append, 5)
        self.loop.call_soon(self.loop.call_soon, out.append, 7)
        self.loop.call_soon_threadsafe(self.loop.call_soon_threadsafe, out.append, 8)
        self.loop.call_soon(self.loop.call_soon, self.loop.stop)
        self.loop.call_soon(out.append, 6)
        self.guard()
        self.loop.run_forever()
        self.assertFalse(self.watchdog_fired)
        # As asyncio's loop: what was queued before the run, in the order it was queued (from
        # this thread or another), then, next iteration, what those callbacks scheduled.
        self.assertEqual(out, [1, 2, 3, 4, 5, 6, 7, 8])
        self.assertEqual(self.loop._pending_callbacks(), 0)

    def test_close_drops_the_queued_callbacks_at_once(self):
        class Obj:
            pass

        obj = Obj()
        ref = weakref.ref(obj)
        self.loop.call_soon(id, obj)
        self.assertEqual(self.loop._pending_callbacks(), 1)
        del obj
        self.assertIsNotNone(ref())
        self.loop.close()
        self.assertIsNone(ref())

    def test_a_callback_runs_in_a_copy_of_the_context_of_its_scheduling(self):
        seen = []

        def cb():
            seen.append(VAR.get())
            VAR.set("changed inside")

        token = VAR.set("at call_soon")
        self.loop.call_soon(cb)
        VAR.reset(token)
        self.loop.call_soon(lambda: seen.append(VAR.get()))
        self.run_briefly()
        self.assertEqual(seen, ["at call_soon", "unset"])
        self.assertEqual(VAR.get(), "unset")

    def test_an_explicit_context_is_used_and_checked(self):
        ctx = contextvars.copy_context()
        ctx.run(VAR.set, "explicit")
        seen = []
        h = self.loop.call_soon(lambda: seen.append(VAR.get()), context=ctx)
        self.assertIs(h.get_context(), ctx)
        self.run_briefly()
        self.assertEqual(seen, ["explicit"])
        with self.assertRaisesRegex(TypeError, "contextvars.Context"):
            self.loop.call_soon(print, context={})

    def test_cancel_prevents_the_run_and_drops_the_references_at_once(self):
        class Payload:
            pass

        payload = Payload()
        ref = weakref.ref(payload)
        ran = []
        h = self.loop.call_soon(ran.append, payload)
        self.assertFalse(h.cancelled())
        del payload
        h.cancel()
        self.assertTrue(h.cancelled())
        gc.collect()
        self.assertIsNone(ref(), "cancel() must drop the arguments now")
        self.assertIsNone(h._callback)
        self.run_briefly()
        self.assertEqual(ran, [])
        self.assertEqual(self.loop._pending_callbacks(), 0)

    def test_handle_repr_names_the_callback(self):
        def my_callback():
            pass

        h = self.loop.call_soon(my_callback)
        self.assertIn("my_callback", repr(h))
        self.assertTrue(repr(h).startswith("<Handle"))
        h.cancel()
        self.assertIn("cancelled", repr(h))

    def test_a_finished_handle_in_a_cycle_is_collected(self):
        class Owner:
            def cb(self):
                pass

        # Handles come from a free list once some have run: warm it, so that the handles
        # below are reused ones (which start untracked) as well as new ones.
        for _ in range(100):
            self.loop.call_soon(len, ())
        self.run_briefly()
        owner = Owner()
        owner.handle = self.loop.call_soon(owner.cb)
        owner.timer = self.loop.call_later(0, owner.cb)
        ref = weakref.ref(owner)
        del owner
        self.run_briefly()
        self.run_briefly()
        gc.collect()
        self.assertIsNone(ref(), "a handle must show its references to the cycle collector")

    def test_a_queued_handle_s_own_context_is_out_of_the_collector_s_sight(self):
        # While queued, the context copied for a handle is referenced only by the handle,
        # which the loop holds: the collector need not see it. It sees it again once the
        # handle runs, is dropped cancelled, or the loop closes.
        h = self.loop.call_soon(len, ())
        t = self.loop.call_later(0, len, ())
        own = [h.get_context(), t.get_context()]
        self.assertEqual([gc.is_tracked(c) for c in own], [False, False])
        given = contextvars.copy_context()
        g = self.loop.call_soon(len, (), context=given)
        self.assertTrue(gc.is_tracked(g.get_context()), "a caller's context stays tracked")
        self.run_briefly()
        self.run_briefly()
        self.assertEqual([gc.is_tracked(c) for c in own], [True, True])
        left = [self.loop.call_soon(len, ()), self.loop.call_later(60, len, ())]
        contexts = [x.get_context() for x in left]
        for x in left:
            x.cancel()
        self.loop.close()
        del left
        self.assertEqual([gc.is_tracked(c) for c in contexts], [True, True])
        gc.collect()

    def test_scheduling_after_close_fails(self):
        self.loop.close()
        for call in (
            lambda: self.loop.call_soon(print),
            lambda: self.loop.call_later(1, print),
            lambda: self.loop.call_at(1, print),
            lambda: self.loop.call_soon_threadsafe(print),
        ):
            with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
                call()


    def test_scheduling_methods_take_their_arguments_as_asyncio_does(self):
        var = contextvars.ContextVar("var", default="outer")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "inner")
        seen = []

        def record(*args):
            seen.append((args, var.get()))

        self.loop.call_soon(record, 1, 2)
        self.loop.call_soon(callback=record)
        for _ in range(2):
            # The same call site twice: the second call reuses the keyword names tuple.
            self.loop.call_soon(record, 3, context=ctx)
        self.loop.call_later(0, record, 4, context=ctx)
        self.loop.call_later(delay=0, callback=record)
        self.loop.call_at(self.loop.time(), record, 5)
        self.run_briefly()
        self.run_briefly()
        self.assertEqual(
            sorted(seen, key=repr),
            sorted(
                [
                    ((1, 2), "outer"),
                    ((), "outer"),
                    ((3,), "inner"),
                    ((3,), "inner"),
                    ((4,), "inner"),
                    ((), "outer"),
                    ((5,), "outer"),
                ],
                key=repr,
            ),
        )
        with self.assertRaisesRegex(TypeError, "missing required positional argument: 'callback'"):
            self.loop.call_soon()
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'bogus'"):
            self.loop.call_soon(record, bogus=1)
        with self.assertRaisesRegex(TypeError, "multiple values for argument 'callback'"):
            self.loop.call_soon(record, callback=record)
        with self.assertRaisesRegex(TypeError, "missing required positional argument: 'callback'"):
            self.loop.call_later(1)
        with self.assertRaises(TypeError):
            self.loop.call_at(None, record)
        with self.assertRaisesRegex(TypeError, "contextvars.Context"):
            self.loop.call_soon(record, context=1)
        with self.assertRaises(TypeError):
            self.loop.call_soon_threadsafe()
        self.assertEqual(self.loop._pending_callbacks(), 0)


class TimerTests(LoopTestCase):
    def test_time_is_the_monotonic_clock(self):
        self.assertLess(abs(self.loop.time() - time.monotonic()), 0.5)
        a = self.loop.time()
        b = self.loop.time()
        self.assertLessEqual(a, b)

    def test_timers_run_in_deadline_order_and_know_when(self):
        out = []
        now = self.loop.time()
        h3 = self.loop.call_later(0.03, out.append, 3)
        h1 = self.loop.call_at(now + 0.01, out.append, 1)
        self.loop.call_later(0.02, out.append, 2)
        self.loop.call_later(0.04, self.loop.stop)
        self.guard()
        self.assertAlmostEqual(h1.when(), now + 0.01, places=6)
        self.assertGreaterEqual(h3.when(), now + 0.03)
        self.assertLess(h1, h3)
        self.loop.run_forever()
        self.assertFalse(self.watchdog_fired)
        self.assertEqual(out, [1, 2, 3])
        self.assertGreaterEqual(self.loop.time(), h3.when())

    def test_a_cancelled_timer_does_not_run(self):
        out = []
        h = self.loop.call_later(0.001, out.append, "cancelled")
        self.loop.call_later(0.01, self.loop.stop)
        self.guard()
        h.cancel()
        self.assertTrue(h.cancelled())
        self.loop.run_forever()
        self.assertEqual(out, [])

    def test_none_delays_are_type_errors(self):
        with self.assertRaises(TypeError):
            self.loop.call_later(None, print)
        with self.assertRaises(TypeError):
            self.loop.call_at(None, print)


class RunTests(LoopTestCase):
    def test_stop_before_run_forever_runs_one_iteration(self):
        out = []
        self.loop.call_soon(out.append, 1)
        self.loop.stop()
        self.loop.run_forever()
        self.assertEqual(out, [1])
        self.assertFalse(self.loop.is_running())

    def test_run_once_replaced_on_the_instance_drives_the_run(self):
        # asyncio's tests count iterations this way: each one waits for the next timer
        # instead of spinning until it is due.
        calls = [0]
        orig = self.loop._run_once

        def counting():
            calls[0] += 1
            orig()

        self.loop._run_once = counting

        async def sleeps():
            for delay in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10):
                await asyncio.sleep(delay)
            return "done"

        self.assertEqual(self.loop.run_until_complete(sleeps()), "done")
        self.assertGreaterEqual(calls[0], 6)
        self.assertLessEqual(calls[0], 20)
        self.assertFalse(self.loop.is_running())
        # A stop requested from a callback ends the driven run, and is consumed.
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        out = []
        self.loop.call_soon(out.append, 1)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(out, [1])

    def test_run_until_complete_gives_the_result_or_raises(self):
        async def value():
            await asyncio.sleep(0.001)
            return 42

        async def fails():
            raise ValueError("boom")

        self.assertEqual(self.loop.run_until_complete(value()), 42)
        with self.assertRaisesRegex(ValueError, "boom"):
            self.loop.run_until_complete(fails())

    def test_running_state_and_running_loop(self):
        seen = []

        def cb():
            seen.append((self.loop.is_running(), asyncio.get_running_loop() is self.loop))

        self.loop.call_soon(cb)
        self.run_briefly()
        self.assertEqual(seen, [(True, True)])
        self.assertFalse(self.loop.is_running())
        with self.assertRaises(RuntimeError):
            asyncio.get_running_loop()

    def test_a_loop_stopped_before_the_future_is_done_says_so(self):
        fut = self.loop.create_future()
        self.loop.call_soon(self.loop.stop)
        with self.assertRaisesRegex(RuntimeError, "stopped before Future completed"):
            self.loop.run_until_complete(fut)

    def test_nested_and_concurrent_runs_fail(self):
        errors = []
        other = evloop.new_event_loop()

        def cb():
            for lp in (self.loop, other):
                try:
                    lp.run_until_complete(asyncio.sleep(0))
                except RuntimeError as e:
                    errors.append(str(e))

        self.loop.call_soon(cb)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the unawaited sleep()s
            self.run_briefly()
        other.close()
        self.assertEqual(
            errors,
            [
                "This event loop is already running",
                "Cannot run the event loop while another loop is running",
            ],
        )

    def test_close_rules(self):
        def close_inside():
            try:
                self.loop.close()
            except RuntimeError as e:
                errors.append(str(e))

        errors = []
        self.loop.call_soon(close_inside)
        self.run_briefly()
        self.assertEqual(errors, ["Cannot close a running event loop"])
        self.loop.close()
        self.loop.close()
        self.assertTrue(self.loop.is_closed())
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.run_forever()

    def test_closing_releases_the_loop_fds(self):
        before = fd_count()
        loops = [evloop.new_event_loop() for _ in range(10)]
        for lp in loops:
            lp.call_later(10, print)
            lp.call_soon(print)
            r, w = socket.socketpair()
            lp.add_reader(r, print)
            lp.close()
            r.close()
            w.close()
        self.assertEqual(fd_count(), before)

    def test_an_unclosed_loop_warns(self):
        lp = evloop.new_event_loop()
        with self.assertWarnsRegex(ResourceWarning, "unclosed event loop"):
            del lp
            gc.collect()


class ExceptionTests(LoopTestCase):
    def test_the_handler_gets_the_exception_object_and_the_loop_goes_on(self):
        contexts = []
        self.loop.set_exception_handler(lambda loop, ctx: contexts.append((loop, ctx)))
        err = ValueError("in a callback")

        def bad():
            raise err

        out = []
        h = self.loop.call_soon(bad)
        self.loop.call_soon(out.append, "after")
        self.run_briefly()
        self.assertEqual(out, ["after"])
        self.assertEqual(len(contexts), 1)
        loop, ctx = contexts[0]
        self.assertIs(loop, self.loop)
        self.assertIs(ctx["exception"], err)
        self.assertIs(ctx["handle"], h)
        self.assertTrue(ctx["message"].startswith("Exception in callback"), ctx["message"])
        self.assertIn("bad", ctx["message"])

        # A handle nobody kept (the loop runs it without referencing its parts once more):
        # the report shows it as well, callback, arguments and context included.
        def bad_with(arg):
            raise err

        self.loop.call_soon(bad_with, 42)
        self.run_briefly()
        self.assertEqual(len(contexts), 2)
        ctx = contexts[1][1]
        self.assertIs(ctx["exception"], err)
        # As asyncio formats it on this Python (3.13 leaves the arguments out unless the
        # loop is in debug mode).
        shown = format_helpers._format_callback(bad_with, (42,), None)
        self.assertIn(shown, ctx["message"])
        self.assertIn(shown, repr(ctx["handle"]))
        self.assertEqual(ctx["handle"]._args, (42,))
        self.assertIsNotNone(ctx["handle"].get_context())

    def test_the_handler_runs_in_the_failing_code_s_context_from_python_3_12(self):
        # asyncio 3.12+ calls a custom handler in the context of the failing handle or task;
        # 3.11 and before, in the loop's.
        expected = "set by the callback" if sys.version_info >= (3, 12) else "unset"
        seen = []
        self.loop.set_exception_handler(lambda loop, ctx: seen.append(VAR.get()))

        def bad():
            VAR.set("set by the callback")
            raise ValueError("in a callback")

        async def bad_task():
            VAR.set("set by the callback")
            raise ValueError("in a task")

        self.loop.call_soon(bad)
        self.run_briefly()
        task = self.loop.create_task(bad_task())
        self.loop.run_until_complete(asyncio.sleep(0.01))
        del task
        gc.collect()
        self.assertEqual(seen, [expected, expected])

    def test_the_default_handler_logs_with_the_traceback(self):
        def bad():
            raise KeyError("logged")

        self.loop.call_soon(bad)
        with self.assertLogs("asyncio", level="ERROR") as logs:
            self.run_briefly()
        self.assertIn("Exception in callback", logs.output[0])
        self.assertIn("KeyError: 'logged'", logs.output[0])

    def test_an_error_in_the_handler_is_logged(self):
        def handler(loop, ctx):
            raise RuntimeError("handler fails")

        self.loop.set_exception_handler(handler)
        self.loop.call_soon(lambda: 1 / 0)
        with self.assertLogs("asyncio", level="ERROR") as logs:
            self.run_briefly()
        self.assertIn("Unhandled error in exception handler", logs.output[0])
        with self.assertRaises(TypeError):
            self.loop.set_exception_handler(42)

    def test_keyboard_interrupt_and_system_exit_end_the_run(self):
        for exc in (KeyboardInterrupt, SystemExit):
            out = []

            def interrupt():
                raise exc()

            self.loop.call_soon(interrupt)
            self.loop.call_soon(out.append, "next")
            with self.assertRaises(exc):
                self.loop.run_forever()
            self.assertFalse(self.loop.is_running())
            # The rest of the iteration did not run; it runs on the next run.
            self.assertEqual(out, [])
            self.run_briefly()
            self.assertEqual(out, ["next"])

    def test_debug_mode_keeps_sources_and_logs_slow_callbacks(self):
        self.loop.set_debug(True)
        self.assertTrue(self.loop.get_debug())
        self.loop.slow_callback_duration = 0.001
        self.assertEqual(self.loop.slow_callback_duration, 0.001)
        h = self.loop.call_soon(time.sleep, 0.02)
        self.assertTrue(h._source_traceback)
        self.assertIn("test_loop.py", h._source_traceback[-1][0])
        with self.assertLogs("asyncio", level="WARNING") as logs:
            self.run_briefly()
        self.assertTrue(any("Executing" in line and "took" in line for line in logs.output))
        with self.assertRaisesRegex(TypeError, "coroutines cannot be used"):
            self.loop.call_soon(asyncio.sleep)

    def test_a_debug_handle_keeps_its_source_through_cancel_and_releases_it_when_freed(self):
        # The source traceback, the cancelled mark and the copied context share the handle's
        # last word: each must keep its meaning beside the others.
        class Owner:
            def cb(self):
                pass

        self.loop.set_debug(True)
        h = self.loop.call_soon(len, ())
        tb = h._source_traceback
        self.assertIn("test_loop.py", tb[-1][0])
        h.cancel()
        self.assertTrue(h.cancelled())
        self.assertIs(h._source_traceback, tb, "cancel() keeps the source traceback")
        self.assertIn("cancelled", repr(h))
        self.assertIn("created at", repr(h))
        tb_ref = weakref.ref(tb)
        del tb
        self.run_briefly()
        del h
        self.assertIsNone(tb_ref(), "a freed handle releases its source traceback")
        # In a cycle through the traceback (the handle kept by the object whose method it
        # calls, the object kept by the traceback): the collector must see the traceback.
        owner = Owner()
        owner.handle = self.loop.call_soon(owner.cb)
        owner.handle._source_traceback.append(owner)
        tb_ref = weakref.ref(owner.handle._source_traceback)
        ref = weakref.ref(owner)
        del owner
        self.run_briefly()
        gc.collect()
        self.assertIsNone(ref())
        self.assertIsNone(tb_ref())

    def test_a_handle_is_four_words_behind_its_header(self):
        # 64 bytes with the collector's header: one of pymalloc's size classes (a queued
        # handle is most of the memory a queued callback takes).
        h = self.loop.call_soon(len, ())
        self.assertLessEqual(sys.getsizeof(h), 64)
        self.run_briefly()

    def test_a_handle_s_arguments_are_described_as_asyncio_describes_them(self):
        # In debug mode on every Python; outside it up to 3.12 only (3.13's asyncio leaves
        # them out unless the loop is in debug mode).
        def cb(arg):
            pass

        h = self.loop.call_soon(cb, 42)
        later = self.loop.call_later(10, cb, 43)
        shown = sys.version_info < (3, 13)
        self.assertEqual("cb(42)" in repr(h), shown, repr(h))
        self.assertEqual("cb(43)" in repr(later), shown, repr(later))
        later.cancel()
        self.loop.set_debug(True)
        h = self.loop.call_soon(cb, 44)
        later = self.loop.call_later(10, cb, 45)
        self.assertIn("cb(44)", repr(h))
        self.assertIn("cb(45)", repr(later))
        later.cancel()
        self.run_briefly()


class ThreadTests(LoopTestCase):
    def test_call_soon_threadsafe_wakes_an_idle_loop(self):
        def other():
            time.sleep(0.05)
            self.loop.call_soon_threadsafe(self.loop.stop)

        th = threading.Thread(target=other)
        self.guard()
        th.start()
        self.loop.run_forever()
        th.join(10)
        self.assertFalse(self.watchdog_fired, "the loop was not woken")

    def test_the_gil_is_released_while_the_loop_waits(self):
        # The thread needs the GIL to count and to stop the loop; the loop waits for a
        # 10 s watchdog meanwhile. If the wait held the GIL, the watchdog would stop it.
        count = [0]

        def other():
            while count[0] < 100_000:
                count[0] += 1
            self.loop.call_soon_threadsafe(self.loop.stop)

        th = threading.Thread(target=other)
        self.guard()
        self.loop.call_soon(th.start)
        self.loop.run_forever()
        th.join(10)
        self.assertFalse(self.watchdog_fired)
        self.assertEqual(count[0], 100_000)

    def in_thread(self, fn, *args):
        """Runs ``fn(*args)`` on another thread and waits for it: what it does happens before
        what this thread does next."""
        out = []
        th = threading.Thread(target=lambda: out.append(fn(*args)))
        th.start()
        th.join(10)
        self.assertFalse(th.is_alive())
        return out[0] if out else None

    def test_core_19_threadsafe_callbacks_keep_their_enqueue_order_among_call_soon(self):
        out = []
        # Before the run: each threadsafe callback takes its place behind what this thread
        # queued before it, and ahead of what it queues after.
        self.in_thread(self.loop.call_soon_threadsafe, out.append, "t1")
        self.in_thread(self.loop.call_soon_threadsafe, out.append, "t2")
        self.loop.call_soon(out.append, "s1")
        self.in_thread(self.loop.call_soon_threadsafe, out.append, "t3")
        self.loop.call_soon(out.append, "s2")
        self.in_thread(self.loop.call_soon_threadsafe, out.append, "t4")

        # While the loop runs: a callback makes another thread queue one, then queues its own.
        def during():
            out.append("d")
            self.in_thread(self.loop.call_soon_threadsafe, out.append, "t5")
            self.loop.call_soon(out.append, "s3")
            self.in_thread(self.loop.call_soon_threadsafe, out.append, "t6")

        self.loop.call_soon(during)
        self.run_briefly()
        self.run_briefly()
        self.assertEqual(out, ["t1", "t2", "s1", "t3", "s2", "t4", "d", "t5", "s3", "t6"])
        self.assertEqual(self.loop._pending_callbacks(), 0)

    def test_a_threadsafe_handle_s_own_context_is_out_of_the_collector_s_sight_while_queued(self):
        # As with call_soon: the context copied for a handle queued from another thread is
        # untracked while the handle waits, and tracked again when it runs or is dropped.
        handles = []
        self.in_thread(lambda: handles.append(self.loop.call_soon_threadsafe(len, ())))
        self.in_thread(lambda: handles.append(self.loop.call_soon_threadsafe(len, ())))
        contexts = [h.get_context() for h in handles]
        self.assertEqual([gc.is_tracked(c) for c in contexts], [False, False])
        self.run_briefly()
        self.assertEqual([gc.is_tracked(c) for c in contexts], [True, True])
        self.in_thread(lambda: handles.append(self.loop.call_soon_threadsafe(len, ())))
        left = handles[-1].get_context()
        self.assertFalse(gc.is_tracked(left))
        self.loop.close()
        self.assertTrue(gc.is_tracked(left), "closing the loop tracks it again")
        del handles, contexts, left
        gc.collect()

    def test_core_06_core_19_what_other_threads_queue_while_a_batch_runs_waits_for_the_next_iteration(self):
        out = []

        def first():
            out.append("first")
            # Queued from another thread while this threadsafe callback runs: the iteration
            # runs what was ready when it began, so this one runs on the next run.
            self.in_thread(self.loop.call_soon_threadsafe, out.append, "second")
            self.loop.stop()

        self.in_thread(self.loop.call_soon_threadsafe, first)
        self.guard()
        self.loop.run_forever()
        self.assertEqual(out, ["first"])
        self.assertEqual(self.loop._pending_callbacks(), 1)
        self.run_briefly()
        self.assertEqual(out, ["first", "second"])
        self.assertFalse(self.watchdog_fired)

    def test_core_19_a_threadsafe_handle_is_cancelled_from_any_thread_and_closing_drops_the_queue(self):
        out = []
        h1 = self.in_thread(self.loop.call_soon_threadsafe, out.append, 1)
        h2 = self.in_thread(self.loop.call_soon_threadsafe, out.append, 2)
        self.in_thread(h1.cancel)
        self.assertTrue(h1.cancelled())
        self.run_briefly()
        self.assertEqual(out, [2])
        self.assertFalse(h2.cancelled())

        class Obj:
            pass

        obj = Obj()
        ref = weakref.ref(obj)
        self.in_thread(self.loop.call_soon_threadsafe, id, obj)
        del obj
        self.assertIsNotNone(ref())
        self.loop.close()
        self.assertIsNone(ref(), "closing the loop kept a queued threadsafe callback")
        errors = []

        def late():
            try:
                self.loop.call_soon_threadsafe(print)
            except RuntimeError as e:
                errors.append(str(e))

        self.in_thread(late)
        self.assertEqual(errors, ["Event loop is closed"])

    def test_core_19_keyboard_interrupt_in_a_batch_keeps_the_rest_of_it(self):
        out = []

        def interrupt():
            raise KeyboardInterrupt

        def queue():
            self.loop.call_soon_threadsafe(out.append, 1)
            self.loop.call_soon_threadsafe(interrupt)
            self.loop.call_soon_threadsafe(out.append, 2)
            self.loop.call_soon_threadsafe(out.append, 3)

        self.in_thread(queue)
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        self.assertEqual(out, [1])
        self.run_briefly()
        self.assertEqual(out, [1, 2, 3])
        self.assertEqual(self.loop._pending_callbacks(), 0)

    def test_core_19_no_wake_up_is_lost_to_producers_racing_the_loop_s_wait(self):
        # Producers hammer call_soon_threadsafe while the loop runs batches, goes to sleep and
        # wakes up again and again (each pause gives the loop time to drain and wait); every
        # callback must run without the watchdog's help. Several rounds: the races are
        # probabilistic.
        producers, per_producer = 3, 20_000
        total = producers * per_producer
        count = [0]

        def cb():
            count[0] += 1
            if count[0] == total:
                self.loop.stop()

        def produce(seed):
            for i in range(per_producer):
                self.loop.call_soon_threadsafe(cb)
                if (i * 7 + seed) % 97 == 0:
                    time.sleep(0.0001 * (i % 3))

        # The GIL changes hands every few microseconds instead of every 5 ms: the producers
        # queue while a batch runs, while the loop is about to wait, and while it waits.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        try:
            for round in range(5):
                count[0] = 0
                threads = [
                    threading.Thread(target=produce, args=(round * producers + k,))
                    for k in range(producers)
                ]
                watchdog = self.loop.call_later(10, self.loop.stop)
                for th in threads:
                    th.start()
                self.loop.run_forever()
                watchdog.cancel()
                for th in threads:
                    th.join(10)
                self.assertEqual(count[0], total, f"a wake-up was lost in round {round}")
                self.assertEqual(self.loop._pending_callbacks(), 0)
        finally:
            sys.setswitchinterval(interval)

    def test_other_threads_get_a_clear_error_for_thread_bound_calls(self):
        errors = []
        handles = []

        def other():
            try:
                self.loop.call_soon(print)
            except RuntimeError as e:
                errors.append(str(e))
            h = self.loop.call_soon_threadsafe(print, "never")
            h.cancel()
            handles.append(h)

        th = threading.Thread(target=other)
        th.start()
        th.join(10)
        self.assertEqual(len(errors), 1)
        self.assertIn("Non-thread-safe operation", errors[0])
        self.assertTrue(handles[0].cancelled())
        with self.assertRaises(AssertionError):
            with self.assertLogs("asyncio", level="ERROR"):
                self.run_briefly()

    def test_ctrl_c_interrupts_a_waiting_loop(self):
        def other():
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)

        th = threading.Thread(target=other)
        self.guard()
        th.start()
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        th.join(10)
        self.assertFalse(self.watchdog_fired, "SIGINT did not interrupt the wait")


class FutureTaskTests(LoopTestCase):
    def test_futures_and_tasks_are_asyncio_s_own(self):
        fut = self.loop.create_future()
        self.assertIsInstance(fut, asyncio.Future)
        self.assertIs(fut.get_loop(), self.loop)

        async def coro():
            return VAR.get()

        ctx = contextvars.copy_context()
        ctx.run(VAR.set, "task context")
        if sys.version_info < (3, 11):
            # asyncio.Task has no context before 3.11.
            with self.assertRaisesRegex(TypeError, "only on Python 3.11"):
                self.loop.create_task(coro(), context=ctx)
            task = ctx.run(self.loop.create_task, coro(), name="named")
        else:
            task = self.loop.create_task(coro(), name="named", context=ctx)
        self.assertIsInstance(task, asyncio.Task)
        self.assertEqual(task.get_name(), "named")
        self.assertEqual(self.loop.run_until_complete(task), "task context")

    def test_the_task_factory_is_used(self):
        made = []

        def factory(loop, coro, **kwargs):
            t = asyncio.Task(coro, loop=loop, **kwargs)
            made.append(t)
            return t

        self.loop.set_task_factory(factory)
        self.assertIs(self.loop.get_task_factory(), factory)

        async def coro():
            return 1

        t = self.loop.create_task(coro(), name="via factory")
        self.assertEqual(made, [t])
        self.assertEqual(t.get_name(), "via factory")
        self.assertEqual(self.loop.run_until_complete(t), 1)
        self.loop.set_task_factory(None)
        self.assertIsNone(self.loop.get_task_factory())
        with self.assertRaises(TypeError):
            self.loop.set_task_factory(1)

    def test_many_tasks_and_no_callback_left_counted(self):
        async def child(i):
            await asyncio.sleep(0)
            return i

        async def main():
            return sum(await asyncio.gather(*(child(i) for i in range(1000))))

        self.assertEqual(self.loop.run_until_complete(main()), sum(range(1000)))
        self.assertEqual(self.loop._pending_callbacks(), 0)


class FdTests(LoopTestCase):
    def test_readers_and_writers(self):
        r, w = socket.socketpair()
        self.addCleanup(r.close)
        self.addCleanup(w.close)
        got = []

        def on_read(sock, tag):
            got.append((tag, sock.recv(100)))
            self.assertTrue(self.loop.remove_reader(sock))
            self.loop.stop()

        self.loop.add_reader(r, on_read, r, "read")
        writable = []
        self.loop.add_writer(w.fileno(), lambda: (writable.append(1), self.loop.remove_writer(w)))
        w.send(b"data")
        self.guard()
        self.loop.run_forever()
        self.assertFalse(self.watchdog_fired)
        self.assertEqual(got, [("read", b"data")])
        self.assertEqual(writable, [1])
        self.assertFalse(self.loop.remove_reader(r))
        self.assertFalse(self.loop.remove_writer(w))
        with self.assertRaisesRegex(ValueError, "Invalid file descriptor"):
            self.loop.add_reader(-1, print)
        with self.assertRaisesRegex(ValueError, "Invalid file object"):
            self.loop.add_reader("not a file", print)


class ExecutorTests(LoopTestCase):
    def test_run_in_executor_and_the_default_executor(self):
        self.guard()
        self.assertIsNone(self.loop._default_executor)
        fut = self.loop.run_in_executor(None, threading.get_ident)
        ident = self.loop.run_until_complete(fut)
        self.assertNotEqual(ident, threading.get_ident())
        self.assertIsInstance(self.loop._default_executor, concurrent.futures.ThreadPoolExecutor)
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        with self.assertRaisesRegex(RuntimeError, "Executor shutdown has been called"):
            self.loop.run_in_executor(None, print)
        with self.assertRaises(TypeError):
            self.loop.set_default_executor(object())

    def test_getaddrinfo_runs_in_the_executor(self):
        self.guard()
        infos = self.loop.run_until_complete(self.loop.getaddrinfo("127.0.0.1", 80))
        self.assertTrue(any(i[4][0] == "127.0.0.1" for i in infos))


class AsyncGenTests(LoopTestCase):
    def test_shutdown_asyncgens_closes_open_generators(self):
        closed = []

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        async def main():
            g = agen()
            await g.__anext__()
            return g

        g = self.loop.run_until_complete(main())
        self.assertEqual(closed, [])
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.assertEqual(closed, [True])
        del g


class PackageTests(unittest.TestCase):
    def test_run_and_the_policy(self):
        async def main():
            return type(asyncio.get_running_loop())

        self.assertIs(evloop.run(main()), evloop.Loop)
        old = asyncio.get_event_loop_policy()
        try:
            evloop.install()
            self.assertIsInstance(asyncio.get_event_loop_policy(), evloop.EventLoopPolicy)
            lp = asyncio.new_event_loop()
            self.assertIsInstance(lp, evloop.Loop)
            self.assertIsInstance(lp, asyncio.AbstractEventLoop)
            lp.close()
            self.assertIs(asyncio.run(main()), evloop.Loop)
        finally:
            asyncio.set_event_loop_policy(old)


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
