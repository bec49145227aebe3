//! The inventory's side that waits on libvirt: one tokio task per host that connects, keeps the
//! connection, polls facts and domains every refresh interval, and reconnects with exponential
//! backoff. Every libvirt call goes through `HostConnection`, off the runtime's workers and
//! under a timeout: a slow or dead host costs its own task time, never another host's or the
//! UI's.
//!
//! A reading that does not answer within the call timeout makes the host "slow", not
//! unreachable: under a migration's load a host may answer late once. Only
//! [`MISSES_BEFORE_UNREACHABLE`] readings in a row without an answer, or an error that is an
//! answer (refused, connection lost), make it unreachable.

use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, HostConfig};
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::domain::{DomainFacts, HostFacts};

use super::{Inventory, InventoryEvent};

/// Retry delays double from 1 s up to this cap, so a host that comes back is seen again
/// within half a minute without hammering one that stays down.
pub const RECONNECT_DELAY_CAP: Duration = Duration::from_secs(30);

/// Readings in a row that found no answer within the call timeout before a host that was up
/// counts as unreachable (and its connection is dropped and opened again).
pub const MISSES_BEFORE_UNREACHABLE: u32 = 3;

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
pub async fn read_host(
    connection: &HostConnection,
    call_timeout: Duration,
) -> Result<(HostFacts, Vec<DomainFacts>), LibvirtError> {
    let facts = connection.host_facts(call_timeout).await?;
    let domains = connection.domains(call_timeout).await?;
    Ok((facts, domains))
}

/// What one failed reading means for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No answer in time, with fewer than the bound in a row: keep the connection, say "slow".
    Late { in_a_row: u32 },
    /// An answer that is a failure, or too many late ones: drop the connection, reconnect.
    Unreachable,
}

/// Pure: judges a failed reading from whether it timed out, whether the host was answering
/// before, and how many readings in a row went unanswered before this one.
pub fn judge_miss(timed_out: bool, was_answering: bool, late_before: u32) -> Miss {
    let in_a_row = late_before + 1;
    if timed_out && was_answering && in_a_row < MISSES_BEFORE_UNREACHABLE {
        Miss::Late { in_a_row }
    } else {
        Miss::Unreachable
    }
}

/// Starts one task per configured host, and one per configured cloud
/// (`cloud_worker::spawn_cloud_workers`), on the shared runtime. Each sends its events to
/// `sink` and stops when `sink` returns false (the receiver is gone). Tasks are detached:
/// they hold no state worth saving, and a call stuck in libvirt runs on the blocking pool,
/// where it holds up nothing.
pub fn spawn_workers<F>(config: &Config, sink: F)
where
    F: Fn(InventoryEvent) -> bool + Send + Sync + Clone + 'static,
{
    let settings = WorkerSettings::from_config(config);
    let runtime = crate::runtime::handle();
    for host in &config.hosts {
        runtime.spawn(run_worker(host.clone(), settings, sink.clone()));
    }
    super::cloud_worker::spawn_cloud_workers(config, sink);
}

