//! Property tests of `StreamReader` against a model of asyncio's `StreamReader`
//! (STREAM-05 … STREAM-16, tests/reader_model).
//!
//! Two ways of feeding:
//!
//! * On a real `EventLoop`: a task runs a sequence of reads while a `call_soon` chain feeds
//!   one chunk per loop iteration (with idle iterations in between), then EOF. Where a result
//!   does not depend on the chunking (`readline`, `readuntil`, `readexactly`, the limit being
//!   above the input size) it must equal the model's on the whole input; `read(n)` and the
//!   futures-io reads return what is buffered, so they must return a non-empty prefix of the
//!   unread input of at most `n` bytes (empty only at EOF); and everything read, concatenated,
//!   is the input.
//! * By hand (reader_model's `Driver`): each read is polled once when it starts and once after
//!   each event, as asyncio resumes its coroutine, so every result — limit errors and their
//!   `consumed` included — is compared exactly with asyncio's algorithm.
//!
//! `PROPTEST_CASES` raises the number of cases (default 256).

mod common;
mod reader_model;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use loop_core::EventLoop;
use loop_transport::{Protocol, StreamReader, StreamReaderProtocol};
use proptest::prelude::*;
use reader_model::{find, perform, Driver, Outcome, ReadOp, Step};

// ---------------------------------------------------------------------------------------------
// Strategies

/// Bytes from a small alphabet, so separators occur often.
fn byte() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![b'a', b'b', b'\n', b'\r'])
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(byte(), 0..max)
}

fn separator() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"ab".to_vec()),
        prop::collection::vec(byte(), 1..4),
    ]
}

fn separators() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(separator(), 1..4)
}

/// Reads that need no EOF to start (everything but `read_all`).
fn read_op() -> impl Strategy<Value = ReadOp> {
    prop_oneof![
        (0..24usize).prop_map(ReadOp::Read),
        Just(ReadOp::Readline),
        separator().prop_map(ReadOp::Readuntil),
        separators().prop_map(ReadOp::ReaduntilAny),
        (0..40usize).prop_map(ReadOp::Readexactly),
        (0..24usize).prop_map(ReadOp::AsyncRead),
        (0..24usize).prop_map(ReadOp::FillBuf),
    ]
}

/// Reads whose result is whatever is buffered (up to `n`).
fn chunky_op() -> impl Strategy<Value = ReadOp> {
    prop_oneof![
        (0..24usize).prop_map(ReadOp::Read),
        (0..24usize).prop_map(ReadOp::AsyncRead),
        (0..24usize).prop_map(ReadOp::FillBuf),
    ]
}

/// A step of a hand-driven scenario.
fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => bytes(12).prop_map(Step::Feed),
        6 => read_op().prop_map(Step::Start),
        1 => Just(Step::Start(ReadOp::ReadAll)),
        1 => Just(Step::Eof),
        1 => Just(Step::SetException),
        1 => Just(Step::Cancel),
        1 => Just(Step::Poll),
    ]
}

/// Splits `data` into chunks of the given sizes (cycled), each after some idle iterations.
fn chunked(data: &[u8], sizes: &[usize], gaps: &[usize]) -> VecDeque<(usize, Vec<u8>)> {
    let mut out = VecDeque::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - pos);
        out.push_back((gaps[i % gaps.len()], data[pos..pos + n].to_vec()));
        pos += n;
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Feeding on a loop

/// The `call_soon` chain's state: what is left to feed, and the feeding handle.
struct Feeder {
    /// `(idle iterations before, chunk)`.
    chunks: VecDeque<(usize, Vec<u8>)>,
    /// The protocol feeding the reader.
    proto: StreamReaderProtocol,
}

/// Feeds one chunk (or idles one iteration) and schedules itself again; EOF at the end.
fn feed_next(lp: &EventLoop, f: Rc<RefCell<Feeder>>) {
    {
        let mut st = f.borrow_mut();
        match st.chunks.front_mut() {
            Some((gap, _)) if *gap > 0 => *gap -= 1,
            Some(_) => {
                let (_, chunk) = st.chunks.pop_front().expect("a chunk");
                st.proto.data_received(&chunk);
            }
            None => {
                st.proto.eof_received();
                return;
            }
        }
    }
    lp.call_soon(move |lp| feed_next(lp, f))
        .expect("the loop is open");
}

