//! Planning a live migration: which host holds the instance, which hosts to ask, the facts
//! for each candidate destination, the pure checks over them, and the automatic choice of a
//! destination. The readings themselves are the libvirt door's ([`crate::libvirt::readings`],
//! [`crate::libvirt::probe`]); the checks are [`crate::precheck`]'s.
//!
//! Every remote call is bounded by the config's call timeout and runs off the runtime's
//! workers. A destination that is not in the config is never contacted, and neither is one
//! whose name is not a valid host name.

use std::time::Duration;

use crate::config::{Config, HostConfig};
use crate::libvirt::probe::{probe_plan, probe_shared_storage};
use crate::libvirt::readings::{DestinationReading, SourceReading};
use crate::libvirt::HostConnection;
use crate::model::domain::DomainRunState;
use crate::model::host_name::HostNameError;
use crate::model::HostName;
use crate::precheck::nova::{NovaCloudHint, NovaManagedRefusal};
use crate::precheck::{
    run_all, unreachable_note, BlockMigrationChoice, HostProblem, JobInProgress, PrecheckFacts,
    PrecheckReport, SharedStorageProbe,
};

/// Why no facts could be gathered at all: without the instance there is nothing to check, and
/// a domain Nova manages is not ferry's to move to any destination. Problems with the
/// destination are not errors; they are failed checks in the report.
#[derive(Debug, thiserror::Error)]
pub enum PrecheckError {
    #[error("the config lists no hosts; add [[hosts]] entries with a name and a libvirt uri")]
    NoHosts,
    #[error("source: {0}")]
    InvalidSourceName(HostNameError),
    #[error(
        "source {name}: unknown host; add it to the config as a [[hosts]] entry with its libvirt \
         uri, or pick a configured host ({})", .configured.join(", ")
    )]
    UnknownSource {
        name: String,
        configured: Vec<String>,
    },
    #[error("source {host}: unreachable, so {instance} cannot be read: {error}")]
    SourceUnreachable {
        host: String,
        instance: String,
        error: String,
    },
    #[error(
        "{instance}: not defined on {host}; check the name with `ferry instances`, or leave the \
         source out and ferry finds the host that runs it"
    )]
    InstanceNotOnSource { instance: String, host: String },
    #[error(
        "{instance}: no reachable host defines it (looked on {}){}; check the name with \
         `ferry instances`",
        .searched.join(", "),
        unreachable_note(.unreachable)
    )]
    InstanceNotFound {
        instance: String,
        searched: Vec<String>,
        unreachable: Vec<String>,
    },
    #[error(
        "{instance}: defined on several hosts ({}) and running on no single one of them; a \
         migration may be under way; name the source host",
        .placements.join(", ")
    )]
    InstanceOnSeveralHosts {
        instance: String,
        placements: Vec<String>,
    },
    /// Nova owns the domain: nothing is checked, no destination is probed.
    #[error("{0}")]
    NovaManaged(Box<NovaManagedRefusal>),
    #[error("{host}: reading {instance}: {error}")]
    ReadingInstance {
        host: String,
        instance: String,
        error: String,
    },
}

/// One destination considered by [`pick_auto_destination`], with its full checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationCandidate {
    pub host: String,
    pub facts: PrecheckFacts,
    pub report: PrecheckReport,
}

/// Every other configured host, checked as a destination, and the one picked.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoDestination {
    pub source_host: String,
    /// The passing candidate with the most free memory; None when no candidate passes.
    pub chosen: Option<String>,
    /// In config order, passing or not: the TUI shows every report.
    pub candidates: Vec<DestinationCandidate>,
}

/// Gathers the facts for live-migrating `instance` from `source` (None: the host that runs it)
/// to `destination` (as the operator typed it), then runs every check. Blocks; call it from a
/// worker thread.
pub async fn precheck_live_migration(
    config: &Config,
    instance: &str,
    source: Option<&str>,
    destination: &str,
    block_migration: BlockMigrationChoice,
) -> Result<(PrecheckFacts, PrecheckReport), PrecheckError> {
    let facts =
        gather_precheck_facts(config, instance, source, destination, block_migration).await?;
    let report = run_all(&facts);
    Ok((facts, report))
}