async fn run_worker<F>(host: HostConfig, settings: WorkerSettings, sink: F)
where
    F: Fn(InventoryEvent) -> bool,
{
    let mut connection: Option<HostConnection> = None;
    let mut failures: u32 = 0;
    let mut late_in_a_row: u32 = 0;
    loop {
        let started = Instant::now();
        if connection.is_none()
            && !sink(InventoryEvent::Connecting {
                host: host.name.clone(),
                attempt: failures,
                at: SystemTime::now(),
            })
        {
            return;
        }
        let reading = match &connection {
            Some(open) => read_host(open, settings.call_timeout).await,
            None => match HostConnection::connect(&host.uri, settings.call_timeout).await {
                Ok(opened) => {
                    let reading = read_host(&opened, settings.call_timeout).await;
                    connection = Some(opened);
                    reading
                }
                Err(error) => Err(error),
            },
        };
        let keep_going = match reading {
            Ok((facts, domains)) => {
                failures = 0;
                late_in_a_row = 0;
                sink(InventoryEvent::Refreshed {
                    host: host.name.clone(),
                    facts,
                    domains,
                    at: SystemTime::now(),
                    took: started.elapsed(),
                })
            }
            Err(error) => {
                let timed_out = matches!(error, LibvirtError::Timeout { .. });
                match judge_miss(
                    timed_out,
                    failures == 0 && connection.is_some(),
                    late_in_a_row,
                ) {
                    Miss::Late { in_a_row } => {
                        tracing::info!("{}: late answer ({in_a_row} in a row): {error}", host.name);
                        late_in_a_row = in_a_row;
                        sink(InventoryEvent::Late {
                            host: host.name.clone(),
                            error: error.to_string(),
                            at: SystemTime::now(),
                            in_a_row,
                        })
                    }
                    Miss::Unreachable => {
                        tracing::warn!("{}: {error}", host.name);
                        // Drop the connection: after a lost link it cannot be trusted.
                        if let Some(lost) = connection.take() {
                            lost.close_in_background();
                        }
                        late_in_a_row = 0;
                        let retry_in = reconnect_delay(failures, settings.reconnect_delay_cap);
                        failures = failures.saturating_add(1);
                        let alive = sink(InventoryEvent::Unreachable {
                            host: host.name.clone(),
                            error: error.to_string(),
                            at: SystemTime::now(),
                            retry_in,
                        });
                        if !alive {
                            return;
                        }
                        tokio::time::sleep(retry_in).await;
                        continue;
                    }
                }
            }
        };
        if !keep_going {
            return;
        }
        tokio::time::sleep(settings.refresh_interval.saturating_sub(started.elapsed())).await;
    }
}

/// One reading of every host, all at once, for the scriptable CLI: the same reading the
/// TUI's tasks make, folded by the same `Inventory::apply`. Call it from synchronous code.
pub fn collect_once(config: &Config) -> Inventory {
    crate::runtime::wait(collect_all(config))
}

/// One reading of every host and every cloud, all at once.
pub async fn collect_all(config: &Config) -> Inventory {
    let call_timeout = config.call_timeout();
    let mut inventory = Inventory::new(config, SystemTime::now());
    let readings: Vec<_> = config
        .hosts
        .iter()
        .map(|host| {
            let host = host.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let reading = match HostConnection::connect(&host.uri, call_timeout).await {
                    Ok(connection) => read_host(&connection, call_timeout).await,
                    Err(error) => Err(error),
                };
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
    let cloud_readings: Vec<_> = config
        .clouds
        .iter()
        .map(|cloud| {
            tokio::spawn(super::cloud_worker::read_cloud_once(
                cloud.clone(),
                call_timeout,
            ))
        })
        .collect();
    for (host, reading) in config.hosts.iter().zip(readings) {
        let event = reading
            .await
            .unwrap_or_else(|_| InventoryEvent::Unreachable {
                host: host.name.clone(),
                error: "reading this host panicked; see the log".into(),
                at: SystemTime::now(),
                retry_in: Duration::ZERO,
            });
        inventory.apply(event);
    }
    for (cloud, reading) in config.clouds.iter().zip(cloud_readings) {
        let event = reading
            .await
            .unwrap_or_else(|_| InventoryEvent::CloudUnreachable {
                cloud: cloud.name.clone(),
                error: format!("cloud {}: reading it panicked; see the log", cloud.name),
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

    #[test]
    fn one_late_answer_is_slow_and_only_a_run_of_them_is_unreachable() {
        assert_eq!(judge_miss(true, true, 0), Miss::Late { in_a_row: 1 });
        assert_eq!(judge_miss(true, true, 1), Miss::Late { in_a_row: 2 });
        assert_eq!(
            judge_miss(true, true, MISSES_BEFORE_UNREACHABLE - 1),
            Miss::Unreachable
        );
        // An error that is an answer (refused, connection lost) is not lateness.
        assert_eq!(judge_miss(false, true, 0), Miss::Unreachable);
        // A host never reached, or already failing, gets no grace.
        assert_eq!(judge_miss(true, false, 0), Miss::Unreachable);
    }
}
