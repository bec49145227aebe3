//! Nova's `confirm_resize` and `revert_resize` for a cold migration awaiting the operator's
//! answer, from its plan alone (a later ferry process settles what an earlier one started).

use std::time::Duration;

use serde::Serialize;

use super::door;
use super::{ColdMigrationPlan, HostTarget};
use crate::libvirt::{HostConnection, LibvirtError};

/// What confirm or revert did, step by step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettleReport {
    pub steps: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("{host}: unreachable: {error}")]
    Unreachable { host: String, error: LibvirtError },
    /// Refused before changing anything, for the reason given.
    #[error("{0}")]
    Refused(String),
    /// Stopped part-way: `done` lists what was already done.
    #[error("{error} (already done: {})", if .done.is_empty() { "nothing".to_string() } else { .done.join("; ") })]
    Partial {
        done: Vec<String>,
        error: LibvirtError,
    },
}

pub(super) async fn open(
    host: &HostTarget,
    timeout: Duration,
) -> Result<HostConnection, SettleError> {
    door::open(&host.uri, timeout)
        .await
        .map_err(|error| SettleError::Unreachable {
            host: host.name.clone(),
            error,
        })
}

/// Nova's `confirm_resize`: the migration is kept. (A resize in place keeps its new size and
/// forgets the old definition; nothing is removed.) Removes the source copy (undefines the
/// inactive source domain and deletes the source volumes that were copied; shared disks are
/// never touched). Refuses unless the destination holds the instance and the source copy is
/// inactive. Safe to run again after a partial run.
pub async fn confirm(
    plan: &ColdMigrationPlan,
    timeout: Duration,
) -> Result<SettleReport, SettleError> {
    if let Some(resize) = plan.resizes_in_place() {
        return super::in_place::confirm(plan, resize, timeout).await;
    }
    let key = plan.key();
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let destination = open(&plan.destination, timeout).await?;
    let on_destination = door::domain_presence(&destination, &key, timeout)
        .await
        .map_err(|error| SettleError::Unreachable {
            host: destination_name.clone(),
            error,
        })?;
    if on_destination.is_none() {
        return Err(SettleError::Refused(format!(
            "{destination_name}: holds no {} (UUID {}); confirming would leave no copy anywhere",
            plan.instance_name, plan.instance_uuid
        )));
    }
    let source = open(&plan.source, timeout).await?;
    let mut done = Vec::new();
    let partial = |done: &Vec<String>, error| SettleError::Partial {
        done: done.clone(),
        error,
    };
    match door::domain_presence(&source, &key, timeout)
        .await
        .map_err(|e| partial(&done, e))?
    {
        Some(presence) if presence.active => {
            return Err(SettleError::Refused(format!(
                "{source_name}: {} is running there again; confirming would delete the disks it \
                 uses. Shut it down, or revert",
                plan.instance_name
            )))
        }
        Some(_) => {
            door::undefine_domain(&source, &key, timeout)
                .await
                .map_err(|e| partial(&done, e))?;
            done.push(format!(
                "{source_name}: removed the definition of {}",
                plan.instance_name
            ));
        }
        None => done.push(format!(
            "{source_name}: definition of {} already removed",
            plan.instance_name
        )),
    }
    for (_, copy) in plan.copied_disks() {
        let deleted = source
            .delete_volume(&copy.source_volume, timeout)
            .await
            .map_err(|e| partial(&done, e))?;
        done.push(if deleted {
            format!("{source_name}: deleted {}", copy.source_volume)
        } else {
            format!("{source_name}: {} already deleted", copy.source_volume)
        });
    }
    Ok(SettleReport { steps: done })
}

/// Nova's `revert_resize`: the migration is undone. (A resize in place defines its old
/// definition again and starts it.) Stops and undefines the destination copy,
/// deletes the volumes the migration created there, and starts the instance on its source again
/// if it was running before. Refuses if the source no longer holds the instance (confirmed).
/// Changes made inside the guest since it started on the destination are lost. Safe to run
/// again after a partial run.
pub async fn revert(
    plan: &ColdMigrationPlan,
    timeout: Duration,
) -> Result<SettleReport, SettleError> {
    if let Some(resize) = plan.resizes_in_place() {
        return super::in_place::revert(plan, resize, timeout).await;
    }
    let key = plan.key();
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let source = open(&plan.source, timeout).await?;
    let on_source = door::domain_presence(&source, &key, timeout)
        .await
        .map_err(|error| SettleError::Unreachable {
            host: source_name.clone(),
            error,
        })?;
    let Some(on_source) = on_source else {
        return Err(SettleError::Refused(format!(
            "{source_name}: no longer holds {} (UUID {}), so the migration was confirmed; \
             reverting would leave no copy anywhere",
            plan.instance_name, plan.instance_uuid
        )));
    };
    let destination = open(&plan.destination, timeout).await?;
    let mut done = Vec::new();
    let partial = |done: &Vec<String>, error| SettleError::Partial {
        done: done.clone(),
        error,
    };
    remove_destination_copy(plan, &destination, &mut done, timeout).await?;
    for (_, copy) in plan.copied_disks() {
        let deleted = destination
            .delete_volume(&copy.destination_volume, timeout)
            .await
            .map_err(|e| partial(&done, e))?;
        if deleted {
            done.push(format!(
                "{destination_name}: deleted {}",
                copy.destination_volume
            ));
        }
    }
    if plan.instance_was_running && !on_source.active {
        start_on_source_again(plan, &source, &mut done, timeout).await?;
    }
    Ok(SettleReport { steps: done })
}

/// Stops and undefines the destination's copy, found by UUID (a domain of the same name there
/// is another guest and stays), and notes each step in `done`.
pub(super) async fn remove_destination_copy(
    plan: &ColdMigrationPlan,
    destination: &HostConnection,
    done: &mut Vec<String>,
    timeout: Duration,
) -> Result<(), SettleError> {
    let removed = door::remove_domain_copy(destination, &plan.key(), timeout)
        .await
        .map_err(|error| SettleError::Partial {
            done: done.clone(),
            error,
        })?;
    let destination_name = &plan.destination.name;
    done.extend(
        removed
            .into_iter()
            .map(|d| format!("{destination_name}: {d}")),
    );
    Ok(())
}

/// Starts the instance on its source again and notes it in `done`.
pub(super) async fn start_on_source_again(
    plan: &ColdMigrationPlan,
    source: &HostConnection,
    done: &mut Vec<String>,
    timeout: Duration,
) -> Result<(), SettleError> {
    door::start_domain(source, &plan.key(), timeout)
        .await
        .map_err(|error| SettleError::Partial {
            done: done.clone(),
            error,
        })?;
    done.push(format!(
        "{}: started {} again",
        plan.source.name, plan.instance_name
    ));
    Ok(())
}
