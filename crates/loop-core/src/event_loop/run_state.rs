//! The one word that decides a loop iteration's path.
//!
//! A busy loop whose ready queue holds only local callbacks, with no stop requested and no
//! sources, runs many iterations that do nothing but pop and call: each of them checks this
//! one value instead of a stop flag, a sources flag and a skipped-poll count in turn. The
//! iterations that skip the poll are counted here and go into the iterations counter when the
//! loop next polls. It is its own module so that the loop's state can hold it without the
//! loop's definition depending on the iteration's code.

use std::cell::Cell;

use crate::stats::bump;

/// While work is ready, I/O is polled at least once per this many iterations.
pub const POLL_EVERY: u32 = 64;

/// What decides an iteration's path, in one word, so that a busy iteration with only local
/// work ready checks one value: the polls skipped since the last one (low bits), whether a
/// stop was requested, whether the loop has sources. A word below [`POLL_EVERY`] says "no
/// stop, no sources, the poll may be skipped".
#[derive(Default)]
pub(crate) struct RunState(Cell<u32>);

impl RunState {
    /// `stop()` was requested.
    const STOPPING: u32 = 1 << 31;
    /// The loop has sources (timers, ...).
    const SOURCES: u32 = 1 << 30;
    /// The polls skipped since the last one.
    const SKIPPED: u32 = Self::SOURCES - 1;

    /// `stop()` was requested.
    #[inline]
    pub(crate) fn stopping(&self) -> bool {
        self.0.get() & Self::STOPPING != 0
    }

    /// Requests a stop, or clears the request.
    #[inline]
    pub(crate) fn set_stopping(&self, on: bool) {
        self.set_flag(Self::STOPPING, on);
    }

    /// The loop has sources.
    #[inline]
    pub(crate) fn has_sources(&self) -> bool {
        self.0.get() & Self::SOURCES != 0
    }

    /// Records whether the loop has sources.
    #[inline]
    pub(crate) fn set_has_sources(&self, on: bool) {
        self.set_flag(Self::SOURCES, on);
    }

    #[inline]
    fn set_flag(&self, flag: u32, on: bool) {
        let s = self.0.get();
        self.0.set(if on { s | flag } else { s & !flag });
    }

    /// The polls skipped since the last one: also the iterations since then, which
    /// [`Counters::iterations`](crate::stats::Counters::iterations) does not include yet.
    #[inline]
    pub(crate) fn skipped(&self) -> u32 {
        self.0.get() & Self::SKIPPED
    }

    /// Counts an iteration that skips the poll (the count is below [`POLL_EVERY`]).
    #[inline]
    pub(super) fn skip_poll(&self) {
        self.0.set(self.0.get() + 1);
    }

    /// Counts an iteration that polls: it and those that skipped the poll since the last one
    /// go into the iterations counter at once.
    #[inline]
    pub(super) fn polled(&self, counters: &crate::stats::Counters) {
        let s = self.0.get();
        bump(&counters.iterations, u64::from(s & Self::SKIPPED) + 1);
        self.0.set(s & !Self::SKIPPED);
    }

    /// Neither a stop requested nor sources, and fewer than [`POLL_EVERY`] polls skipped: a
    /// busy iteration with nothing from other threads may skip the poll and has nothing to do
    /// but run what is ready.
    #[inline]
    pub(super) fn local_only(&self) -> bool {
        self.0.get() < POLL_EVERY
    }
}
