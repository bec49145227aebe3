//! The blocking side of the inventory: one thread per host that connects, keeps the connection,
//! polls facts and domains every refresh interval, and reconnects with exponential backoff.
//! Every libvirt call goes through `HostConnection` and so has a timeout: a slow or dead host
//! costs its own worker time, never another host's or the UI's.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, HostConfig};
use crate::libvirt::{DomainFacts, HostConnection, HostFacts, LibvirtError};

use super::{Inventory, InventoryEvent};

/// Retry delays double from 1 s up to this cap, so a host that comes back is seen again
/// within half a minute without hammering one that stays down.
pub const RECONNECT_DELAY_CAP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerSettings {
    pub refresh_interval: Duration,
    pub call_timeout: Duration,
    pub reconnect_delay_cap: Duration,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> WorkerSettings {
        WorkerSettings {
            refresh_interval: config.refresh_interval(),
            call_timeout: config.call_timeout(),
            reconnect_delay_cap: RECONNECT_DELAY_CAP,
        }
    }
}

/// Delay before reconnect attempt number `attempt` (0-based): 1 s, 2 s, 4 s… capped.
pub fn reconnect_delay(attempt: u32, cap: Duration) -> Duration {
    Duration::from_secs(1u64 << attempt.min(16)).min(cap)
}

/// Reads a host's facts and all its domains over an open connection.
pub fn read_host(
    connection: &HostConnection,
    call_timeout: Duration,
) -> Result<(HostFacts, Vec<DomainFacts>), LibvirtError> {
    let facts = crate::runtime::wait(connection.host_facts(call_timeout))?;
    let domains = crate::runtime::wait(connection.domains(call_timeout))?;
    Ok((facts, domains))
}

/// Starts one worker per configured host. Each sends its events to `sink` and stops when
/// `sink` returns false (the receiver is gone). Workers are detached: they hold no state
/// worth saving, and a worker stuck in a libvirt call must not hold up ferry's exit.
pub fn spawn_workers<F>(config: &Config, sink: F)
where
    F: Fn(InventoryEvent) -> bool + Send + Clone + 'static,
{
    let settings = WorkerSettings::from_config(config);
    for host in &config.hosts {
        let host = host.clone();
        let sink = sink.clone();
        let spawned = thread::Builder::new()
            .name(format!("inventory-{}", host.name))
            .spawn(move || run_worker(host, settings, sink));
        if let Err(error) = spawned {
            tracing::error!("cannot start inventory worker: {error}");
        }
    }
}

fn run_worker<F>(host: HostConfig, settings: WorkerSettings, sink: F)
where
    F: Fn(InventoryEvent) -> bool,
{
    let mut connection: Option<HostConnection> = None;
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        // A panic inside the virt crate (its Drop panics on a failed free) must cost one
        // reading, not the worker: the host would silently stop refreshing.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if connection.is_none() {
                if !sink(InventoryEvent::Connecting {
                    host: host.name.clone(),
                    attempt: failures,
                    at: SystemTime::now(),
                }) {
                    return Err(None);
                }
                connection = Some(
                    HostConnection::open(&host.uri, settings.call_timeout)
                        .map_err(|e| Some(e.to_string()))?,
                );
            }
            let open = connection.as_ref().expect("connection was just opened");
            read_host(open, settings.call_timeout).map_err(|e| Some(e.to_string()))
        }))
        .unwrap_or_else(|_| Err(Some("libvirt binding panicked; reconnecting".to_string())));
        let keep_going = match outcome {
            Ok((facts, domains)) => {
                failures = 0;
                sink(InventoryEvent::Refreshed {
                    host: host.name.clone(),
                    facts,
                    domains,
                    at: SystemTime::now(),
                    took: started.elapsed(),
                })
            }
            Err(None) => false,
            Err(Some(error)) => {
                tracing::warn!("{}: {error}", host.name);
                // Drop the connection: after a timeout or a lost link it cannot be trusted.
                connection = None;
                let retry_in = reconnect_delay(failures, settings.reconnect_delay_cap);
                failures = failures.saturating_add(1);
                let alive = sink(InventoryEvent::Unreachable {
                    host: host.name.clone(),
                    error,
                    at: SystemTime::now(),
                    retry_in,
                });
                if !alive {
                    return;
                }
                thread::sleep(retry_in);
                continue;
            }
        };
        if !keep_going {
            return;
        }
        thread::sleep(settings.refresh_interval.saturating_sub(started.elapsed()));
    }
}

/// One reading of every host, in parallel, for the scriptable CLI: the same reading the
/// TUI's workers make, folded by the same `Inventory::apply`.
pub fn collect_once(config: &Config) -> Inventory {
    let call_timeout = config.call_timeout();
    let mut inventory = Inventory::new(config, SystemTime::now());
    let handles: Vec<_> = config
        .hosts
        .iter()
        .map(|host| {
            let host = host.clone();
            thread::spawn(move || {
                let started = Instant::now();
                let reading = HostConnection::open(&host.uri, call_timeout)
                    .and_then(|connection| read_host(&connection, call_timeout));
                match reading {
                    Ok((facts, domains)) => InventoryEvent::Refreshed {
                        host: host.name,
                        facts,
                        domains,
                        at: SystemTime::now(),
                        took: started.elapsed(),
                    },
                    Err(error) => InventoryEvent::Unreachable {
                        host: host.name,
                        error: error.to_string(),
                        at: SystemTime::now(),
                        retry_in: Duration::ZERO,
                    },
                }
            })
        })
        .collect();
    for (host, handle) in config.hosts.iter().zip(handles) {
        let event = handle
            .join()
            .unwrap_or_else(|_| InventoryEvent::Unreachable {
                host: host.name.clone(),
                error: "reading this host panicked; see the log".into(),
                at: SystemTime::now(),
                retry_in: Duration::ZERO,
            });
        inventory.apply(event);
    }
    inventory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_doubles_up_to_the_cap() {
        let cap = RECONNECT_DELAY_CAP;
        let delays: Vec<u64> = (0..8).map(|a| reconnect_delay(a, cap).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(reconnect_delay(u32::MAX, cap), cap);
    }
}