/// Runs `ops` (then `read_all`) in a task while the chunks are fed one per loop iteration.
fn run_on_loop(
    limit: usize,
    chunks: VecDeque<(usize, Vec<u8>)>,
    ops: Vec<ReadOp>,
) -> (Vec<(ReadOp, Outcome)>, Outcome) {
    let lp = EventLoop::new().unwrap();
    let reader = StreamReader::with_limit(limit).unwrap();
    let feeder = Rc::new(RefCell::new(Feeder {
        chunks,
        proto: StreamReaderProtocol::new(Some(&reader)),
    }));
    let task = lp
        .create_task(async move {
            let mut r = reader;
            let mut done = Vec::new();
            for op in ops {
                let o = perform(&mut r, op.clone()).await;
                done.push((op, o));
            }
            let rest = perform(&mut r, ReadOp::ReadAll).await;
            (done, rest)
        })
        .unwrap();
    lp.call_soon(move |lp| feed_next(lp, feeder)).unwrap();
    let out = common::run(&lp, 60, task).unwrap();
    lp.close().unwrap();
    out
}

/// Checks each read against the whole input (chunking-independent results exactly, buffered
/// reads as prefixes) and that everything read concatenates to the input.
fn check_stream(
    data: &[u8],
    done: &[(ReadOp, Outcome)],
    rest: &Outcome,
) -> Result<(), TestCaseError> {
    let mut pos = 0;
    let mut all = Vec::new();
    for (op, got) in done {
        let remaining = &data[pos..];
        let why = format!("{op:?} at {pos} of {:?}", String::from_utf8_lossy(data));
        match op {
            ReadOp::Read(n) | ReadOp::AsyncRead(n) | ReadOp::FillBuf(n) => {
                let Outcome::Data(d) = got else {
                    return Err(TestCaseError::fail(format!("{why}: {got:?}")));
                };
                let lend = matches!(op, ReadOp::FillBuf(_));
                if remaining.is_empty() || (*n == 0 && !lend) {
                    prop_assert!(d.is_empty(), "{}: {:?}", why, got);
                } else {
                    // STREAM-06: a non-empty prefix of the unread data, at most n bytes.
                    prop_assert!(!d.is_empty(), "{}: nothing read before EOF", why);
                    if !lend {
                        prop_assert!(d.len() <= *n, "{}: {:?}", why, got);
                    }
                    prop_assert!(remaining.starts_with(d), "{}: {:?}", why, got);
                }
                let taken = if lend { (*n).min(d.len()) } else { d.len() };
                all.extend_from_slice(&d[..taken]);
                pos += taken;
            }
            _ => {
                let want = whole_input_outcome(remaining, op);
                prop_assert_eq!(got, &want, "{}", why);
                match got {
                    Outcome::Data(d) | Outcome::Incomplete { partial: d, .. } => {
                        all.extend_from_slice(d);
                        pos += d.len();
                    }
                    _ => {}
                }
            }
        }
    }
    prop_assert_eq!(
        rest,
        &Outcome::Data(data[pos..].to_vec()),
        "read_all() at the end"
    );
    all.extend_from_slice(&data[pos..]);
    prop_assert_eq!(all, data.to_vec(), "everything read, concatenated");
    Ok(())
}

