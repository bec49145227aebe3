//! Resize: a cold migration that also gives the guest a new size (vCPUs, memory), libvirt's
//! counterpart of Nova's resize to another flavor. To another host it is a cold migration whose
//! destination definition carries the new size; revert is the cold revert (the source copy,
//! at its old size, starts again). To its own host (Nova's `allow_resize_to_same_host`) it is a
//! resize in place: nothing is copied, the definition is rewritten once, and the old one is
//! kept in the plan so that a revert (or a rollback, or a recovery) defines it again. At every
//! step the host holds exactly one definition of the guest, and its disks are never touched.
//!
//! This file holds what decides, as plain functions: the operator's new size and its bounds,
//! the checks of a size against a host, and how an interrupted resize in place is settled.
//! [`in_place`](super::in_place) does what they decide, through the door.

use serde::{Deserialize, Serialize};

use super::ColdMigrationPlan;
use crate::libvirt::guest_size::DefinedSize;
use crate::libvirt::lifecycle::DomainPresence;
use crate::model::units::format_bytes;
use crate::precheck::{CheckId, CheckOutcome, CheckResult, PrecheckReport};

/// Most vCPUs a guest may be given: QEMU's x86 machine types stop at 4096 (q35 with x2APIC),
/// and anything above is a typing error.
pub const MAX_VCPUS: u32 = 4096;
/// Least memory a resize gives: below this no guest kernel boots.
pub const MIN_MEMORY_MIB: u64 = 16;
/// Most memory a resize gives (16 TiB): above any host ferry drives, so a typing error.
pub const MAX_MEMORY_MIB: u64 = 16 << 20;

/// The size the operator asks for; what is not given stays as defined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSize {
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
}

impl NewSize {
    pub fn is_empty(&self) -> bool {
        self.vcpus.is_none() && self.memory_mib.is_none()
    }

    /// The size `defined` becomes.
    pub fn applied_to(&self, defined: DefinedSize) -> DefinedSize {
        DefinedSize {
            vcpus: self.vcpus.unwrap_or(defined.vcpus),
            memory_kib: self.memory_mib.map_or(defined.memory_kib, |mib| mib << 10),
        }
    }

    /// Both figures within bounds (what the parsers check, for a size built another way).
    pub fn check(&self) -> Result<(), String> {
        if let Some(vcpus) = self.vcpus {
            check_vcpus(vcpus)?;
        }
        if let Some(memory_mib) = self.memory_mib {
            check_memory_mib(memory_mib)?;
        }
        Ok(())
    }
}

fn check_vcpus(vcpus: u32) -> Result<u32, String> {
    if (1..=MAX_VCPUS).contains(&vcpus) {
        Ok(vcpus)
    } else {
        Err(format!(
            "{vcpus} vCPUs: a guest needs 1 to {MAX_VCPUS} vCPUs"
        ))
    }
}

fn check_memory_mib(memory_mib: u64) -> Result<u64, String> {
    if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&memory_mib) {
        Ok(memory_mib)
    } else {
        Err(format!(
            "{memory_mib} MiB: a guest's memory is {MIN_MEMORY_MIB} MiB to {MAX_MEMORY_MIB} MiB \
             (16 TiB), given in MiB"
        ))
    }
}

/// `--vcpus N`: a whole count from 1 to [`MAX_VCPUS`].
pub fn parse_vcpus(text: &str) -> Result<u32, String> {
    let vcpus = text
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{text:?}: a vCPU count is a whole number, e.g. 2"))?;
    check_vcpus(vcpus)
}

/// `--memory-mib M`: whole MiB from [`MIN_MEMORY_MIB`] to [`MAX_MEMORY_MIB`].
pub fn parse_memory_mib(text: &str) -> Result<u64, String> {
    let memory_mib = text
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{text:?}: memory is a whole number of MiB, e.g. 384"))?;
    check_memory_mib(memory_mib)
}

