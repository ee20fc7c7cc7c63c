//! What the conformance run covers: the asyncio test modules and the loops compared.

/// The modules of `test.test_asyncio` that run: the mixin ones first (the runner builds their
/// test classes around the subject's loop), then those driven by the event loop policy.
pub const MODULES: [&str; 15] = [
    "test_events",
    "test_sock_lowlevel",
    "test_server",
    "test_buffered_proto",
    "test_subprocess",
    "test_streams",
    "test_tasks",
    "test_locks",
    "test_queues",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_threads",
    "test_context",
    "test_futures2",
];

/// The loops compared, in table order.
pub const SUBJECTS: [&str; 4] = ["stdlib", "uvloop", "rloop", "evloop"];
