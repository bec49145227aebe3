//! A resize in place, through the door: the forward path and its rollback (as part of the run),
//! confirm, revert and the recovery of an interrupted one. The guest's host is both the
//! source and the destination, so none of the cold migration's "remove the other copy" steps
//! may run: there is one domain, its definition is rewritten (libvirt replaces a persistent
//! definition of the same UUID at once, so the host never holds none or two), and its disks
//! are never touched. Going back defines the old definition, which the plan keeps.
//!
//! What to do is decided by [`in_place_recovery`] from what the host holds now, so a rollback,
//! a revert run again after a partial one and a recovery all act on the facts, not on a guess.

use std::time::{Duration, Instant};

use super::door;
use super::recover::Recovery;
use super::resize::{in_place_recovery, size_words, InPlaceRecovery, Resize};
use super::run::{Run, Stop};
use super::settle::{open, SettleError, SettleReport};
use super::{ColdMigrationPlan, ColdOutcome, ColdPhase};
use crate::libvirt::guest_size::{defined_size, edit_guest_size, DefinedSize};
use crate::libvirt::lifecycle::DomainPresence;
use crate::libvirt::{HostConnection, LibvirtError};

/// The definition at `resize.to`, rewriting only what changes (an untouched `<vcpu current>`
/// stays as it was).
pub(super) fn edit_to_size(xml: &str, resize: &Resize) -> Result<String, String> {
    let (from, to) = (resize.from, resize.to);
    edit_guest_size(
        xml,
        (to.vcpus != from.vcpus).then_some(to.vcpus),
        (to.memory_kib != from.memory_kib).then_some(to.memory_kib),
    )
}

/// What the host holds of the guest now: its presence and, when there, the size its
/// persistent definition gives.
async fn host_holds(
    connection: &HostConnection,
    plan: &ColdMigrationPlan,
    timeout: Duration,
) -> Result<(Option<DomainPresence>, Option<DefinedSize>), LibvirtError> {
    let key = plan.key();
    let Some(presence) = door::domain_presence(connection, &key, timeout).await? else {
        return Ok((None, None));
    };
    let xml = door::domain_definition_xml(connection, &key, timeout).await?;
    let defined = defined_size(&xml).map_err(|message| LibvirtError::Call {
        context: format!(
            "{}: the definition of {}",
            plan.source.name, plan.instance_name
        ),
        message,
    })?;
    Ok((Some(presence), Some(defined)))
}

/// The guest's host, and what it holds of the guest: confirm, revert and recovery start here.
async fn open_host(
    plan: &ColdMigrationPlan,
    timeout: Duration,
) -> Result<(HostConnection, Option<DomainPresence>, Option<DefinedSize>), SettleError> {
    let connection = open(&plan.source, timeout).await?;
    let (presence, defined) = host_holds(&connection, plan, timeout)
        .await
        .map_err(|error| SettleError::Unreachable {
            host: plan.source.name.clone(),
            error,
        })?;
    Ok((connection, presence, defined))
}

/// [`back_to_old_size`] for revert and recovery: the steps done, or where it
/// stopped.
async fn settle_to_old_size(
    connection: &HostConnection,
    plan: &ColdMigrationPlan,
    resize: &Resize,
    steps: (bool, bool, bool),
    timeout: Duration,
) -> Result<Vec<String>, SettleError> {
    let mut done = Vec::new();
    back_to_old_size(connection, plan, resize, steps, &mut done, timeout)
        .await
        .map_err(|error| SettleError::Partial {
            done: done.clone(),
            error,
        })?;
    Ok(done)
}

