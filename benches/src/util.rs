//! What the benchmark bodies share: a deterministic random generator, a counter, a timer, and
//! pinning a thread to one CPU.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A small deterministic random generator (xorshift64*), so every implementation sees the same
/// delays.
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed.
    pub fn new() -> Rng {
        Rng(0x2545_f491_4f6c_dd1d)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A delay in [0, 50 ms).
    pub fn delay(&mut self) -> Duration {
        Duration::from_nanos(self.next_u64() % 50_000_000)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// A shared counter for callback chains.
pub type Counter = Rc<Cell<u64>>;

/// Pins the calling thread to one CPU.
pub fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
            eprintln!("could not pin to CPU {cpu}: {e}");
        }
    }
}

/// Times `f`.
pub fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}