/// The facts alone, for callers that judge them later or record them.
pub async fn gather_precheck_facts(
    config: &Config,
    instance: &str,
    source: Option<&str>,
    destination: &str,
    block_migration: BlockMigrationChoice,
) -> Result<PrecheckFacts, PrecheckError> {
    let session = Session::open(config, instance, source, Some(destination)).await?;
    Ok(session.facts_for(destination, block_migration).await)
}

/// Checks every other configured host as a destination and picks the one that passes with the
/// most free memory. Candidates are checked one after another: their probes use the same
/// directory on the source, where libvirt allows only one pool at a time.
pub async fn pick_auto_destination(
    config: &Config,
    instance: &str,
    source: Option<&str>,
    block_migration: BlockMigrationChoice,
) -> Result<AutoDestination, PrecheckError> {
    let session = Session::open(config, instance, source, None).await?;
    let mut candidates: Vec<DestinationCandidate> = Vec::new();
    for host in config
        .hosts
        .iter()
        .filter(|host| host.name != session.source.name)
    {
        let facts = session.facts_for(host.name.as_str(), block_migration).await;
        let report = run_all(&facts);
        candidates.push(DestinationCandidate {
            host: host.name.to_string(),
            facts,
            report,
        });
    }
    let chosen = choose_auto_destination(&candidates).map(|index| candidates[index].host.clone());
    Ok(AutoDestination {
        source_host: session.source.name.to_string(),
        chosen,
        candidates,
    })
}

/// The passing candidate with the most free memory (unknown counts as none); the first in
/// config order on a tie.
pub fn choose_auto_destination(candidates: &[DestinationCandidate]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (index, candidate) in candidates.iter().enumerate() {
        if !candidate.report.passed() {
            continue;
        }
        let free = candidate.facts.destination_free_memory_bytes.unwrap_or(0);
        if best.is_none_or(|(_, best_free)| free > best_free) {
            best = Some((index, free));
        }
    }
    best.map(|(index, _)| index)
}

/// The source side, read once, and connections to the hosts that may be destinations.
struct Session<'a> {
    config: &'a Config,
    timeout: Duration,
    instance: String,
    source: HostConfig,
    source_connection: HostConnection,
    source_reading: SourceReading,
    /// Connections opened up front; an Err keeps why the host could not be reached.
    connections: Vec<(HostConfig, Result<HostConnection, String>)>,
}

