"""Runs one module of CPython's ``test.test_asyncio`` against one event loop.

    python run_module.py --subject evloop --module test_events --out results.jsonl

Subjects: ``stdlib`` (asyncio's own selector loop), ``uvloop``, ``rloop``, ``evloop``.

Two kinds of modules:

* mixin modules (``test_events``, ``test_sock_lowlevel``, ``test_server``,
  ``test_buffered_proto``, ``test_subprocess``) hold their tests in mixins that take the loop
  from ``create_event_loop()`` / ``new_loop()`` (or ``setUp``); a test class is built here from
  the mixins with that method returning the subject's loop. ``test_events``'s
  ``UnixEventLoopTestsMixin`` is left out: it installs the stdlib child watcher.
* policy-driven modules (every other one) create their loops through the event loop policy
  (``asyncio.run``, ``asyncio.Runner``, ``IsolatedAsyncioTestCase``, ``new_event_loop``):
  both the policy and ``asyncio.DefaultEventLoopPolicy`` are set to the subject's, so that a
  module's teardown, which resets the policy, gets the subject's policy back.

Each test's outcome goes to the ``--out`` file as one JSON object per line, written as soon as
the test ends, after a ``start`` line written when it begins; so a process killed in a hang
leaves the finished tests and the name of the hanging one. ``custom_loop`` says whether the test
created a loop of the subject (through the factory or the policy): a test that only uses
asyncio's ``TestLoop`` says false. ``tls`` marks tests that need TLS (by name).

A per-test watchdog (``faulthandler.dump_traceback_later``) ends the process with a traceback
when one test runs longer than ``--test-timeout`` seconds; the caller re-runs the module with
the hanging test in ``--exclude``.
"""

import argparse
import asyncio
import faulthandler
import importlib
import json
import os
import re
import sys
import time
import traceback
import unittest

MIXIN_MODULES = (
    "test_events",
    "test_sock_lowlevel",
    "test_server",
    "test_buffered_proto",
    "test_subprocess",
)

# Set while a test runs when it created a loop of the subject.
_created = [False]


def _shim(loop):
    """asyncio's test clean-up (``test_utils.TestCase.close_loop``) reads the private
    ``loop._default_executor``; a loop without it (uvloop, rloop) gets ``None`` here, so that the
    clean-up does not fail every test. evloop has the attribute."""
    if not hasattr(loop, "_default_executor"):
        try:
            loop._default_executor = None
        except AttributeError:
            pass
    return loop


def _subject(name):
    """The subject's loop factory and policy class."""
    if name == "stdlib":
        factory = asyncio.SelectorEventLoop
        policy = asyncio.DefaultEventLoopPolicy
    elif name == "uvloop":
        import uvloop

        factory, policy = uvloop.new_event_loop, uvloop.EventLoopPolicy
    elif name == "rloop":
        import rloop

        factory, policy = rloop.new_event_loop, rloop.EventLoopPolicy
    elif name == "evloop":
        import evloop

        factory, policy = evloop.new_event_loop, evloop.EventLoopPolicy
    else:
        raise SystemExit(f"unknown subject {name!r}: stdlib, uvloop, rloop or evloop")

    def recording_factory():
        _created[0] = True
        return _shim(factory())

    class RecordingPolicy(policy):
        def new_event_loop(self):
            _created[0] = True
            return _shim(super().new_event_loop())

    RecordingPolicy.__name__ = f"{name}RecordingPolicy"
    return recording_factory, RecordingPolicy


def _mixin_classes(module, mod, factory):
    """The test classes of a mixin module, with the subject's loop."""
    from test.test_asyncio import utils as test_utils

    if module == "test_events":

        class EventLoopTests(mod.EventLoopTestsMixin, mod.SubprocessTestsMixin, test_utils.TestCase):
            def create_event_loop(self):
                return factory()

        return [EventLoopTests]
    if module == "test_sock_lowlevel":

        class SockTests(mod.BaseSockTestsMixin, test_utils.TestCase):
            def create_event_loop(self):
                return factory()

        return [SockTests]
    if module == "test_server":

        class StartServerTests(mod.BaseStartServer, unittest.TestCase):
            def new_loop(self):
                return factory()

        return [StartServerTests]
    if module == "test_buffered_proto":

        class BufferedProtocolTests(mod.BaseTestBufferedProtocol, unittest.TestCase):
            def new_loop(self):
                return factory()

        return [BufferedProtocolTests]
    if module == "test_subprocess":

        class SubprocessTests(mod.SubprocessMixin, test_utils.TestCase):
            def setUp(self):
                super().setUp()
                self.loop = factory()
                self.set_event_loop(self.loop)

        return [SubprocessTests]
    raise AssertionError(module)


