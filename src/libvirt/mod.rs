//! The one door to libvirt. Every libvirt call in ferry goes through here.
//!
//! libvirt calls block (an ssh connection to a slow host can stall for minutes), so each call
//! runs on tokio's blocking pool and the caller awaits it at most a timeout. A call that times
//! out is abandoned: its thread finishes or fails on its own when libvirt's keep-alive notices
//! the dead connection, and nothing waits for it. Callers get typed `async fn` operations
//! (`migrate.rs`, `lifecycle.rs`, `standing.rs`, `job_control.rs`), never a raw connection.

pub mod cpu;
pub mod facts;
pub mod guest_size;
pub mod job_control;
pub mod job_stats;
pub mod lifecycle;
pub mod migrate;
pub mod nova_metadata;
pub mod probe;
pub mod provision;
pub mod readings;
pub mod standing;
pub mod storage;
pub mod volume_copy;

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use virt::connect::Connect;

use crate::model::domain::{DomainFacts, HostFacts};

/// Seconds between keep-alive probes and how many may go unanswered before libvirt closes
/// the connection: a host that vanished is noticed within about 15 s.
const KEEPALIVE_INTERVAL_SECONDS: i32 = 5;
const KEEPALIVE_MISSED_PROBES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("{context}: {message}")]
    Call { context: String, message: String },
    #[error("{context}: no answer within {timeout:?} (host slow or unreachable)")]
    Timeout { context: String, timeout: Duration },
}

impl LibvirtError {
    pub fn call(context: impl Into<String>, error: virt::error::Error) -> LibvirtError {
        LibvirtError::Call {
            context: context.into(),
            message: error.message().to_string(),
        }
    }

    /// libvirt's own refusal of a second job on the domain ("another migration job is already
    /// running", or the job lock held by another call): nothing of this call's started.
    pub fn is_another_job_running(&self) -> bool {
        let text = self.to_string();
        text.contains("another migration job is already running")
            || text.contains("cannot acquire state change lock")
    }
}

/// Once per process: stop libvirt printing errors on stderr (the TUI owns the terminal), and
/// run libvirt's default event loop on a thread of its own so that keep-alive works.
pub fn init() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        virt::error::clear_error_callback();
        if virt::event::event_register_default_impl().is_ok() {
            thread::Builder::new()
                .name("libvirt-events".into())
                .spawn(|| loop {
                    if virt::event::event_run_default_impl().is_err() {
                        thread::sleep(Duration::from_millis(100));
                    }
                })
                .expect("spawn libvirt event thread");
        }
    });
}

/// Runs a blocking libvirt call on a worker thread and waits at most `timeout` for it.
pub(in crate::libvirt) fn call_with_timeout<T: Send + 'static>(
    context: impl Into<String>,
    timeout: Duration,
    call: impl FnOnce() -> Result<T, LibvirtError> + Send + 'static,
) -> Result<T, LibvirtError> {
    let context = context.into();
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("libvirt-call".into())
        .spawn(move || {
            let _ = reply_tx.send(call());
        })
        .map_err(|e| LibvirtError::Call {
            context: context.clone(),
            message: format!("cannot start worker thread: {e}"),
        })?;
    match reply_rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(LibvirtError::Timeout { context, timeout }),
    }
}

/// Runs a blocking libvirt call on tokio's blocking pool and waits at most `timeout` for it,
/// without holding a runtime worker. A call that times out is abandoned as above.
pub(crate) async fn off_runtime<T: Send + 'static>(
    context: String,
    timeout: Duration,
    call: impl FnOnce() -> Result<T, LibvirtError> + Send + 'static,
) -> Result<T, LibvirtError> {
    let task = tokio::task::spawn_blocking(call);
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(LibvirtError::Call {
            context,
            message: format!("the libvirt worker failed: {join_error}"),
        }),
        Err(_) => Err(LibvirtError::Timeout { context, timeout }),
    }
}

/// The blocking open: keep-alive set, as every connection of ferry has it.
fn open_blocking(uri: String) -> Result<HostConnection, LibvirtError> {
    let connect = Connect::open(Some(&uri))
        .map_err(|e| LibvirtError::call(format!("connecting to {uri}"), e))?;
    // Keep-alive needs the event loop; without it libvirt refuses, which is harmless.
    let _ = connect.set_keep_alive(KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_MISSED_PROBES);
    Ok(HostConnection {
        uri,
        connect: Arc::new(connect),
    })
}