impl<'a> Session<'a> {
    /// `destination` None: open every host (automatic choice, or searching for the source).
    async fn open(
        config: &'a Config,
        instance: &str,
        source: Option<&str>,
        destination: Option<&str>,
    ) -> Result<Session<'a>, PrecheckError> {
        if config.hosts.is_empty() {
            return Err(PrecheckError::NoHosts);
        }
        let timeout = config.call_timeout();
        let named_source = source
            .map(|name| configured_source(config, name))
            .transpose()?;
        // Source and destination are opened together, so a dead destination costs one
        // timeout in parallel rather than after the source.
        let to_open: Vec<HostConfig> = match (&named_source, destination) {
            (Some(source), Some(destination)) => {
                let mut hosts = vec![source.clone()];
                hosts.extend(
                    configured_host(config, destination)
                        .filter(|host| host.name != source.name)
                        .cloned(),
                );
                hosts
            }
            _ => config.hosts.clone(),
        };
        let connections = open_in_parallel(&to_open, timeout).await;
        let source = match named_source {
            Some(host) => host,
            None => locate_instance(&connections, instance, timeout).await?,
        };
        let source_connection = connections
            .iter()
            .find(|(host, _)| host.name == source.name)
            .map(|(_, connection)| connection.clone())
            .expect("the source is among the hosts opened")
            .map_err(|error| PrecheckError::SourceUnreachable {
                host: source.name.to_string(),
                instance: instance.to_string(),
                error,
            })?;
        let source_reading = source_connection
            .read_instance(instance, &config.shared_storage_prefixes, timeout)
            .await
            .map_err(|error| PrecheckError::ReadingInstance {
                host: source.name.to_string(),
                instance: instance.to_string(),
                error: error.to_string(),
            })?
            .ok_or_else(|| PrecheckError::InstanceNotOnSource {
                instance: instance.to_string(),
                host: source.name.to_string(),
            })?;
        if let Some(nova) = &source_reading.nova {
            return Err(PrecheckError::NovaManaged(Box::new(NovaManagedRefusal {
                instance: instance.to_string(),
                host: source.name.to_string(),
                nova: nova.clone(),
                cloud: NovaCloudHint::for_host(&config.clouds, source.name.as_str(), &source.uri),
            })));
        }
        Ok(Session {
            config,
            timeout,
            instance: instance.to_string(),
            source,
            source_connection,
            source_reading,
            connections,
        })
    }

    async fn connection_to(&self, host: &HostConfig) -> Result<HostConnection, String> {
        match self.connections.iter().find(|(h, _)| h.name == host.name) {
            Some((_, connection)) => connection.clone(),
            None => open_connection(&host.uri, self.timeout).await,
        }
    }

    async fn facts_for(
        &self,
        destination: &str,
        block_migration: BlockMigrationChoice,
    ) -> PrecheckFacts {
        let source_name = self.source.name.as_str();
        let same_host = destination.eq_ignore_ascii_case(source_name);
        let (connection, problem) = if HostName::parse(destination).is_err() {
            // Not a host name at all: never put it near a URI. The name check says why.
            (None, None)
        } else if same_host {
            (Some(self.source_connection.clone()), None)
        } else {
            match configured_host(self.config, destination) {
                None => (
                    None,
                    Some(HostProblem::NotConfigured {
                        configured: configured_names(self.config),
                    }),
                ),
                Some(host) => match self.connection_to(host).await {
                    Ok(connection) => (Some(connection), None),
                    Err(error) => (None, Some(HostProblem::Unreachable { error })),
                },
            }
        };

        let reading = self.source_reading.clone();
        let destination_reading = match &connection {
            Some(connection) => {
                connection
                    .read_destination(destination, reading.cpu_query.clone(), self.timeout)
                    .await
            }
            None => DestinationReading::not_contacted(),
        };
        let plan = probe_plan(&reading.disks, reading.kernel.as_deref());
        let (shared_storage_probe, destination_free_disk_bytes) = match &connection {
            None => (
                SharedStorageProbe::Unknown {
                    reason: "the destination was not contacted".to_string(),
                },
                None,
            ),
            Some(_) if same_host => (
                SharedStorageProbe::Unknown {
                    reason: format!("{destination} is the source host; nothing to probe"),
                },
                None,
            ),
            Some(destination_connection) => {
                probe_shared_storage(
                    (&self.source_connection, source_name),
                    (destination_connection, destination),
                    &plan,
                    self.timeout,
                )
                .await
            }
        };

        PrecheckFacts {
            instance_name: self.instance.clone(),
            instance_state: reading.state,
            instance_memory_bytes: reading.memory_bytes,
            disks: reading.disks,
            source_host: source_name.to_string(),
            source_host_up: true,
            destination_host: destination.to_string(),
            destination_host_up: connection.is_some(),
            destination_host_problem: problem,
            destination_free_memory_bytes: destination_reading.free_memory_bytes,
            source_hypervisor: reading.hypervisor,
            destination_hypervisor: destination_reading.hypervisor,
            cpu_compare: destination_reading.cpu,
            shared_storage_probe,
            destination_free_disk_bytes,
            block_migration,
            job_in_progress: reading.job_in_progress.map(|what| JobInProgress {
                host: source_name.to_string(),
                what,
            }),
        }
    }
}

fn configured_host<'c>(config: &'c Config, name: &str) -> Option<&'c HostConfig> {
    // Host names are DNS names: HV2 and hv2 are the same machine.
    config
        .hosts
        .iter()
        .find(|host| host.name.as_str().eq_ignore_ascii_case(name))
}

fn configured_names(config: &Config) -> Vec<String> {
    config.hosts.iter().map(|h| h.name.to_string()).collect()
}

fn configured_source(config: &Config, name: &str) -> Result<HostConfig, PrecheckError> {
    HostName::parse(name).map_err(PrecheckError::InvalidSourceName)?;
    configured_host(config, name)
        .cloned()
        .ok_or_else(|| PrecheckError::UnknownSource {
            name: name.to_string(),
            configured: configured_names(config),
        })
}

