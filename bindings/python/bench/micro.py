"""Micro-benchmarks of the loop core, on asyncio's own loop, uvloop, rloop and evloop.

    python micro.py [--loops asyncio,uvloop,rloop,evloop] [--repeat 5] [--rounds 5] [--scale 1.0]
                    [--json FILE] [--instructions] [--write BENCHMARKS.md]

Each benchmark runs ``--repeat`` times per loop, in fresh processes (no loop warms the
interpreter for another): ``--rounds`` processes per loop, each timing its share of the runs,
the loops taking turns round after round so that a change in the machine's load falls on
every loop alike. The best run counts (the least disturbed by the rest of the machine). The
result is the wall time per operation, in nanoseconds:

* ``call_soon chain``: a callback that schedules the next one, N times (one callback ready at a
  time: the latency of the ready queue).
* ``call_soon batch``: N callbacks scheduled at once, then run (throughput).
* ``timers half cancelled``: N timers at spread deadlines within 10 ms, every other one
  cancelled, run until the last fires (per timer scheduled).
* ``tasks created and awaited``: N tasks of an empty coroutine created, then awaited one by one.
* ``call_soon_threadsafe``: another thread schedules N callbacks; per callback run, until the
  last.
* ``call_soon_threadsafe, context given``: the same with ``context=`` passed (one
  ``contextvars.Context`` for all), so that every loop does the same work. Without it asyncio,
  uvloop and evloop copy the calling thread's context for each callback and run the callback
  in that copy, as asyncio's contract says; rloop runs it without the caller's context (a
  context variable set by the calling thread reads as unset in the callback), which spares it
  that copy. This row compares the loops without that difference.

Each run starts with ``gc.collect()``: a fresh process has never had a full collection, and
the cycle collector makes its first one (of everything the imports left, some 15,000 objects
here) once a process has allocated some tens of thousands of tracked objects, whichever code
allocates them. Without the collection before the run, that one-time cost of the process
falls into the timed run of the loops that allocate tracked objects per callback (asyncio,
uvloop and evloop copy a ``contextvars.Context`` per ``call_soon_threadsafe``; rloop, which
does not, allocates none): a collection of a few milliseconds, tens of nanoseconds per
callback at N = 100,000, and the largest source of spread between runs. Collections that the
runs' own allocations cause are still counted.

With ``--instructions`` each figure is also counted in instructions per operation, with
valgrind's callgrind: the instructions of a process doing N operations once subtracted from
those of one doing 2N, divided by N (start-up, imports and shutdown cancel out). Unlike the
times, these counts hardly move with the load of the machine. ``--write FILE`` puts the tables
into FILE (the repository's ``BENCHMARKS.md``) between the markers ``<!-- python-micro:start
-->`` and ``<!-- python-micro:end -->``, replacing what was there.
"""

import argparse
import contextvars
import gc
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time

BENCHES = {
    "call_soon chain": 200_000,
    "call_soon batch": 200_000,
    "timers half cancelled": 100_000,
    "tasks created and awaited": 100_000,
    "call_soon_threadsafe": 100_000,
    "call_soon_threadsafe, context given": 100_000,
}
LOOPS = ("asyncio", "uvloop", "rloop", "evloop")


def new_loop(name):
    import asyncio

    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "rloop":
        import rloop

        return rloop.new_event_loop()
    if name == "evloop":
        import evloop

        return evloop.new_event_loop()
    raise SystemExit(f"unknown loop {name}")


def call_soon_chain(loop, n):
    left = [n]

    def step():
        left[0] -= 1
        if left[0]:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step)
    t = time.perf_counter()
    loop.run_forever()
    return time.perf_counter() - t


def call_soon_batch(loop, n):
    count = [0]

    def cb():
        count[0] += 1

    t = time.perf_counter()
    for _ in range(n):
        loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    elapsed = time.perf_counter() - t
    assert count[0] == n, count
    return elapsed


def timers_half_cancelled(loop, n):
    fired = [0]

    def cb():
        fired[0] += 1

    t = time.perf_counter()
    handles = [loop.call_later((i % 1000) * 1e-5, cb) for i in range(n)]
    for h in handles[::2]:
        h.cancel()
    loop.call_later(0.0101, loop.stop)
    loop.run_forever()
    elapsed = time.perf_counter() - t
    assert fired[0] == n - len(handles[::2]), fired
    # The 10 ms the last timer waits is not work: leave it out.
    return max(elapsed - 0.0101, 1e-9)