/// An open connection to one hypervisor host.
#[derive(Clone)]
pub struct HostConnection {
    pub uri: String,
    connect: Arc<Connect>,
}

impl HostConnection {
    /// Opens `uri` (e.g. `qemu+ssh://root@hv1/system`) with keep-alive, within `timeout`.
    /// Transitional for synchronous callers; code on the runtime uses
    /// [`HostConnection::connect`].
    pub fn open(uri: &str, timeout: Duration) -> Result<HostConnection, LibvirtError> {
        init();
        let owned_uri = uri.to_string();
        call_with_timeout(format!("connecting to {uri}"), timeout, move || {
            open_blocking(owned_uri)
        })
    }

    /// Opens `uri` as [`HostConnection::open`] does, awaited on the blocking pool: for callers
    /// on the runtime (the live engine's monitors and their reconnects).
    pub async fn connect(uri: &str, timeout: Duration) -> Result<HostConnection, LibvirtError> {
        init();
        let owned_uri = uri.to_string();
        off_runtime(format!("connecting to {uri}"), timeout, move || {
            open_blocking(owned_uri)
        })
        .await
    }

    /// Runs `call` with this connection on a worker thread, at most `timeout`: for the door's
    /// synchronous operations (callers on plain threads); callers outside get typed methods,
    /// never the raw connection.
    pub(in crate::libvirt) fn call<T: Send + 'static>(
        &self,
        context: impl Into<String>,
        timeout: Duration,
        call: impl FnOnce(&Connect) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let connect = Arc::clone(&self.connect);
        call_with_timeout(
            format!("{}: {}", self.uri, context.into()),
            timeout,
            move || call(&connect),
        )
    }

    /// Lets go of this handle off the caller's thread: closing the last handle of a connection
    /// talks to the host (and the binding panics on a failed close), which must not hold up or
    /// kill a runtime worker.
    pub fn close_in_background(self) {
        std::thread::spawn(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(self)));
        });
    }

    /// Runs `call` with this connection on tokio's blocking pool, at most `timeout`. Only the
    /// typed operations of this module call it: callers outside get typed methods, never the
    /// raw connection.
    pub(in crate::libvirt) async fn run<T: Send + 'static>(
        &self,
        context: impl Into<String>,
        timeout: Duration,
        call: impl FnOnce(&Connect) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let connect = Arc::clone(&self.connect);
        off_runtime(
            format!("{}: {}", self.uri, context.into()),
            timeout,
            move || call(&connect),
        )
        .await
    }

    /// Runs `call` on the blocking pool with no bound: for the one call that lasts as long as
    /// its work, the migrate call (the policy and the operator decide when a migration has
    /// run too long, not a timeout).
    pub(in crate::libvirt) async fn run_unbounded<T: Send + 'static>(
        &self,
        context: impl Into<String>,
        call: impl FnOnce(&Connect) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let connect = Arc::clone(&self.connect);
        let context = format!("{}: {}", self.uri, context.into());
        match tokio::task::spawn_blocking(move || call(&connect)).await {
            Ok(result) => result,
            Err(join_error) => Err(LibvirtError::Call {
                context,
                message: format!("the libvirt worker failed: {join_error}"),
            }),
        }
    }

    /// Runs `call` with this connection and `other` (this one first) on the blocking pool, at
    /// most `timeout`: for work that reads one host and writes the other.
    pub(in crate::libvirt) async fn run_with<T: Send + 'static>(
        &self,
        other: &HostConnection,
        context: impl Into<String>,
        timeout: Duration,
        call: impl FnOnce(&Connect, &Connect) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let first = Arc::clone(&self.connect);
        let second = Arc::clone(&other.connect);
        off_runtime(
            format!("{} and {}: {}", self.uri, other.uri, context.into()),
            timeout,
            move || call(&first, &second),
        )
        .await
    }

    pub async fn host_facts(&self, timeout: Duration) -> Result<HostFacts, LibvirtError> {
        self.run("reading host facts", timeout, facts::read_host_facts)
            .await
    }

    pub async fn domains(&self, timeout: Duration) -> Result<Vec<DomainFacts>, LibvirtError> {
        self.run("listing domains", timeout, facts::read_domains)
            .await
    }
}
