//! Settling a cold migration whose ferry died mid-way: a pure decision from the plan and what
//! each host holds now ([`recovery_decision`]), then the rollback it calls for, if any.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::door;
use super::settle::{open, remove_destination_copy, start_on_source_again, SettleError};
use super::{ColdMigrationPlan, CLEANUP_RETRY_PAUSE};
use crate::libvirt::lifecycle::DomainPresence;
use crate::libvirt::volume_copy::VolumeRef;
use crate::libvirt::HostConnection;

/// What recovering an interrupted cold migration should do, judged from the plan and what each
/// host holds of the instance now (found by UUID). See [`recovery_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryDecision {
    /// The copy was verified before the step found on the destination could happen: keep it,
    /// and let the operator confirm or revert.
    AwaitingConfirm { reason: String },
    /// Undo it: remove the destination copy, start the guest on its source again.
    RollBack {
        reason: String,
        /// The destination holds a domain with the plan's UUID (stopped hard if it runs).
        remove_destination_domain: bool,
        start_on_source: bool,
    },
    /// The facts contradict each other or the plan: change nothing, say why.
    Refuse { reason: String },
}

/// How a cold migration whose ferry died is settled. Pure: the presences come from the hosts,
/// `rollback_begun` from the history (the dead ferry had started rolling back).
///
/// The order of the forward path is what makes this safe: every copied disk is verified
/// before the definition is written on the destination, and the guest is started there only
/// after that. So a definition (or a running guest) found there proves a verified copy. The
/// source's definition and disks are never touched here; only the destination's copy is
/// removed, and only after the facts show the source still holds the instance.
pub fn recovery_decision(
    plan: &ColdMigrationPlan,
    on_source: Option<&DomainPresence>,
    on_destination: Option<&DomainPresence>,
    rollback_begun: bool,
) -> RecoveryDecision {
    let (name, uuid) = (&plan.instance_name, &plan.instance_uuid);
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let refuse = |reason: String| RecoveryDecision::Refuse { reason };
    let Some(on_source) = on_source else {
        // Only a confirm removes the source copy: the destination's may be the only one left.
        return refuse(format!(
            "{source_name}: holds no {name} (UUID {uuid}) any more, so it was confirmed or \
             removed by hand since; ferry will not guess which copy to keep. Check both hosts \
             with `ferry instances` and settle it with virsh"
        ));
    };
    if !on_source.persistent {
        return refuse(format!(
            "{source_name}: {name} runs there with no persistent definition, which ferry never \
             leaves; the destination copy may be the only definition left. Check both hosts \
             with `ferry instances` and settle it with virsh"
        ));
    }
    if let Some(on_destination) = on_destination {
        if on_source.active && on_destination.active {
            return refuse(format!(
                "{name} (UUID {uuid}) runs on both {source_name} and {destination_name}, and \
                 their disks diverge; shut down the copy that should not run, then run \
                 `ferry resume` again"
            ));
        }
        if on_destination.active && !on_destination.persistent {
            return refuse(format!(
                "{destination_name}: {name} runs there with no persistent definition, which \
                 ferry never does; check it, then run `ferry resume` again"
            ));
        }
    }
    let roll_back = |reason: String| RecoveryDecision::RollBack {
        reason,
        remove_destination_domain: on_destination.is_some(),
        // The destination copy is removed first, so after the rollback the guest runs nowhere
        // unless its source copy does.
        start_on_source: plan.instance_was_running && !on_source.active,
    };
    if rollback_begun {
        return roll_back("it had begun rolling back".to_string());
    }
    if on_source.active {
        // Started again on the source (by hand, or never shut down): its disks are ahead of
        // any copy.
        return roll_back(format!("{name} runs on its source {source_name}"));
    }
    match on_destination {
        Some(found) if found.active => RecoveryDecision::AwaitingConfirm {
            reason: format!(
                "{destination_name} runs {name}, which ferry starts only after every copied \
                 disk is verified"
            ),
        },
        Some(_) if !plan.instance_was_running => RecoveryDecision::AwaitingConfirm {
            reason: format!(
                "{destination_name} holds the definition of {name}, which ferry writes only \
                 after every copied disk is verified; it was shut off and stays so"
            ),
        },
        Some(_) => roll_back(format!(
            "{name} was defined on {destination_name} but not started there"
        )),
        None => roll_back(format!(
            "{destination_name} holds no definition of {name} yet"
        )),
    }
}