def tasks_created_and_awaited(loop, n):
    async def noop():
        pass

    async def main():
        ts = [loop.create_task(noop()) for _ in range(n)]
        for t in ts:
            await t

    t = time.perf_counter()
    loop.run_until_complete(main())
    return time.perf_counter() - t


def call_soon_threadsafe(loop, n, context=None):
    count = [0]

    def cb():
        count[0] += 1
        if count[0] == n:
            loop.stop()

    def producer():
        if context is None:
            for _ in range(n):
                loop.call_soon_threadsafe(cb)
        else:
            for _ in range(n):
                loop.call_soon_threadsafe(cb, context=context)

    th = threading.Thread(target=producer)
    t = time.perf_counter()
    th.start()
    loop.run_forever()
    elapsed = time.perf_counter() - t
    th.join()
    return elapsed


FUNCS = {
    "call_soon chain": call_soon_chain,
    "call_soon batch": call_soon_batch,
    "timers half cancelled": timers_half_cancelled,
    "tasks created and awaited": tasks_created_and_awaited,
    "call_soon_threadsafe": call_soon_threadsafe,
    "call_soon_threadsafe, context given": lambda loop, n: call_soon_threadsafe(
        loop, n, contextvars.copy_context()
    ),
}


def child(loop_name, bench, n, repeat):
    best = None
    for _ in range(repeat):
        loop = new_loop(loop_name)
        # Each run starts from a collected heap (see the doc).
        gc.collect()
        try:
            secs = FUNCS[bench](loop, n)
        finally:
            loop.close()
        best = secs if best is None else min(best, secs)
    print(json.dumps({"ns_per_op": best / n * 1e9}))


# callgrind's N (smaller than the timed N: the process runs some 50 times slower under it).
INSTRUCTIONS_N = 20_000


def instructions(loop_name, bench, n):
    """Instructions per operation: (Ir(2n) - Ir(n)) / n, each a one-shot run under callgrind."""
    counts = []
    for k in (n, 2 * n):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={tmp}/cg.out",
                    sys.executable,
                    __file__,
                    "--repeat",
                    "1",
                    "--child",
                    loop_name,
                    bench,
                    str(k),
                ],
                capture_output=True,
                text=True,
            )
        m = re.search(r"Collected : (\d+)", out.stderr)
        if out.returncode != 0 or not m:
            raise RuntimeError(f"callgrind run of {bench} on {loop_name} failed:\n{out.stderr[-2000:]}")
        counts.append(int(m.group(1)))
    return (counts[1] - counts[0]) / n


def table(title, benches, available, results, fmt):
    """A markdown table: one row per benchmark, one column per loop, then evloop's ratio to
    the best other loop."""
    others = [n for n in available if n != "evloop"]
    head = "| " + title + " | " + " | ".join(available)
    if "evloop" in available and others:
        head += " | evloop / best other"
    columns = len(available) + (1 if "evloop" in available and others else 0)
    lines = [head + " |", "|---" + "|---:" * columns + "|"]
    for bench in benches:
        row = results.get(bench, {})
        cells = [fmt(row[n]) if n in row else "—" for n in available]
        line = f"| {bench} | " + " | ".join(cells)
        if "evloop" in available and others:
            best = min((row[n] for n in others if n in row), default=None)
            ours = row.get("evloop")
            line += " | " + (f"{ours / best:.2f}" if best and ours else "—")
        lines.append(line + " |")
    return "\n".join(lines)


def write_section(path, text):
    start, end = "<!-- python-micro:start -->", "<!-- python-micro:end -->"
    with open(path) as f:
        doc = f.read()
    block = f"{start}\n{text}\n{end}"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