def _is_tls(method):
    return bool(re.search(r"ssl|tls", method, re.IGNORECASE))


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


class Recorder(unittest.TestResult):
    """Writes one JSON line per test, as soon as it ends."""

    def __init__(self, out, test_timeout):
        super().__init__()
        self.out = out
        self.test_timeout = test_timeout
        self.current = None

    def _write(self, obj):
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def _id(self, test):
        cls = type(test)
        method = getattr(test, "_testMethodName", str(test))
        return cls.__name__, method

    def startTest(self, test):
        super().startTest(test)
        _created[0] = False
        cls, method = self._id(test)
        self.current = {
            "test": f"{cls}.{method}",
            "outcome": None,
            "reason": "",
            "traceback": "",
            "started": time.monotonic(),
        }
        self._write({"start": f"{cls}.{method}"})
        print(f"  {cls}.{method} ...", end=" ", file=sys.stderr, flush=True)
        if self.test_timeout:
            faulthandler.dump_traceback_later(self.test_timeout, exit=True)

    def _set(self, outcome, err=None, reason=None):
        cur = self.current
        if cur is None:
            return
        # The first failure wins (a subtest failure, then the test's own end).
        if cur["outcome"] not in (None, "pass"):
            return
        cur["outcome"] = outcome
        if err is not None:
            etype, value, tb = err
            cur["reason"] = traceback.format_exception_only(etype, value)[-1].strip()[:500]
            cur["traceback"] = "".join(traceback.format_exception(etype, value, tb))[-6000:]
        elif reason is not None:
            cur["reason"] = str(reason)[:500]

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set("pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set("fail", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._set("error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set("skip", reason=reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set("xfail", err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set("fail", reason="unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._set("fail" if failed else "error", err)

    def stopTest(self, test):
        if self.test_timeout:
            faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        cur = self.current
        self.current = None
        if cur is None:
            return
        if cur["outcome"] is None:
            cur["outcome"] = "pass"
        cur["seconds"] = round(time.monotonic() - cur.pop("started"), 3)
        cls, method = self._id(test)
        cur["custom_loop"] = _created[0]
        cur["tls"] = _is_tls(method)
        self._write(cur)
        print(cur["outcome"], file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subject", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--test-timeout", type=float, default=60.0)
    ap.add_argument("--exclude", action="append", default=[], help="Class.method to leave out")
    ap.add_argument("--append", action="store_true", help="append to --out")
    args = ap.parse_args()

    factory, policy = _subject(args.subject)
    mod = importlib.import_module(f"test.test_asyncio.{args.module}")
    if args.module in MIXIN_MODULES:
        suite = unittest.TestSuite()
        loader = unittest.TestLoader()
        for cls in _mixin_classes(args.module, mod, factory):
            suite.addTests(loader.loadTestsFromTestCase(cls))
    else:
        asyncio.DefaultEventLoopPolicy = policy
        asyncio.set_event_loop_policy(policy())
        suite = unittest.TestLoader().loadTestsFromModule(mod)

    excluded = set(args.exclude)
    kept = unittest.TestSuite()
    for t in _flatten(suite):
        name = f"{type(t).__name__}.{getattr(t, '_testMethodName', str(t))}"
        if name not in excluded:
            kept.addTest(t)

    # The module's setUpModule / tearDownModule run as unittest runs them: wrap the kept tests
    # in a suite that unittest treats as the module's (the tests' classes carry the module).
    with open(args.out, "a" if args.append else "w") as out:
        result = Recorder(out, args.test_timeout)
        start = time.monotonic()
        kept.run(result)
        # Errors of setUpModule / tearDownModule / setUpClass are not tests: report them.
        for test, err in result.errors:
            if isinstance(test, unittest.suite._ErrorHolder):
                out.write(json.dumps({"module_error": str(test), "traceback": err[-3000:]}) + "\n")
        out.write(json.dumps({"done": True, "seconds": round(time.monotonic() - start, 1)}) + "\n")
    print(
        f"{args.subject} {args.module}: {result.testsRun} tests, {len(result.failures)} failures, "
        f"{len(result.errors)} errors, {len(result.skipped)} skipped",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