/// "2 vCPUs, 384 MiB", or only the part given ("384 MiB").
pub fn new_size_words(new_size: &NewSize) -> String {
    let vcpus = new_size
        .vcpus
        .map(|n| format!("{n} vCPU{}", if n == 1 { "" } else { "s" }));
    let memory = new_size.memory_mib.map(|mib| format!("{mib} MiB"));
    [vcpus, memory]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// A resize as planned, kept in the plan (and so in the history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resize {
    pub from: DefinedSize,
    pub to: DefinedSize,
    /// A resize in place: the definition before it, which a revert defines again. None when
    /// the guest moves, since the source then keeps its own definition until confirm.
    pub previous_definition_xml: Option<String>,
}

impl Resize {
    pub fn in_place(&self) -> bool {
        self.previous_definition_xml.is_some()
    }

    /// "1 vCPU, 128 MiB → 2 vCPUs, 384 MiB".
    pub fn describe(&self) -> String {
        format!("{} → {}", size_words(self.from), size_words(self.to))
    }
}

/// "2 vCPUs, 384 MiB".
pub fn size_words(size: DefinedSize) -> String {
    format!(
        "{} vCPU{}, {}",
        size.vcpus,
        if size.vcpus == 1 { "" } else { "s" },
        format_bytes(size.memory_kib << 10)
    )
}

/// Why a resize cannot be planned as asked, before any host is judged: no size given for a
/// resize in place (a cold migration to its own host moves nothing), or a size the guest has
/// already.
pub fn request_problem(
    instance: &str,
    host: &str,
    new_size: Option<&NewSize>,
    from: DefinedSize,
    in_place: bool,
) -> Option<String> {
    match new_size.filter(|n| !n.is_empty()) {
        None if in_place => Some(own_host_refusal(instance, host)),
        None => None,
        Some(new_size) if new_size.applied_to(from) == from => Some(format!(
            "{instance}: already has {}; give another size",
            size_words(from)
        )),
        Some(new_size) => new_size.check().err(),
    }
}

fn own_host_refusal(instance: &str, host: &str) -> String {
    format!(
        "{host}: {instance} already runs on {host}; pick another destination, or give a new \
         size (--vcpus, --memory-mib) to resize it in place"
    )
}

/// A cold migration to the guest's own host without a size stays refused, and the refusal
/// says how to resize in place instead.
pub fn own_host_needs_a_size(report: PrecheckReport, instance: &str, host: &str) -> PrecheckReport {
    let checks = report
        .checks
        .into_iter()
        .map(|check| match check.outcome {
            CheckOutcome::Fail { .. } if check.id == CheckId::DestinationDiffers => CheckResult {
                outcome: CheckOutcome::Fail {
                    reason: own_host_refusal(instance, host),
                },
                ..check
            },
            _ => check,
        })
        .collect();
    PrecheckReport {
        checks,
        plan: report.plan,
    }
}

/// The free memory a resize may use on the destination: for a resize in place, what the
/// guest holds now comes back when it powers off.
pub fn memory_room_bytes(
    destination_free_bytes: Option<u64>,
    in_place: bool,
    guest_running: bool,
    guest_memory_bytes: u64,
) -> Option<u64> {
    let returned = if in_place && guest_running {
        guest_memory_bytes
    } else {
        0
    };
    destination_free_bytes.map(|free| free.saturating_add(returned))
}

/// Why the destination cannot run `to`'s vCPUs, if it cannot: more vCPUs than the host has
/// CPUs (Nova's `cpu_allocation_ratio` aside, a guest wider than its host only runs slower).
pub fn vcpu_problem(destination: &str, to: DefinedSize, cpu_count: Option<u32>) -> Option<String> {
    let cpus = cpu_count?;
    (to.vcpus > cpus).then(|| {
        format!(
            "{destination}: has {cpus} CPUs, the new size asks for {} vCPUs; give at most {cpus}",
            to.vcpus
        )
    })
}

