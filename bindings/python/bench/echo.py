"""Echo servers in Python on asyncio, uvloop and evloop: requests per second and the server's
CPU time per round trip.

    python echo.py [--loops asyncio,uvloop,evloop] [--modes protocol,streams]
                   [--secs 5] [--warmup 1] [--rounds 3] [--instructions]
                   [--write BENCHMARKS.md]

Each server (``echo_server.py``: an ``asyncio.Protocol`` or ``asyncio.start_server`` streams)
runs alone, pinned to CPU 0; the load generator (``echo_client.c``, built here with ``cc``)
runs pinned to CPU 1 and keeps every connection busy in a closed loop: send a message, wait for
all of it to come back, send again. After ``--warmup`` seconds it measures for ``--secs``: round
trips per second, and the server's user and total (user + system) CPU time per round trip from
``/proc/<pid>/stat``. Each server and combination runs ``--rounds`` times, the loops taking
turns, and each figure is the median of its rounds. Combinations: 1 and 100 connections, 64 B
and 1 KiB messages.
With ``--instructions`` the servers also run under valgrind's callgrind, one process per loop
and API serving every combination in turn: after a warm-up the server's counters are zeroed,
the client makes a fixed number of round trips, and the instructions the server executed in
user space (the interpreter, the loop and the C library; not the kernel's work in system
calls) are divided by the round trips. Unlike times and CPU ticks these counts do not move with
the load of the machine. ``--write FILE`` puts the tables into FILE between ``<!-- python-echo:start -->`` and
``<!-- python-echo:end -->``.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# rloop is not among the defaults: rloop 0.5's create_server on port 0 reports a port that
# nothing listens on (connections are refused), so its server cannot be measured this way.
LOOPS = ("asyncio", "uvloop", "evloop")
MODES = ("protocol", "streams")
COMBOS = ((1, 64), (1, 1024), (100, 64), (100, 1024))


def build_client(tmp):
    exe = os.path.join(tmp, "echo_client")
    subprocess.run(
        ["cc", "-O2", "-o", exe, os.path.join(HERE, "echo_client.c")], check=True
    )
    return exe


def cpu_us(pid):
    """(user, user + system) CPU time of ``pid`` in µs."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = 1e6 / os.sysconf("SC_CLK_TCK")
    utime, stime = int(fields[11]), int(fields[12])
    return utime * tick, (utime + stime) * tick


def measure(client, loop, mode, conns, size, secs, warmup):
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "echo_server.py"), loop, mode, "--cpu", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        if not line.startswith("LISTENING"):
            raise RuntimeError(f"{loop} {mode}: the server did not start")
        port = line.split()[1]
        load = subprocess.Popen(
            ["taskset", "-c", "1", client, port, str(conns), str(size), str(warmup), str(secs)],
            stdout=subprocess.PIPE,
            text=True,
        )
        before = after = None
        done = None
        for out in load.stdout:
            if out.startswith("MEASURE"):
                before = cpu_us(server.pid)
            elif out.startswith("DONE"):
                after = cpu_us(server.pid)
                done = out.split()
        load.wait()
        if load.returncode != 0 or done is None or before is None:
            raise RuntimeError(f"{loop} {mode} conns={conns} size={size}: the client failed")
        trips, elapsed = int(done[1]), float(done[2])
        return {
            "rps": trips / elapsed,
            "user_us": (after[0] - before[0]) / max(trips, 1),
            "total_us": (after[1] - before[1]) / max(trips, 1),
        }
    finally:
        server.kill()
        server.wait()


# Round trips counted under callgrind, per number of connections (warm-up, measured).
TRIPS = {1: (300, 3000), 100: (2000, 20000)}


def instructions(client, loop, mode, combos, tmp):
    """Instructions per round trip of one server serving each of ``combos`` in turn."""
    base = os.path.join(tmp, f"cg-{loop}-{mode}")
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={base}",
            sys.executable,
            os.path.join(HERE, "echo_server.py"),
            loop,
            mode,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    out = {}
    try:
        line = server.stdout.readline()
        if not line.startswith("LISTENING"):
            raise RuntimeError(f"{loop} {mode}: the server did not start under callgrind")
        port = line.split()[1]
        dumps = 0
        for conns, size in combos:
            warm, trips = TRIPS[conns]
            load = subprocess.Popen(
                [client, port, str(conns), str(size), str(warm), str(trips), "sync"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            done = None
            for text in load.stdout:
                if text.startswith("MEASURE"):
                    # Let the server finish the echoes in flight, then zero its counters.
                    time.sleep(0.5)
                    subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True, check=True)
                    load.stdin.write("go\n")
                    load.stdin.flush()
                elif text.startswith("DONE"):
                    time.sleep(0.5)
                    subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True, check=True)
                    dumps += 1
                    done = int(text.split()[1])
                    load.stdin.write("go\n")
                    load.stdin.flush()
            load.wait()
            if done is None:
                raise RuntimeError(f"{loop} {mode} conns={conns} size={size}: the client failed")
            with open(f"{base}.{dumps}") as f:
                total = next(int(l.split()[1]) for l in f if l.startswith(("totals:", "summary:")))
            out[(conns, size)] = total / done
    finally:
        server.kill()
        server.wait()
    return out


