//! Aborting a live migration that no ferry watches (its ferry died, or it was started with
//! virsh): straight to libvirt, which rolls the guest back itself. The job is aborted on the
//! host that runs its outgoing side; the destination holds the incoming side, which cannot be
//! aborted there.

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
    // Every host is asked at once: a slow or dead one costs one timeout, not one each.
    let asking: Vec<_> = config
        .hosts
        .iter()
        .map(|host| {
            let (uri, key) = (host.uri.clone(), key.clone());
            tokio::spawn(async move {
                let connection = HostConnection::connect(&uri, timeout).await.ok()?;
                match connection.domain_standing(&key, timeout).await {
                    HostAnswer::Holds(standing) => Some((connection, standing)),
                    HostAnswer::Absent | HostAnswer::Silent { .. } => None,
                }
            })
        })
        .collect();
    let mut holders = Vec::new();
    for (host, asked) in config.hosts.iter().zip(asking) {
        if let Ok(Some((connection, standing))) = asked.await {
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
    connection
        .abort_migration_job(&key, timeout)
        .await
        .map_err(|error| format!("{host}: {error}"))?;
    Ok(UnwatchedAbort::Sent { host: host.clone() })
}
