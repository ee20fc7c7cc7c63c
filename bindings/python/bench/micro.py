"""Micro-benchmarks of the loop core, on asyncio's own loop, uvloop, rloop and evloop.

    python micro.py [--loops asyncio,uvloop,rloop,evloop] [--repeat 5] [--scale 1.0] [--json FILE]

Each benchmark runs in a fresh process per loop (no loop warms the interpreter for another),
``--repeat`` times; the best run counts (the least disturbed by the rest of the machine). The
result is the wall time per operation, in nanoseconds:

* ``call_soon chain``: a callback that schedules the next one, N times (one callback ready at a
  time: the latency of the ready queue).
* ``call_soon batch``: N callbacks scheduled at once, then run (throughput).
* ``timers half cancelled``: N timers at spread deadlines within 10 ms, every other one
  cancelled, run until the last fires (per timer scheduled).
* ``tasks created and awaited``: N tasks of an empty coroutine created, then awaited one by one.
* ``call_soon_threadsafe``: another thread schedules N callbacks; per callback run, until the
  last.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

BENCHES = {
    "call_soon chain": 200_000,
    "call_soon batch": 200_000,
    "timers half cancelled": 100_000,
    "tasks created and awaited": 100_000,
    "call_soon_threadsafe": 100_000,
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


def call_soon_threadsafe(loop, n):
    count = [0]

    def cb():
        count[0] += 1
        if count[0] == n:
            loop.stop()

    def producer():
        for _ in range(n):
            loop.call_soon_threadsafe(cb)

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
}


def child(loop_name, bench, n, repeat):
    best = None
    for _ in range(repeat):
        loop = new_loop(loop_name)
        try:
            secs = FUNCS[bench](loop, n)
        finally:
            loop.close()
        best = secs if best is None else min(best, secs)
    print(json.dumps({"ns_per_op": best / n * 1e9}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", default=",".join(LOOPS))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every N")
    ap.add_argument("--only", help="one benchmark")
    ap.add_argument("--json", help="write the results here")
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
        for name in available:
            out = subprocess.run(
                [sys.executable, __file__, "--repeat", str(args.repeat), "--child", name, bench, str(n)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(f"{bench} on {name} failed:\n{out.stderr}", file=sys.stderr)
                continue
            results[bench][name] = json.loads(out.stdout.strip().splitlines()[-1])["ns_per_op"]
    width = max(len(b) for b in benches)
    print(f"{'ns per operation':<{width}} " + " ".join(f"{n:>9}" for n in available))
    for bench in benches:
        row = results[bench]
        cells = []
        for name in available:
            v = row.get(name)
            cells.append(f"{v:>9.0f}" if v is not None else f"{'-':>9}")
        print(f"{bench:<{width}} " + " ".join(cells))
    print(
        f"(Python {sys.version.split()[0]}, best of {args.repeat}, {os.cpu_count()} CPUs; "
        "lower is better)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
