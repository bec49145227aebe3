//! Aborting a live migration that no ferry watches (its ferry died, or it was started with
//! virsh): straight to libvirt, which rolls the guest back itself. The job is aborted on the
//! host that runs its outgoing side; the destination holds the incoming side, which cannot be
//! aborted there.

use std::time::Duration;

use crate::config::Config;
use crate::libvirt::lifecycle::DomainKey;
use crate::libvirt::HostConnection;
use crate::model::standing::{HostAnswer, RunningJob};

/// What an abort of an unwatched migration came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnwatchedAbort {
    /// libvirt took the abort on `host`; the guest stays there.
    Sent { host: String },
    /// The migration is in post-copy on `host`: the guest's memory is split between the hosts,
    /// so it can only finish.
    RefusedInPostCopy { host: String },
}

/// Finds the host with the outgoing job of `instance` and aborts it there. Err: nothing to
/// abort (not found on any reachable host, or no job runs), or libvirt refused.
pub async fn abort_unwatched(config: &Config, instance: &str) -> Result<UnwatchedAbort, String> {
    let timeout = config.call_timeout();
    let key = DomainKey::Name(instance.to_string());
    let mut holders = Vec::new();
    for host in &config.hosts {
        let Ok(connection) = HostConnection::connect(&host.uri, timeout).await else {
            continue;
        };
        if let HostAnswer::Holds(standing) = standing_of(&connection, &key, timeout).await {
            holders.push((host.name.to_string(), connection, standing));
        }
    }
    let Some((host, connection, standing)) = holders
        .iter()
        .find(|(_, _, standing)| standing.job == Some(RunningJob::MigrationOut))
    else {
        return Err(if holders.is_empty() {
            format!("{instance}: not found on any reachable host in the config")
        } else {
            format!("{instance}: no job runs on it on any reachable host (nothing to abort)")
        });
    };
    if standing.paused_for_post_copy || standing.post_copy_failed {
        return Ok(UnwatchedAbort::RefusedInPostCopy { host: host.clone() });
    }
    abort_job(connection, &key, timeout)
        .await
        .map_err(|error| format!("{host}: {error}"))?;
    Ok(UnwatchedAbort::Sent { host: host.clone() })
}

async fn standing_of(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> HostAnswer {
    let (connection, key) = (connection.clone(), key.clone());
    tokio::task::spawn_blocking(move || connection.domain_standing(&key, timeout))
        .await
        .unwrap_or_else(|error| HostAnswer::Silent {
            why: error.to_string(),
        })
}

async fn abort_job(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<(), String> {
    let (connection, key) = (connection.clone(), key.clone());
    tokio::task::spawn_blocking(move || connection.abort_migration_job(&key, timeout))
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())
}