/// Back to the old size, as decided: stop the guest hard, define the old definition, start
/// it; each step done is noted in `done`.
async fn back_to_old_size(
    connection: &HostConnection,
    plan: &ColdMigrationPlan,
    resize: &Resize,
    (stop_first, define_old, start): (bool, bool, bool),
    done: &mut Vec<String>,
    timeout: Duration,
) -> Result<(), LibvirtError> {
    let (host, name, key) = (&plan.source.name, &plan.instance_name, plan.key());
    if stop_first {
        door::power_off(connection, &key, timeout).await?;
        done.push(format!("{host}: stopped {name}, running at its new size"));
    }
    if define_old {
        let xml = resize
            .previous_definition_xml
            .as_deref()
            .expect("a resize in place keeps the old definition");
        let defined = door::define_domain(connection, xml, timeout).await?;
        if defined.uuid != plan.instance_uuid {
            // Cannot happen for a definition of the same name and UUID; said loudly if it did.
            return Err(LibvirtError::Call {
                context: format!("{host}: defining {name} again"),
                message: format!("libvirt defined UUID {} instead", defined.uuid),
            });
        }
        done.push(format!(
            "{host}: defined {name} again at its old size ({})",
            size_words(resize.from)
        ));
    }
    if start {
        door::start_domain(connection, &key, timeout).await?;
        done.push(format!("{host}: started {name} again"));
    }
    Ok(())
}

impl Run<'_> {
    /// Power off, define the new size over the old definition, start it if it ran.
    pub(super) async fn resize_in_place(
        &mut self,
        resize: &Resize,
        definition_xml: &str,
    ) -> Result<ColdOutcome, Stop> {
        let plan = self.plan;
        let (timeout, key, host) = (plan.call_timeout, plan.key(), &plan.source.name);
        let mut shutdown_started = None;
        if plan.instance_was_running {
            shutdown_started = Some(Instant::now());
            self.power_off().await?;
        }
        if self.aborted() {
            return Err(Stop::RollBack("aborted by the operator".into()));
        }
        self.phase(ColdPhase::Defining);
        let xml = edit_to_size(definition_xml, resize)
            .map_err(|e| Stop::RollBack(format!("{}: {e}", plan.instance_name)))?;
        // Marked before the call: a define that timed out may still have happened.
        self.changes.defined_on_destination = true;
        door::define_domain(&self.source, &xml, timeout)
            .await
            .map_err(|e| {
                Stop::RollBack(format!(
                    "{host}: defining {} at {} failed: {e}",
                    plan.instance_name,
                    size_words(resize.to)
                ))
            })?;
        if self.aborted() {
            return Err(Stop::RollBack("aborted by the operator".into()));
        }
        let mut downtime_ms = None;
        if plan.instance_was_running {
            self.phase(ColdPhase::Starting);
            self.changes.started_on_destination = true;
            door::start_domain(&self.source, &key, timeout)
                .await
                .map_err(|e| {
                    Stop::RollBack(format!(
                        "{host}: starting {} at {} failed: {e}",
                        plan.instance_name,
                        size_words(resize.to)
                    ))
                })?;
            downtime_ms = shutdown_started.map(|t| t.elapsed().as_millis() as u64);
        }
        Ok(ColdOutcome::AwaitingConfirm {
            total_time_ms: self.elapsed_ms(),
            downtime_ms,
            bytes_copied: 0,
            disks: Vec::new(),
        })
    }

    /// Puts the guest back at its old size (and running, if it ran), from what the host holds
    /// now.
    pub(super) async fn roll_back_in_place(
        &mut self,
        resize: &Resize,
        reason: String,
    ) -> ColdOutcome {
        let plan = self.plan;
        let (timeout, host) = (plan.call_timeout, &plan.source.name);
        let source = self.source.clone();
        let failed = |detail: String| ColdOutcome::Failed {
            detail: format!(
                "{reason}; then {detail}. Its disks are untouched; its old definition is in \
                 `ferry history --json` (plan.resize.previous_definition_xml)"
            ),
        };
        let (presence, defined) = match host_holds(&source, plan, timeout).await {
            Ok(found) => found,
            Err(error) => {
                return failed(format!("reading {} on {host}: {error}", plan.instance_name))
            }
        };
        let steps = match in_place_recovery(plan, resize, presence.as_ref(), defined, true) {
            InPlaceRecovery::RollBack {
                stop_first,
                define_old,
                start,
                ..
            } => (stop_first, define_old, start && self.changes.powered_off),
            InPlaceRecovery::Refuse { reason } | InPlaceRecovery::AwaitingConfirm { reason } => {
                return failed(reason)
            }
        };
        let mut done = Vec::new();
        let result = back_to_old_size(&source, plan, resize, steps, &mut done, timeout).await;
        for step in done {
            self.step(step);
        }
        match result {
            Ok(()) => ColdOutcome::RolledBack {
                detail: reason,
                leftovers: Vec::new(),
            },
            Err(error) => failed(format!("putting back its old size failed: {error}")),
        }
    }
}