def write_section(path, text):
    start, end = "<!-- python-echo:start -->", "<!-- python-echo:end -->"
    with open(path) as f:
        doc = f.read()
    block = f"{start}\n{text}\n{end}"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", default=",".join(LOOPS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--secs", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each server and combination (the median is kept)")
    ap.add_argument("--write", metavar="FILE")
    ap.add_argument("--instructions", action="store_true", help="also count instructions per round trip (callgrind)")
    args = ap.parse_args()
    loops = []
    for name in args.loops.split(","):
        ok = name == "asyncio" or subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True
        ).returncode == 0
        if ok:
            loops.append(name)
        else:
            print(f"({name} is not installed: left out)", file=sys.stderr)
    modes = args.modes.split(",")
    rows = []
    counted = {}
    with tempfile.TemporaryDirectory() as tmp:
        client = build_client(tmp)
        if args.instructions:
            for mode in modes:
                for loop in loops:
                    counted[(loop, mode)] = instructions(client, loop, mode, COMBOS, tmp)
                    for (conns, size), ir in counted[(loop, mode)].items():
                        print(f"{loop:<8} {mode:<9} conns={conns:<4} size={size:<5} {ir:>9.0f} instructions/rt", flush=True)
        for conns, size in COMBOS:
            for mode in modes:
                # The loops take turns (in alternating order), so a burst of load from
                # elsewhere on the machine falls on all of them; each figure is the median of
                # the rounds.
                samples = {loop: [] for loop in loops}
                for n in range(args.rounds):
                    for loop in loops if n % 2 == 0 else loops[::-1]:
                        samples[loop].append(
                            measure(client, loop, mode, conns, size, args.secs, args.warmup)
                        )
                for loop in loops:
                    runs = samples[loop]
                    r = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
                    rows.append((loop, mode, conns, size, r))
                    spread = (
                        f"  (req/s {min(x['rps'] for x in runs):.0f}..{max(x['rps'] for x in runs):.0f})"
                        if len(runs) > 1
                        else ""
                    )
                    print(
                        f"{loop:<8} {mode:<9} conns={conns:<4} size={size:<5} "
                        f"{r['rps']:>9.0f} req/s  user {r['user_us']:.2f} µs/rt  "
                        f"total {r['total_us']:.2f} µs/rt{spread}",
                        flush=True,
                    )
    load = os.getloadavg()[0]
    if args.write:
        lines = [
            "### Echo servers",
            "",
            f"Written by `python bindings/python/bench/echo.py{' --instructions' if counted else ''} "
            f"--write BENCHMARKS.md` (CPython "
            f"{sys.version.split()[0]}, {platform.machine()}): each server alone in a process "
            f"pinned to CPU 0, the load generator (`bench/echo_client.c`, closed loop: each "
            f"connection sends its message and waits for all of it to come back) pinned to "
            f"CPU 1; {args.warmup:g} s of warm-up, then {args.secs:g} s measured, "
            f"{args.rounds} time{'s' if args.rounds > 1 else ''} per server and combination "
            f"with the loops taking turns (each figure the median of its runs). CPU figures "
            f"are the server's, per round trip, from `/proc/<pid>/stat` (counted in 10 ms "
            f"ticks). The machine's two cores were shared with other work (load average "
            f"{load:.1f} at the end of the run): with a loaded machine the times and CPU "
            f"figures move by tens of percent between runs, so compare rows of one run, and "
            f"prefer the instruction counts below, which the load does not change.",
            "",
            "| server | API | conns | size | req/s | user µs/rt | total µs/rt |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for loop, mode, conns, size, r in rows:
            lines.append(
                f"| {loop} | {mode} | {conns} | {size} | {r['rps']:.0f} | "
                f"{r['user_us']:.2f} | {r['total_us']:.2f} |"
            )
        if counted:
            lines += [
                "",
                "Instructions per round trip in the server (callgrind; user space only: the "
                "interpreter, the loop, the C library, not the kernel's work in system calls). "
                "One server per loop and API serves the four combinations in turn; after a "
                "warm-up its counters are zeroed and the client makes "
                + ", ".join(f"{t} round trips over {c} connection{'s' if c > 1 else ''}" for c, (_, t) in TRIPS.items())
                + ".",
                "",
                "| API | conns | size | " + " | ".join(loops) + " |",
                "|---|---:|---:|" + "---:|" * len(loops),
            ]
            for mode in modes:
                for conns, size in COMBOS:
                    cells = [
                        f"{counted[(l, mode)][(conns, size)]:.0f}" if (l, mode) in counted else "—"
                        for l in loops
                    ]
                    lines.append(f"| {mode} | {conns} | {size} | " + " | ".join(cells) + " |")
        write_section(args.write, "\n".join(lines))


if __name__ == "__main__":
    main()
