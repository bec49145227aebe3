//! The one tokio runtime of the process. The engine's supervisor and monitors are tasks on it;
//! blocking libvirt calls run on its blocking pool (see `libvirt::HostConnection`).
//!
//! It lives for the whole process and is never dropped: dropping a runtime waits for every
//! blocking call still running, and a libvirt call to a vanished host may not return for
//! minutes. Exiting the process ends them instead.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// Runtime worker threads: the machines ferry runs on are small and the work on the workers is
/// waiting, never computing.
const WORKER_THREADS: usize = 2;

pub fn shared() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("ferry-runtime")
            .enable_all()
            .build()
            .expect("start the tokio runtime")
    })
}

pub fn handle() -> Handle {
    shared().handle().clone()
}

/// Runs `future` to its end from synchronous code (the CLI's commands, the lab, tests).
/// Must not be called on a runtime thread: tokio refuses that with a panic, which is what we
/// want, since it would block a worker.
pub fn wait<F: Future>(future: F) -> F::Output {
    shared().block_on(future)
}