def versions(available):
    out = []
    for name in available:
        if name == "asyncio":
            continue
        probe = subprocess.run(
            [sys.executable, "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
            capture_output=True,
            text=True,
        )
        out.append(f"{name} {probe.stdout.strip() or '?'}")
    return ", ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", default=",".join(LOOPS))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--rounds", type=int, default=5, help="processes per loop and benchmark, taken in turns"
    )
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every N")
    ap.add_argument("--only", help="one benchmark")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument(
        "--instructions", action="store_true", help="also count instructions per operation (callgrind)"
    )
    ap.add_argument("--write", metavar="FILE", help="put the tables into FILE (BENCHMARKS.md)")
    ap.add_argument("--child", nargs=3, metavar=("LOOP", "BENCH", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.repeat)
        return
    loops = [l for l in args.loops.split(",") if l]
    available = []
    for name in loops:
        probe = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True
        )
        if probe.returncode == 0:
            available.append(name)
        else:
            print(f"({name} is not installed: left out)", file=sys.stderr)
    results = {}
    benches = [args.only] if args.only else list(BENCHES)
    for bench in benches:
        n = max(1, int(BENCHES[bench] * args.scale))
        results[bench] = {}
        rounds = max(1, min(args.rounds, args.repeat))
        failed = set()
        for r in range(rounds):
            # This round's share of the runs (the first rounds take the remainder).
            share = args.repeat // rounds + (1 if r < args.repeat % rounds else 0)
            for name in available:
                if name in failed:
                    continue
                out = subprocess.run(
                    [sys.executable, __file__, "--repeat", str(share), "--child", name, bench, str(n)],
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0:
                    print(f"{bench} on {name} failed:\n{out.stderr}", file=sys.stderr)
                    failed.add(name)
                    results[bench].pop(name, None)
                    continue
                ns = json.loads(out.stdout.strip().splitlines()[-1])["ns_per_op"]
                results[bench][name] = min(ns, results[bench].get(name, ns))
    counted = {}
    if args.instructions:
        for bench in benches:
            counted[bench] = {}
            for name in available:
                try:
                    counted[bench][name] = instructions(name, bench, INSTRUCTIONS_N)
                except RuntimeError as e:
                    print(e, file=sys.stderr)
    width = max(len(b) for b in benches)
    print(f"{'ns per operation':<{width}} " + " ".join(f"{n:>9}" for n in available))
    for bench in benches:
        row = results[bench]
        cells = []
        for name in available:
            v = row.get(name)
            cells.append(f"{v:>9.0f}" if v is not None else f"{'-':>9}")
        print(f"{bench:<{width}} " + " ".join(cells))
    if counted:
        print(f"{'instructions per operation':<{width}} " + " ".join(f"{n:>9}" for n in available))
        for bench in benches:
            row = counted[bench]
            print(
                f"{bench:<{width}} "
                + " ".join(f"{row[n]:>9.0f}" if n in row else f"{'-':>9}" for n in available)
            )
    load = os.getloadavg()[0]
    print(
        f"(Python {sys.version.split()[0]}, best of {args.repeat}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}; lower is better)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"python": sys.version.split()[0], "results": results, "instructions": counted},
                f,
                indent=2,
            )
    if args.write:
        parts = [
            "## Python",
            "",
            "The Python package (`bindings/python`) against asyncio's own loop, uvloop and rloop, "
            "all in one venv on one machine.",
            "",
            "### Micro-benchmarks",
            "",
            f"Written by `python bindings/python/bench/micro.py{' --instructions' if counted else ''} "
            f"--write BENCHMARKS.md` (in the venv of `cargo xtask test --python`): CPython "
            f"{sys.version.split()[0]}, {versions(available)}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs shared with other work (load average {load:.1f} at the end of "
            f"the run). Each figure is the best of {args.repeat} runs, in {min(args.rounds, args.repeat)} "
            "fresh processes per loop, the loops taking turns, each run starting from a collected "
            "heap (`gc.collect()`: the first full collection of a fresh process does not fall into "
            "one loop's run); what each benchmark does is in "
            "the script's doc. The last column is evloop's "
            "figure over the best other loop's (below 1.00: evloop is ahead).",
            "",
            "`call_soon_threadsafe, context given` is `call_soon_threadsafe` with `context=` "
            "passed, so that every loop does the same work: without it asyncio, uvloop and evloop "
            "copy the calling thread's `contextvars` context for each callback and run the "
            "callback in the copy, as asyncio's contract says, while rloop runs the callback "
            "without the caller's context (a context variable the calling thread set reads as "
            "unset there) and so skips that copy.",
            "",
            table("ns per operation", benches, available, results, lambda v: f"{v:.0f}"),
        ]
        if counted:
            parts += [
                "",
                f"Instructions per operation (callgrind, (Ir(2N) − Ir(N)) / N with N = "
                f"{INSTRUCTIONS_N}; the interpreter's work included, so the same Python code "
                "costs the same on every loop):",
                "",
                table("instructions per operation", benches, available, counted, lambda v: f"{v:.0f}"),
            ]
        write_section(args.write, "\n".join(parts))


if __name__ == "__main__":
    main()
