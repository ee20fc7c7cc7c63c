//! The instructions section of `BENCHMARKS.md`: the tables written from the measured figures,
//! and the chart groups drawn from them.

use std::fmt::Write as _;

use super::callgrind::{
    commit, output_of, valgrind_version, Measured, PerOp, ECHO_SIZE, ECHO_WORKLOADS, GOALS,
    HEADING, IMPLS, MICRO_UNIT,
};
use crate::svg::Group;

/// The micro-benchmark table.
pub(super) fn micro_table(m: &Measured) -> String {
    let mut t = String::from(
        "| benchmark | evloop | tokio | smol | ratio to best peer | goal (evloop) | evloop spread \
         | evloop outside malloc | its spread |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (bench, r) in &m.micro {
        let get = |k: &str| r.get(k).map(|p| p.median);
        let fmt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "—".into());
        let best_peer = ["tokio", "smol"]
            .iter()
            .filter_map(|k| get(k))
            .fold(f64::INFINITY, f64::min);
        let ratio = match get("evloop") {
            Some(e) if best_peer.is_finite() => format!("{:.2}", e / best_peer),
            _ => "—".into(),
        };
        let goal = GOALS
            .iter()
            .find(|(g, _)| g == bench)
            .map(|(_, v)| {
                let met = get("evloop").is_some_and(|e| e <= *v);
                format!("≤ {v:.0} {}", if met { "(met)" } else { "(not met)" })
            })
            .unwrap_or_default();
        let spread = |p: Option<&PerOp>| p.map(|p| p.spread);
        let own = m.evloop_own.get(bench);
        let _ = writeln!(
            t,
            "| {bench} | {} | {} | {} | {ratio} | {goal} | {} | {} | {} |",
            fmt(get("evloop")),
            fmt(get("tokio")),
            fmt(get("smol")),
            fmt(spread(r.get("evloop"))),
            fmt(own.map(|p| p.median)),
            fmt(spread(own)),
        );
    }
    t
}

/// The echo table, with each server's ratio to the hand-written floor at the same load.
pub(super) fn echo_table(m: &Measured) -> String {
    let mut t = String::from(
        "| server | conns | size | instructions/rt | ratio to floor |\n|---|---:|---:|---:|---:|\n",
    );
    for (server, conns, v) in &m.echo {
        let floor = m
            .echo
            .iter()
            .find(|(s, c, _)| s.starts_with("floor") && c == conns)
            .map(|(_, _, f)| *f);
        let ratio = floor
            .filter(|f| *f > 0.0)
            .map(|f| format!("{:.2}", v / f))
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(t, "| {server} | {conns} | {ECHO_SIZE} | {v:.1} | {ratio} |");
    }
    t
}

/// The section of `BENCHMARKS.md`: what was measured, how, and the two tables.
pub(super) fn section(m: &Measured) -> String {
    let (n0, n1) = m.n;
    let reps = m.reps;
    let date = output_of("date", &["-u", "+%Y-%m-%d"]);
    let workloads: Vec<String> = ECHO_WORKLOADS
        .iter()
        .map(|(c, r)| {
            format!(
                "{c} connection{} × {r} round trips",
                if *c == 1 { "" } else { "s" }
            )
        })
        .collect();
    format!(
        "{HEADING}\n\n\
         Written by `cargo xtask bench --instructions` on {date}, commit {commit}, {valgrind}, on \
         the machine above. Each figure counts the instructions a process executes in user space \
         (the program, its libraries and the C library's allocator; not the kernel's work inside \
         system calls), by `valgrind --tool=callgrind`. Unlike the wall-clock times, these counts do \
         not move with the machine's load: the same binary on the same input gives the same count, \
         so a 1% change in the work done shows as 1%. Decisions about evloop's speed are made on \
         these figures; the wall-clock tables show what they come to in time.\n\n\
         ### Micro-benchmarks (instructions/op, lower is better)\n\n\
         Each benchmark runs alone in a process that does exactly n operations once \
         (`evloop-bench micro --only <bench> --impl <impl> --n <n> --runs 1 --no-warmup`), at \
         n = {n0} and n = {n1}; instructions per operation are (Ir({n1}) − Ir({n0})) / {d}, which \
         cancels start-up and shutdown. Each pair ran {reps} time{s}: the table gives the median \
         and evloop's spread over the runs (largest minus smallest), then evloop's count outside \
         the C library's allocator (malloc, free and their helpers, as `callgrind_annotate` \
         names them) with its spread. call_soon_threadsafe counts the producer thread's \
         instructions too (callgrind counts every thread of the process). Two totals vary from \
         run to run. In call_soon_threadsafe nearly all of the variation is in the allocator: \
         valgrind runs one thread at a time (with `--fair-sched=yes`, so that the producer and \
         the loop take turns), and how far the producer gets ahead of the loop varies from run \
         to run; each callback in flight beyond what the loop's pool of spent allocations holds \
         is a fresh allocation. The count outside malloc is the one to compare. In the timer benchmark, whose delays are real time, how many timers are due at \
         each poll changes how much sorting the timer heap does and when the allocator \
         consolidates free memory, so even the count outside malloc moves by a percent or two: \
         compare medians of more runs (`cargo xtask bench --instructions --only call_later \
         --reps 7`). \
         `cargo xtask bench --instructions --annotate <bench>` lists the functions behind a \
         figure.\n\n{micro}\n\
         ### Echo server (instructions per round trip, lower is better)\n\n\
         The server runs under callgrind, pinned to CPU 0; the load generator runs natively on \
         CPU 1 and makes a fixed number of round trips of {ECHO_SIZE} B messages \
         (`evloop-bench echo-client --roundtrips`): {workloads}. Instructions per round trip are \
         the difference from the same server serving 1/100 of the round trips over the same \
         connections, divided by the difference in round trips, which cancels start-up, \
         accepting and closing. The system calls are the kernel's work and are not in these \
         counts (the echo table below counts them). At one connection every round trip wakes \
         the server, and evloop's, tokio's and the floor's counts repeat exactly; at 100, one \
         wake-up serves as many connections as the kernel's timing gathers, so those counts, \
         like smol's, vary between runs by up to about 1%.\n\n{echo}",
        commit = commit(),
        valgrind = valgrind_version(),
        d = n1 - n0,
        s = if reps == 1 { "" } else { "s" },
        workloads = workloads.join(" and "),
        micro = micro_table(m),
        echo = echo_table(m),
    )
}

/// The chart groups of a run: one per micro-benchmark, then one per echo connection count.
pub fn groups(m: &Measured) -> Vec<Group> {
    let mut g: Vec<Group> = m
        .micro
        .iter()
        .map(|(bench, r)| Group {
            title: bench.clone(),
            unit: MICRO_UNIT.into(),
            bars: IMPLS
                .iter()
                .filter_map(|imp| Some((imp.to_string(), r.get(*imp)?.median)))
                .collect(),
        })
        .collect();
    for (server, conns, v) in &m.echo {
        push_echo(&mut g, server, *conns, *v);
    }
    g
}

/// Adds an echo bar to the group of its connection count.
pub(super) fn push_echo(groups: &mut Vec<Group>, server: &str, conns: usize, v: f64) {
    let title = format!(
        "echo, {conns} connection{}, {ECHO_SIZE} B messages",
        if conns == 1 { "" } else { "s" }
    );
    let bar = (server.to_string(), v);
    match groups.iter_mut().find(|g| g.title == title) {
        Some(g) => g.bars.push(bar),
        None => groups.push(Group {
            title,
            unit: "server instructions per round trip".into(),
            bars: vec![bar],
        }),
    }
}