/// The cold report of a resize: a resize in place passes the "destination differs" check (and
/// the disk-room one, as nothing is copied), and
/// the destination's CPU count is checked next to its memory (which the cold checks judged
/// against the new size already).
pub fn resize_checks(
    report: PrecheckReport,
    destination: &str,
    resize: &Resize,
    destination_cpu_count: Option<u32>,
) -> PrecheckReport {
    let mut checks = Vec::new();
    for check in report.checks {
        let id = check.id;
        if id == CheckId::DestinationDiffers && resize.in_place() {
            checks.push(CheckResult {
                id,
                title: "destination is the source: a resize in place",
                outcome: CheckOutcome::Pass,
            });
        } else if id == CheckId::DestinationDisk && resize.in_place() {
            // Not "free disk unknown": nothing needs room.
            checks.push(CheckResult {
                id,
                title: "nothing to copy: the disks stay where they are",
                outcome: CheckOutcome::Pass,
            });
        } else {
            checks.push(check);
        }
        if id == CheckId::DestinationMemory {
            checks.push(CheckResult {
                id: CheckId::DestinationVcpus,
                title: "destination has CPUs for the new size",
                outcome: match (
                    destination_cpu_count,
                    vcpu_problem(destination, resize.to, destination_cpu_count),
                ) {
                    (None, _) => CheckOutcome::Warn {
                        reason: format!(
                            "{destination}: CPU count unknown; the new size asks for {} vCPUs",
                            resize.to.vcpus
                        ),
                    },
                    (Some(_), Some(reason)) => CheckOutcome::Fail { reason },
                    (Some(_), None) => CheckOutcome::Pass,
                },
            });
        }
    }
    PrecheckReport {
        checks,
        plan: report.plan,
    }
}

/// What recovering an interrupted resize in place should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InPlaceRecovery {
    /// The new definition is in place (and running, if the guest ran): the operator confirms
    /// or reverts.
    AwaitingConfirm {
        reason: String,
    },
    /// Back to the old size: stop the guest hard if it runs at the new one, define the old
    /// definition again, start it if it ran.
    RollBack {
        reason: String,
        stop_first: bool,
        define_old: bool,
        start: bool,
    },
    Refuse {
        reason: String,
    },
}

/// How a resize in place whose ferry died is settled, from the plan, what the host holds now
/// (`presence`, and the size its definition gives) and whether the dead ferry had begun
/// rolling back. The forward path defines the new size only after the guest is off and starts
/// it only after that, so a running guest at the new size is a finished resize.
pub fn in_place_recovery(
    plan: &ColdMigrationPlan,
    resize: &Resize,
    presence: Option<&DomainPresence>,
    defined: Option<DefinedSize>,
    rollback_begun: bool,
) -> InPlaceRecovery {
    let (name, host) = (&plan.instance_name, &plan.source.name);
    let refuse = |reason: String| InPlaceRecovery::Refuse { reason };
    let (Some(presence), Some(defined)) = (presence, defined) else {
        return refuse(format!(
            "{host}: holds no {name} (UUID {}) any more; ferry will not guess what happened. \
             Its old definition is in `ferry history --json` (plan.resize)",
            plan.instance_uuid
        ));
    };
    if !presence.persistent {
        return refuse(format!(
            "{host}: {name} runs with no persistent definition, which ferry never leaves; \
             check it with virsh"
        ));
    }
    let at_new = defined == resize.to;
    if defined != resize.from && !at_new {
        return refuse(format!(
            "{host}: {name} is defined with {}, neither the old nor the new size; it was \
             changed by hand since. Settle it with virsh",
            size_words(defined)
        ));
    }
    let start = plan.instance_was_running;
    let roll_back = |reason: String| InPlaceRecovery::RollBack {
        reason,
        // Stopped only when running at the new size: at the old size it is the guest as it was.
        stop_first: presence.active && at_new,
        define_old: at_new,
        // Not when it runs at its old size already: that is the guest as it was.
        start: start && (at_new || !presence.active),
    };
    if rollback_begun {
        return roll_back("it had begun rolling back".into());
    }
    if !at_new {
        return roll_back(format!("{name} still has its old size"));
    }
    if presence.active {
        return InPlaceRecovery::AwaitingConfirm {
            reason: format!("{name} runs at its new size {}", size_words(resize.to)),
        };
    }
    if !plan.instance_was_running {
        return InPlaceRecovery::AwaitingConfirm {
            reason: format!(
                "{name} is defined at its new size {}; it was shut off and stays so",
                size_words(resize.to)
            ),
        };
    }
    roll_back(format!(
        "{name} was defined at its new size but not started again"
    ))
}

#[cfg(test)]
#[path = "resize_tests.rs"]
mod tests;