/// Opens a connection off the runtime's workers. Opening blocks in libvirt (ssh, the
/// handshake) for up to `timeout`.
async fn open_connection(uri: &str, timeout: Duration) -> Result<HostConnection, String> {
    let uri = uri.to_string();
    tokio::task::spawn_blocking(move || HostConnection::open(&uri, timeout))
        .await
        .map_err(|e| format!("opening the connection failed: {e}"))?
        .map_err(|e| e.to_string())
}

/// Opens every host at once; each open is bounded by `timeout`.
async fn open_in_parallel(
    hosts: &[HostConfig],
    timeout: Duration,
) -> Vec<(HostConfig, Result<HostConnection, String>)> {
    let opening: Vec<_> = hosts
        .iter()
        .map(|host| {
            let uri = host.uri.clone();
            tokio::spawn(async move { open_connection(&uri, timeout).await })
        })
        .collect();
    let mut opened = Vec::with_capacity(hosts.len());
    for (host, task) in hosts.iter().zip(opening) {
        let connection = task
            .await
            .unwrap_or_else(|_| Err("opening the connection panicked".to_string()));
        opened.push((host.clone(), connection));
    }
    opened
}

/// Every reachable host asked at once whether it defines `instance`: the one answer to
/// "which host holds X". Hosts whose connection failed, or that did not answer, are listed as
/// unreachable: silence is never taken for absence.
pub async fn placements_of(
    connections: &[(HostConfig, Result<HostConnection, String>)],
    instance: &str,
    timeout: Duration,
) -> Placements {
    let asking: Vec<_> = connections
        .iter()
        .map(|(_, connection)| {
            let connection = connection.clone();
            let name = instance.to_string();
            tokio::spawn(async move {
                connection?
                    .domain_state(&name, timeout)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut placements = Placements::default();
    for ((host, _), task) in connections.iter().zip(asking) {
        let answer = task
            .await
            .unwrap_or_else(|_| Err("looking up the instance panicked".to_string()));
        match answer {
            Ok(found) => {
                placements.searched.push(host.name.to_string());
                if let Some(state) = found {
                    placements.found.push((host.name.to_string(), state));
                }
            }
            Err(_) => placements.unreachable.push(host.name.to_string()),
        }
    }
    placements
}

/// Which configured hosts hold `instance`: every host opened and asked at once, so an
/// unreachable one costs one timeout, not one each.
pub async fn find_instance(config: &Config, instance: &str) -> Placements {
    let timeout = config.call_timeout();
    let connections = open_in_parallel(&config.hosts, timeout).await;
    placements_of(&connections, instance, timeout).await
}

/// Where an instance was found, where it was looked for, and where nobody answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placements {
    pub found: Vec<(String, DomainRunState)>,
    pub searched: Vec<String>,
    pub unreachable: Vec<String>,
}

/// Asks every reachable host whether it defines the instance, then picks the source.
async fn locate_instance(
    connections: &[(HostConfig, Result<HostConnection, String>)],
    instance: &str,
    timeout: Duration,
) -> Result<HostConfig, PrecheckError> {
    let placements = placements_of(connections, instance, timeout).await;
    let chosen = choose_source(
        instance,
        &placements.found,
        &placements.searched,
        &placements.unreachable,
    )?;
    let chosen_name = &placements.found[chosen].0;
    Ok(connections
        .iter()
        .map(|(host, _)| host)
        .find(|host| host.name.as_str() == chosen_name)
        .expect("the chosen host answered")
        .clone())
}

/// Which placement is the source: the only host defining the instance, or else the only one
/// running it (during a migration the destination holds a paused copy; after a failed one a
/// shut-off definition may be left behind).
pub fn choose_source(
    instance: &str,
    placements: &[(String, DomainRunState)],
    searched: &[String],
    unreachable: &[String],
) -> Result<usize, PrecheckError> {
    match placements {
        [] => Err(PrecheckError::InstanceNotFound {
            instance: instance.to_string(),
            searched: searched.to_vec(),
            unreachable: unreachable.to_vec(),
        }),
        [_] => Ok(0),
        _ => {
            let running: Vec<usize> = placements
                .iter()
                .enumerate()
                .filter(|(_, (_, state))| *state == DomainRunState::Running)
                .map(|(index, _)| index)
                .collect();
            match running.as_slice() {
                [only] => Ok(*only),
                _ => Err(PrecheckError::InstanceOnSeveralHosts {
                    instance: instance.to_string(),
                    placements: placements
                        .iter()
                        .map(|(host, state)| format!("{host}: {}", state.as_virsh_str()))
                        .collect(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::units::MIB;
    use crate::precheck::{CpuCompareResult, InstanceState};

    #[test]
    fn the_source_is_the_only_host_defining_or_else_running_the_instance() {
        let searched = ["hv1".to_string(), "hv2".to_string()];
        let error = choose_source("web1", &[], &searched, &["hv3".into()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "web1: no reachable host defines it (looked on hv1, hv2); not reachable, so not \
             searched: hv3; check the name with `ferry instances`"
        );
        let single = [("hv2".to_string(), DomainRunState::ShutOff)];
        assert_eq!(choose_source("web1", &single, &searched, &[]).unwrap(), 0);
        // Mid-migration: running on the source, paused on the destination.
        let migrating = [
            ("hv1".to_string(), DomainRunState::Paused),
            ("hv2".to_string(), DomainRunState::Running),
        ];
        assert_eq!(
            choose_source("web1", &migrating, &searched, &[]).unwrap(),
            1
        );
        let stale = [
            ("hv1".to_string(), DomainRunState::ShutOff),
            ("hv2".to_string(), DomainRunState::ShutOff),
        ];
        let error = choose_source("web1", &stale, &searched, &[]).unwrap_err();
        assert!(
            error.to_string().contains("(hv1: shut off, hv2: shut off)")
                && error.to_string().contains("name the source host"),
            "{error}"
        );
    }

    fn candidate(host: &str, free_gib: Option<u64>, passes: bool) -> DestinationCandidate {
        let facts = PrecheckFacts {
            instance_name: "web1".into(),
            instance_state: if passes {
                InstanceState::Running
            } else {
                InstanceState::ShutOff
            },
            instance_memory_bytes: 256 * MIB,
            disks: Vec::new(),
            source_host: "hv1".into(),
            source_host_up: true,
            destination_host: host.into(),
            destination_host_up: true,
            destination_host_problem: None,
            destination_free_memory_bytes: free_gib.map(|g| g << 30),
            source_hypervisor: None,
            destination_hypervisor: None,
            cpu_compare: CpuCompareResult::Superset,
            shared_storage_probe: SharedStorageProbe::Shared,
            destination_free_disk_bytes: None,
            block_migration: BlockMigrationChoice::Auto,
            job_in_progress: None,
        };
        let report = run_all(&facts);
        DestinationCandidate {
            host: host.into(),
            facts,
            report,
        }
    }

    #[test]
    fn the_automatic_destination_passes_with_the_most_free_memory() {
        let candidates = [
            candidate("hv2", Some(4), true),
            candidate("hv3", Some(64), false),
            candidate("hv4", Some(8), true),
            candidate("hv5", Some(8), true),
        ];
        assert_eq!(choose_auto_destination(&candidates), Some(2));
        assert_eq!(choose_auto_destination(&candidates[1..2]), None);
        assert_eq!(choose_auto_destination(&[]), None);
        // Free memory unknown (a warning) still passes, ranked last.
        let unknown = [
            candidate("hv2", None, true),
            candidate("hv3", Some(1), true),
        ];
        assert_eq!(choose_auto_destination(&unknown), Some(1));
    }

    #[test]
    fn source_errors_say_how_to_fix_them() {
        let config = Config::parse(
            "[[hosts]]\nname = 'hv1'\nuri = 'qemu:///system'\n[[hosts]]\nname = 'hv2'\nuri = 'qemu:///system'\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let error = configured_source(&config, "hv9").unwrap_err().to_string();
        assert_eq!(
            error,
            "source hv9: unknown host; add it to the config as a [[hosts]] entry with its libvirt \
             uri, or pick a configured host (hv1, hv2)"
        );
        let error = configured_source(&config, "hv1/system?x")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("source: host name \"hv1/system?x\" contains '/'"),
            "{error}"
        );
        assert_eq!(
            configured_source(&config, "HV2").unwrap().name.as_str(),
            "hv2"
        );
        let empty = Config::default();
        assert!(matches!(
            crate::runtime::wait(precheck_live_migration(
                &empty,
                "web1",
                None,
                "hv2",
                BlockMigrationChoice::Auto
            )),
            Err(PrecheckError::NoHosts)
        ));
    }
}