/// Confirm of a resize in place: the new size is kept and the old definition forgotten; the
/// host is only asked that it holds the guest at its new size.
pub(super) async fn confirm(
    plan: &ColdMigrationPlan,
    resize: &Resize,
    timeout: Duration,
) -> Result<SettleReport, SettleError> {
    let (host, name) = (&plan.source.name, &plan.instance_name);
    let (_, presence, defined) = open_host(plan, timeout).await?;
    match (presence, defined) {
        (Some(_), Some(defined)) if defined == resize.to => Ok(SettleReport {
            steps: vec![format!(
                "{host}: {name} keeps its new size ({}); its old definition ({}) is forgotten",
                size_words(resize.to),
                size_words(resize.from)
            )],
        }),
        (Some(_), Some(defined)) => Err(SettleError::Refused(format!(
            "{host}: {name} is defined with {}, not its new size {}; check it, or revert",
            size_words(defined),
            size_words(resize.to)
        ))),
        _ => Err(SettleError::Refused(format!(
            "{host}: holds no {name} (UUID {}); nothing to confirm",
            plan.instance_uuid
        ))),
    }
}

/// Revert of a resize in place: stop the guest hard if it runs at its new size, define its
/// old definition, start it if it ran before. Safe to run again after a partial run: each
/// step is chosen from what the host holds.
pub(super) async fn revert(
    plan: &ColdMigrationPlan,
    resize: &Resize,
    timeout: Duration,
) -> Result<SettleReport, SettleError> {
    let (connection, presence, defined) = open_host(plan, timeout).await?;
    let steps = match in_place_recovery(plan, resize, presence.as_ref(), defined, true) {
        InPlaceRecovery::RollBack {
            stop_first,
            define_old,
            start,
            ..
        } => (stop_first, define_old, start),
        InPlaceRecovery::Refuse { reason } | InPlaceRecovery::AwaitingConfirm { reason } => {
            return Err(SettleError::Refused(reason))
        }
    };
    let steps = settle_to_old_size(&connection, plan, resize, steps, timeout).await?;
    Ok(SettleReport { steps })
}

/// Recovery of a resize in place whose ferry died: kept as awaiting confirm, or put back at
/// its old size, as [`in_place_recovery`] decides.
pub(super) async fn recover(
    plan: &ColdMigrationPlan,
    resize: &Resize,
    rollback_begun: bool,
    timeout: Duration,
) -> Result<Recovery, SettleError> {
    let (connection, presence, defined) = open_host(plan, timeout).await?;
    match in_place_recovery(plan, resize, presence.as_ref(), defined, rollback_begun) {
        InPlaceRecovery::Refuse { reason } => Err(SettleError::Refused(reason)),
        InPlaceRecovery::AwaitingConfirm { reason } => Ok(Recovery::AwaitingConfirm { reason }),
        InPlaceRecovery::RollBack {
            reason,
            stop_first,
            define_old,
            start,
        } => {
            let steps = (stop_first, define_old, start);
            let steps = settle_to_old_size(&connection, plan, resize, steps, timeout).await?;
            Ok(Recovery::RolledBack {
                reason,
                steps,
                leftovers: Vec::new(),
            })
        }
    }
}
