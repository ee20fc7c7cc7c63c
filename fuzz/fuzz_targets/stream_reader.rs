//! `StreamReader` driven by a fuzzer-chosen sequence of feeds, EOF, exceptions, reads,
//! cancellations and spurious polls, checked step by step against the model of asyncio's
//! `StreamReader` that the property tests use (crates/loop-transport/tests/reader_model).
//!
//! Input layout: the first byte picks the limit (1..=64, or the 64 KiB default); every
//! following byte is a step tag, some followed by argument bytes (see `decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/loop-transport/tests/reader_model/mod.rs"]
mod reader_model;

use reader_model::{Driver, ReadOp, Step};

/// Reads the fuzz input front to back; missing bytes read as zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn arg(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    /// `n` data bytes: raw, or mapped onto `a b \n \r` so separators are common.
    fn data(&mut self, n: usize, raw: bool) -> Vec<u8> {
        (0..n)
            .map(|_| {
                let b = self.arg();
                if raw {
                    b
                } else {
                    b"ab\n\r"[usize::from(b & 3)]
                }
            })
            .collect()
    }

    /// A separator of 1 to 4 alphabet bytes (or, rarely, an empty one).
    fn separator(&mut self) -> Vec<u8> {
        let b = self.arg();
        if b == 0xff {
            return Vec::new();
        }
        self.data(1 + usize::from(b & 3), false)
    }
}

fn decode(input: &[u8]) -> Option<(usize, Vec<Step>)> {
    let mut inp = Input(input);
    let first = inp.byte()?;
    let limit = if first >= 0xc0 {
        loop_transport::DEFAULT_LIMIT
    } else {
        1 + usize::from(first & 0x3f)
    };
    let mut steps = Vec::new();
    while let Some(tag) = inp.byte() {
        let hi = tag >> 4;
        let step = match tag & 0x0f {
            0..=2 => Step::Feed(inp.data(usize::from(hi), false)),
            3 => Step::Feed(inp.data(usize::from(hi) * 4, true)),
            4 => Step::Start(ReadOp::Read(usize::from(inp.arg() % 40))),
            5 => Step::Start(ReadOp::Readline),
            6 => Step::Start(ReadOp::Readuntil(inp.separator())),
            7 => {
                let seps = (0..hi % 5).map(|_| inp.separator()).collect();
                Step::Start(ReadOp::ReaduntilAny(seps))
            }
            8 => Step::Start(ReadOp::Readexactly(usize::from(inp.arg() % 80))),
            9 => Step::Start(ReadOp::ReadAll),
            10 => Step::Start(ReadOp::AsyncRead(usize::from(inp.arg() % 40))),
            11 => Step::Start(ReadOp::FillBuf(usize::from(inp.arg() % 40))),
            12 => Step::Eof,
            13 if hi < 2 => Step::SetException,
            13 | 15 => Step::Poll,
            _ => Step::Cancel,
        };
        steps.push(step);
    }
    Some((limit, steps))
}

fuzz_target!(|input: &[u8]| {
    let Some((limit, steps)) = decode(input) else {
        return;
    };
    let mut driver = Driver::new(limit);
    if let Err(e) = driver.run(&steps) {
        panic!("limit {limit}: {e}");
    }
});