/// asyncio's result of `op` when `remaining` is all there is until EOF (no limit reached).
fn whole_input_outcome(remaining: &[u8], op: &ReadOp) -> Outcome {
    let until = |seps: &[Vec<u8>]| {
        let end = seps
            .iter()
            .filter_map(|s| find(remaining, s, 0).map(|i| i + s.len()))
            .min();
        match end {
            Some(e) => Outcome::Data(remaining[..e].to_vec()),
            None => Outcome::Incomplete {
                partial: remaining.to_vec(),
                expected: None,
            },
        }
    };
    match op {
        ReadOp::Readline => match until(&[b"\n".to_vec()]) {
            Outcome::Incomplete { partial, .. } => Outcome::Data(partial),
            o => o,
        },
        ReadOp::Readuntil(sep) => until(std::slice::from_ref(sep)),
        ReadOp::ReaduntilAny(seps) => until(seps),
        ReadOp::Readexactly(n) if remaining.len() >= *n => Outcome::Data(remaining[..*n].to_vec()),
        ReadOp::Readexactly(n) => Outcome::Incomplete {
            partial: remaining.to_vec(),
            expected: Some(*n),
        },
        ReadOp::ReadAll => Outcome::Data(remaining.to_vec()),
        ReadOp::Read(_) | ReadOp::AsyncRead(_) | ReadOp::FillBuf(_) => {
            unreachable!("chunking-dependent reads are checked as prefixes")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic limit cases: the read starts on a fully buffered input.

fn driven(limit: usize, steps: &[Step]) -> Result<Driver, TestCaseError> {
    let mut d = Driver::new(limit);
    d.run(steps).map_err(TestCaseError::fail)?;
    Ok(d)
}

/// The outcome of the read that `steps` started first.
fn first_outcome(d: &Driver) -> &Outcome {
    &d.done[0].1
}

proptest! {
    /// STREAM-06/08/10/11/12/14: any input in any chunking, fed one chunk per loop iteration
    /// while a task reads, gives asyncio's results.
    #[test]
    #[cfg_attr(miri, ignore = "runs an event loop (miri's epoll is edge-triggered only)")]
    fn prop_reader_chunked_feed_on_a_loop_matches_asyncio(
        data in bytes(300),
        sizes in prop::collection::vec(1..40usize, 1..8),
        gaps in prop::collection::vec(0..3usize, 1..5),
        ops in prop::collection::vec(read_op(), 0..12),
        extra in 0..4usize,
    ) {
        let _w = loop_testkit::watchdog();
        // A limit above the input: no read depends on when the data arrived.
        let limit = data.len().max(1) + extra;
        let (done, rest) = run_on_loop(limit, chunked(&data, &sizes, &gaps), ops);
        check_stream(&data, &done, &rest)?;
    }

    /// STREAM-05/06: `read(n)`, `poll_read` and `fill_buf` return a non-empty buffered prefix
    /// of at most `n` bytes (empty only at EOF) under any chunking, and lose nothing.
    #[test]
    #[cfg_attr(miri, ignore = "runs an event loop (miri's epoll is edge-triggered only)")]
    fn stream_06_buffered_reads_return_a_prefix_under_any_chunking(
        data in prop::collection::vec(any::<u8>(), 0..400),
        sizes in prop::collection::vec(1..64usize, 1..8),
        gaps in prop::collection::vec(0..3usize, 1..5),
        ops in prop::collection::vec(chunky_op(), 0..40),
    ) {
        let (done, rest) = run_on_loop(16, chunked(&data, &sizes, &gaps), ops);
        check_stream(&data, &done, &rest)?;
    }

    /// STREAM-09: a line longer than the limit is a value error; the line and its newline are
    /// dropped if the newline is buffered, else the whole buffer — as asyncio does.
    #[test]
    fn stream_09_readline_over_the_limit_discards_what_asyncio_discards(
        data in bytes(40),
        limit in 1..12usize,
        eof in any::<bool>(),
    ) {
        let _w = loop_testkit::watchdog();
        let mut steps = vec![Step::Feed(data.clone())];
        if eof {
            steps.push(Step::Eof);
        }
        steps.push(Step::Start(ReadOp::Readline));
        let d = driven(limit, &steps)?;
        // The error is reached exactly when the first line (without `\n`) exceeds the limit.
        let line = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let over = line > limit;
        prop_assert_eq!(matches!(first_outcome(&d), Outcome::Invalid(_)), over, "{:?}", d.done);
    }

    /// STREAM-13 (and STREAM-11): a separator not found within the limit, or found beyond it,
    /// is a `LimitOverrun` with asyncio's message and `consumed`, and the buffer stays intact.
    #[test]
    fn stream_13_readuntil_limit_overrun_leaves_the_buffer_intact(
        data in bytes(40),
        limit in 1..12usize,
        seps in separators(),
        single in any::<bool>(),
        eof in any::<bool>(),
    ) {
        let _w = loop_testkit::watchdog();
        let op = if single {
            ReadOp::Readuntil(seps[0].clone())
        } else {
            ReadOp::ReaduntilAny(seps)
        };
        let mut steps = vec![Step::Feed(data.clone())];
        if eof {
            steps.push(Step::Eof);
        }
        steps.push(Step::Start(op));
        let d = driven(limit, &steps)?;
        if let Some((_, Outcome::LimitOverrun { .. })) = d.done.first() {
            // The final read_all() returned the whole input: nothing was consumed.
            prop_assert_eq!(&d.done[1].1, &Outcome::Data(data.clone()));
        }
    }

    /// STREAM-12/14: at EOF, `readuntil` and `readexactly` fail with `Incomplete` carrying
    /// every buffered byte, and the buffer is then empty.
    #[test]
    fn stream_12_14_incomplete_carries_and_consumes_the_partial_data(
        data in bytes(40),
        sep in separator(),
        n in 0..50usize,
        exactly in any::<bool>(),
    ) {
        let _w = loop_testkit::watchdog();
        let op = if exactly { ReadOp::Readexactly(n) } else { ReadOp::Readuntil(sep) };
        let steps = [Step::Feed(data.clone()), Step::Eof, Step::Start(op)];
        let d = driven(64, &steps)?;
        if let Outcome::Incomplete { partial, .. } = first_outcome(&d) {
            prop_assert_eq!(partial, &data);
            prop_assert_eq!(&d.done[1].1, &Outcome::Data(Vec::new()));
        }
    }

    /// STREAM-05 … STREAM-16: random feeds, EOF, exceptions, cancellations, spurious polls and
    /// reads with small limits, each read resumed as asyncio resumes it, give exactly asyncio's
    /// results, buffer, `at_eof()` and `exception()`.
    #[test]
    fn prop_reader_steps_match_asyncio_step_by_step(
        limit in 1..16usize,
        steps in prop::collection::vec(step(), 0..40),
    ) {
        let _w = loop_testkit::watchdog();
        driven(limit, &steps)?;
    }
}

/// STREAM-11: with several separators ending at the same byte, asyncio takes the shortest one
/// as the match, so its (later) start is what the limit is checked against.
#[test]
fn stream_11_equal_ends_use_the_shortest_separator_for_the_limit() {
    let _w = loop_testkit::watchdog();
    for seps in [
        vec![b"ab".to_vec(), b"b".to_vec()],
        vec![b"b".to_vec(), b"ab".to_vec()],
    ] {
        let steps = [
            Step::Feed(b"xab".to_vec()),
            Step::Start(ReadOp::ReaduntilAny(seps.clone())),
        ];
        let mut d = Driver::new(1);
        d.run(&steps).unwrap();
        assert_eq!(
            d.done[0].1,
            Outcome::LimitOverrun {
                message: "Separator is found, but chunk is longer than limit".into(),
                consumed: 2,
            },
            "{seps:?}"
        );
        assert_eq!(d.done[1].1, Outcome::Data(b"xab".to_vec()));
        // With a limit of 2 the same read succeeds.
        let mut d = Driver::new(2);
        d.run(&steps).unwrap();
        assert_eq!(d.done[0].1, Outcome::Data(b"xab".to_vec()), "{seps:?}");
    }
}

/// The model itself: a few of asyncio's documented results (so a model bug cannot hide a
/// reader bug in the properties above).
#[test]
fn stream_09_13_model_matches_asyncio_examples() {
    let _w = loop_testkit::watchdog();
    let run = |limit: usize, feeds: &[&[u8]], op: ReadOp| {
        let mut steps: Vec<Step> = vec![Step::Start(op)];
        steps.extend(feeds.iter().map(|f| Step::Feed(f.to_vec())));
        let mut d = Driver::new(limit);
        d.run(&steps).unwrap();
        d.done
    };
    // test_readuntil_limit_found_sep: limit 3, "some dataAA" → not found, consumed 9.
    let done = run(3, &[b"some dataAA"], ReadOp::Readuntil(b"AAA".to_vec()));
    assert_eq!(
        done[0].1,
        Outcome::LimitOverrun {
            message: "Separator is not found, and chunk exceed the limit".into(),
            consumed: 9,
        }
    );
    assert_eq!(done[1].1, Outcome::Data(b"some dataAA".to_vec()));
    // Separator found, but beyond the limit.
    let done = run(3, &[b"some dataAAA"], ReadOp::Readuntil(b"AAA".to_vec()));
    assert_eq!(
        done[0].1,
        Outcome::LimitOverrun {
            message: "Separator is found, but chunk is longer than limit".into(),
            consumed: 9,
        }
    );
    // test_readline_limit_with_existing_data: "line1\nline2\n" with limit 3 → ValueError, the
    // first line and its newline dropped.
    let done = run(3, &[b"line1\nline2\n"], ReadOp::Readline);
    assert_eq!(
        done[0].1,
        Outcome::Invalid("Separator is found, but chunk is longer than limit".into())
    );
    assert_eq!(done[1].1, Outcome::Data(b"line2\n".to_vec()));
    // Fed in small chunks, the not-found error comes first and the whole buffer goes.
    let done = run(3, &[b"li", b"ne1", b"\nline2\n"], ReadOp::Readline);
    assert_eq!(
        done[0].1,
        Outcome::Invalid("Separator is not found, and chunk exceed the limit".into())
    );
    assert_eq!(done[1].1, Outcome::Data(b"\nline2\n".to_vec()));
}