/// How an interrupted cold migration was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "recovered_as")]
pub enum Recovery {
    /// Nothing was changed: the verified copy waits on the destination for confirm or revert.
    AwaitingConfirm { reason: String },
    /// The destination copy was removed (`leftovers`: what could not be) and the guest started
    /// on its source again if it was running.
    RolledBack {
        reason: String,
        steps: Vec<String>,
        leftovers: Vec<String>,
    },
}

/// Settles a cold migration whose ferry stopped mid-way (killed, crashed, host rebooted), from
/// its plan and what both hosts hold now: see [`recovery_decision`]. Refuses, changing nothing,
/// when a host does not answer or the facts contradict each other; a partial run is safe to
/// run again (the decision is taken afresh from the facts).
pub async fn recover(
    plan: &ColdMigrationPlan,
    rollback_begun: bool,
    timeout: Duration,
) -> Result<Recovery, SettleError> {
    if let Some(resize) = plan.resizes_in_place() {
        return super::in_place::recover(plan, resize, rollback_begun, timeout).await;
    }
    let key = plan.key();
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let source = open(&plan.source, timeout).await?;
    let destination = open(&plan.destination, timeout).await?;
    let unreachable = |host: &String| {
        let host = host.clone();
        move |error| SettleError::Unreachable { host, error }
    };
    let on_source = door::domain_presence(&source, &key, timeout)
        .await
        .map_err(unreachable(source_name))?;
    let on_destination = door::domain_presence(&destination, &key, timeout)
        .await
        .map_err(unreachable(destination_name))?;
    let decision = recovery_decision(
        plan,
        on_source.as_ref(),
        on_destination.as_ref(),
        rollback_begun,
    );
    let (reason, remove_destination_domain, start_on_source) = match decision {
        RecoveryDecision::Refuse { reason } => return Err(SettleError::Refused(reason)),
        RecoveryDecision::AwaitingConfirm { reason } => {
            return Ok(Recovery::AwaitingConfirm { reason })
        }
        RecoveryDecision::RollBack {
            reason,
            remove_destination_domain,
            start_on_source,
        } => (reason, remove_destination_domain, start_on_source),
    };
    let mut done = Vec::new();
    if remove_destination_domain {
        remove_destination_copy(plan, &destination, &mut done, timeout).await?;
    }
    // First the guest, then the disk cleanup, which may have to wait for the destination.
    if start_on_source {
        start_on_source_again(plan, &source, &mut done, timeout).await?;
    }
    let leftovers = delete_destination_volumes(plan, destination, &mut done, timeout).await;
    Ok(Recovery::RolledBack {
        reason,
        steps: done,
        leftovers,
    })
}

/// Deletes every volume the plan creates on the destination, retrying for the plan's cleanup
/// window (a killed ferry's upload keeps its volume busy until libvirt's keep-alive drops the
/// dead connection). Returns what is still there.
///
/// Every one of these volumes is the migration's own: `gather` refuses a plan, and the start
/// (which gathers again on fresh facts before changing anything) refuses to begin, when the
/// destination pool already holds a volume of that name. So none existed there before this
/// migration, and deleting them loses nothing of anyone's.
async fn delete_destination_volumes(
    plan: &ColdMigrationPlan,
    destination: HostConnection,
    done: &mut Vec<String>,
    timeout: Duration,
) -> Vec<String> {
    let destination_name = &plan.destination.name;
    let deadline = Instant::now() + plan.options.destination_cleanup_window;
    let mut volumes_left: Vec<VolumeRef> = plan
        .copied_disks()
        .map(|(_, copy)| copy.destination_volume.clone())
        .collect();
    let mut connection = Some(destination);
    // Why each volume left was not deleted, as last seen; "unreachable" if never reached.
    let mut last_errors: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if let Some(destination) = &connection {
            let mut still_left = Vec::new();
            for volume in volumes_left {
                match destination.delete_volume(&volume, timeout).await {
                    Ok(true) => done.push(format!("{destination_name}: deleted the copy {volume}")),
                    Ok(false) => {}
                    Err(error) => {
                        last_errors.insert(volume.to_string(), error.to_string());
                        still_left.push(volume);
                    }
                }
            }
            volumes_left = still_left;
        }
        if volumes_left.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(CLEANUP_RETRY_PAUSE).await;
        // A fresh connection each retry: the old one may be dead after a network outage.
        connection = door::open(&plan.destination.uri, timeout).await.ok();
    }
    volumes_left
        .iter()
        .map(|volume| {
            let why = last_errors
                .get(&volume.to_string())
                .map_or("unreachable", String::as_str);
            format!("{destination_name}: volume {volume} ({why})")
        })
        .collect()
}
