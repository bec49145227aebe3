//! One live migration, start to outcome: launch (peer-to-peer, on a worker), monitor (job
//! statistics every poll interval into the progress model), the policy's decisions, the
//! operator's abort / force-complete / bandwidth / downtime commands, then the outcome check
//! and rollback. Follows Nova's libvirt driver (`_live_migration_operation`,
//! `_live_migration_monitor`) and `migration.py`, with every decision reported as an update.
//!
//! Everything here runs on dedicated threads: libvirt calls block.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;
use virt::domain::{Domain, MigrateParameters};

use crate::libvirt::job_stats;
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::job::JobSample;
use crate::policy::{MigrationPolicy, PolicyAction, PolicyChoice, PolicyEvent};
use crate::progress::{
    EngineEvent, MigrationPhase, MigrationProgress, ProgressConfig, ProgressModel,
};

/// One end of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostTarget {
    pub name: String,
    pub uri: String,
}

/// What the operator asked for, after prechecks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveMigrationPlan {
    pub instance_name: String,
    pub source: HostTarget,
    pub destination: HostTarget,
    #[serde(skip)]
    pub policy: PolicyChoice,
    /// Memory of the guest, for Nova's data_gb scaling of steps and timeouts.
    pub instance_memory_bytes: u64,
    pub bandwidth_mib_per_second: Option<u64>,
    /// Start with `VIR_MIGRATE_POSTCOPY` so that force-complete or the policy may switch to
    /// post-copy. Off by default: a network failure in post-copy loses the guest.
    pub post_copy_permitted: bool,
    /// Copy these local disks (target names such as `vdb`) with `NON_SHARED_INC`.
    pub block_migration_disks: Vec<String>,
    pub block_migration_disk_sizes_bytes: Vec<u64>,
    pub poll_interval: Duration,
    /// Bound on each monitoring call; a host that stops answering fails that poll, not the UI.
    pub call_timeout: Duration,
}

impl LiveMigrationPlan {
    pub fn flags(&self, policy: &dyn MigrationPolicy) -> u32 {
        let features = policy.migration_features();
        let mut flags = virt::sys::VIR_MIGRATE_LIVE
            | virt::sys::VIR_MIGRATE_PEER2PEER
            | virt::sys::VIR_MIGRATE_PERSIST_DEST
            | virt::sys::VIR_MIGRATE_UNDEFINE_SOURCE;
        if features.auto_converge {
            flags |= virt::sys::VIR_MIGRATE_AUTO_CONVERGE;
        }
        if self.post_copy_permitted {
            flags |= virt::sys::VIR_MIGRATE_POSTCOPY;
        }
        if !self.block_migration_disks.is_empty() {
            flags |= virt::sys::VIR_MIGRATE_NON_SHARED_INC;
        }
        flags
    }
}

/// What an operator can do to a running migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCommand {
    Abort,
    ForceComplete,
    SetBandwidth { mib_per_second: u64 },
    SetMaxDowntime { downtime_ms: u64 },
}

/// How the migration ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum LiveOutcome {
    /// Runs on the destination, gone from the source.
    Completed {
        downtime_ms: Option<u64>,
        total_time_ms: u64,
        data_transferred_bytes: Option<u64>,
    },
    /// Aborted (by the operator or the policy): runs on the source, nothing on the destination.
    Cancelled { detail: String },
    /// Failed: rolled back to the source where the guest still was.
    Failed { detail: String },
}

/// What the engine reports, in order, to whoever watches (TUI, CLI, tests, history).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "update")]
pub enum MigrationUpdate {
    Started {
        flags: u32,
        policy: String,
    },
    /// The raw job statistics of one poll (what traces record).
    Sample(Box<JobSample>),
    Progress(Box<MigrationProgress>),
    Policy(PolicyEvent),
    /// An operator command carried out, with what was done.
    OperatorAction {
        description: String,
    },
    /// An operator command refused, with the reason.
    Refused {
        reason: String,
    },
    /// A recoverable problem (a poll that timed out, a setting libvirt refused).
    Warning {
        message: String,
    },
    Finished(LiveOutcome),
}

pub struct LiveMigrationHandle {
    pub commands: Sender<OperatorCommand>,
    pub updates: Receiver<MigrationUpdate>,
    pub thread: JoinHandle<LiveOutcome>,
}

/// Starts the migration on its own threads and returns at once.
pub fn start(plan: LiveMigrationPlan) -> LiveMigrationHandle {
    let (command_tx, command_rx) = mpsc::channel();
    let (update_tx, update_rx) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(format!("migrate-{}", plan.instance_name))
        .spawn(move || {
            let outcome = run(&plan, &command_rx, &update_tx);
            let _ = update_tx.send(MigrationUpdate::Finished(outcome.clone()));
            outcome
        })
        .expect("spawn migration thread");
    LiveMigrationHandle {
        commands: command_tx,
        updates: update_rx,
        thread,
    }
}

/// Runs `what` against the named domain on `connection`, on a worker, within the plan's timeout.
fn on_domain<T: Send + 'static>(
    connection: &HostConnection,
    instance: &str,
    timeout: Duration,
    what: &str,
    call: impl FnOnce(&Domain) -> Result<T, LibvirtError> + Send + 'static,
) -> Result<T, LibvirtError> {
    let instance = instance.to_string();
    connection.call(format!("{what} ({instance})"), timeout, move |connect| {
        let domain = connect
            .lookup_domain_by_name(&instance)
            .map_err(|e| LibvirtError::call(format!("looking up {instance}"), e))?;
        call(&domain)
    })
}

struct Monitor<'a> {
    plan: &'a LiveMigrationPlan,
    updates: &'a Sender<MigrationUpdate>,
    source: HostConnection,
    progress: ProgressModel,
    policy: Box<dyn MigrationPolicy + Send>,
    started: Instant,
    in_post_copy: bool,
    paused_by_ferry: bool,
    abort_requested: Option<String>,
}

impl Monitor<'_> {
    fn send(&self, update: MigrationUpdate) {
        let _ = self.updates.send(update);
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn on_domain<T: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce(&Domain) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        on_domain(
            &self.source,
            &self.plan.instance_name,
            self.plan.call_timeout,
            what,
            call,
        )
    }

    fn poll(&mut self) {
        let sample = self.on_domain("reading job statistics", |d| job_stats::job_stats(d, false));
        match sample {
            Ok(Some(mut sample)) => {
                sample.sampled_at_ms = self.elapsed_ms();
                self.send(MigrationUpdate::Sample(Box::new(sample.clone())));
                let snapshot = self.progress.on_sample(sample);
                self.in_post_copy |= snapshot.phase == MigrationPhase::PostCopy;
                let decisions = self.policy.on_sample(&snapshot);
                self.send(MigrationUpdate::Progress(Box::new(snapshot)));
                for decision in decisions {
                    self.apply_policy(decision);
                }
            }
            Ok(None) => {}
            Err(error) => self.send(MigrationUpdate::Warning {
                message: error.to_string(),
            }),
        }
    }

    fn apply_policy(&mut self, decision: PolicyEvent) {
        let result = match decision.action {
            PolicyAction::SetMaxDowntime { to_ms, .. } => self
                .on_domain("setting max downtime", move |d| {
                    job_stats::set_max_downtime_ms(d, to_ms)
                }),
            // Taken at start through the migration flags (see LiveMigrationPlan::flags).
            PolicyAction::EnableAutoConverge => Ok(()),
            PolicyAction::StartPostCopy if !self.plan.post_copy_permitted => {
                Err(LibvirtError::Call {
                    context: "policy".into(),
                    message: "post-copy is not permitted for this migration".into(),
                })
            }
            PolicyAction::StartPostCopy => self.start_post_copy(),
            PolicyAction::Pause => self.pause(),
            PolicyAction::Abort => {
                self.abort_requested = Some(decision.reason.clone());
                self.on_domain("aborting", job_stats::abort_job)
            }
        };
        let failed = result.err();
        self.send(MigrationUpdate::Policy(decision));
        if let Some(error) = failed {
            self.send(MigrationUpdate::Warning {
                message: format!("policy action not carried out: {error}"),
            });
        }
    }

    fn start_post_copy(&mut self) -> Result<(), LibvirtError> {
        self.on_domain("switching to post-copy", job_stats::start_post_copy)?;
        self.in_post_copy = true;
        self.progress.on_event(EngineEvent::PostCopyStarted);
        Ok(())
    }

    fn pause(&mut self) -> Result<(), LibvirtError> {
        self.on_domain("pausing the guest", |d| {
            d.suspend()
                .map(|_| ())
                .map_err(|e| LibvirtError::call("pausing the guest", e))
        })?;
        self.paused_by_ferry = true;
        Ok(())
    }

    fn operator(&mut self, command: OperatorCommand) {
        let result = match command {
            OperatorCommand::Abort if self.in_post_copy => {
                self.send(MigrationUpdate::Refused {
                    reason: "abort refused: the migration is in post-copy, the guest already runs \
                             on the destination and its memory is split between both hosts; \
                             it can only finish"
                        .into(),
                });
                return;
            }
            OperatorCommand::Abort => {
                self.abort_requested = Some("aborted by the operator".into());
                self.on_domain("aborting", job_stats::abort_job)
                    .map(|_| "abort requested: the guest stays on the source".to_string())
            }
            OperatorCommand::ForceComplete if self.in_post_copy => {
                self.send(MigrationUpdate::Refused {
                    reason: "force-complete: already in post-copy, the migration is finishing"
                        .into(),
                });
                return;
            }
            OperatorCommand::ForceComplete if self.plan.post_copy_permitted => self
                .start_post_copy()
                .map(|_| "force-complete: switched to post-copy".to_string()),
            OperatorCommand::ForceComplete if self.paused_by_ferry => {
                self.send(MigrationUpdate::Refused {
                    reason: "force-complete: the guest is already paused to converge".into(),
                });
                return;
            }
            OperatorCommand::ForceComplete => self.pause().map(|_| {
                "force-complete: guest paused so the remaining memory stops changing; \
                 it resumes wherever the migration ends"
                    .to_string()
            }),
            OperatorCommand::SetBandwidth { mib_per_second } => {
                let post_copy = self.in_post_copy;
                self.on_domain("setting bandwidth", move |d| {
                    job_stats::set_max_speed_mib_per_second(d, mib_per_second, post_copy)
                })
                .map(|_| format!("bandwidth set to {mib_per_second} MiB/s"))
            }
            OperatorCommand::SetMaxDowntime { downtime_ms } => self
                .on_domain("setting max downtime", move |d| {
                    job_stats::set_max_downtime_ms(d, downtime_ms)
                })
                .map(|_| format!("max downtime set to {downtime_ms} ms")),
        };
        match result {
            Ok(description) => self.send(MigrationUpdate::OperatorAction { description }),
            Err(error) => self.send(MigrationUpdate::Refused {
                reason: error.to_string(),
            }),
        }
    }
}

fn run(
    plan: &LiveMigrationPlan,
    commands: &Receiver<OperatorCommand>,
    updates: &Sender<MigrationUpdate>,
) -> LiveOutcome {
    let started = Instant::now();
    let fail = |detail: String| LiveOutcome::Failed { detail };
    let source = match HostConnection::open(&plan.source.uri, plan.call_timeout) {
        Ok(c) => c,
        Err(e) => return fail(format!("source {}: {e}", plan.source.name)),
    };
    // The migrate call blocks for the whole migration: it gets a connection of its own so the
    // monitor's polls never queue behind it.
    let launcher = match HostConnection::open(&plan.source.uri, plan.call_timeout) {
        Ok(c) => c,
        Err(e) => return fail(format!("source {}: {e}", plan.source.name)),
    };
    let copied_disks = plan.block_migration_disk_sizes_bytes.clone();
    let data_gib = crate::policy::nova::data_gib(plan.instance_memory_bytes, &copied_disks);
    let mut monitor = Monitor {
        plan,
        updates,
        source,
        progress: ProgressModel::new(ProgressConfig::default()),
        policy: plan.policy.build(data_gib),
        started,
        in_post_copy: false,
        paused_by_ferry: false,
        abort_requested: None,
    };
    let flags = plan.flags(monitor.policy.as_ref());
    monitor.send(MigrationUpdate::Started {
        flags,
        policy: monitor.policy.name().to_string(),
    });
    let start_decisions = monitor.policy.on_start();

    let (migrate_tx, migrate_rx) = mpsc::channel();
    let parameters = MigrateParameters {
        bandwidth: plan.bandwidth_mib_per_second,
        migrate_disks: plan.block_migration_disks.clone(),
        ..Default::default()
    };
    let destination_uri = plan.destination.uri.clone();
    let instance = plan.instance_name.clone();
    let context = format!(
        "live migration of {} from {} to {}",
        plan.instance_name, plan.source.name, plan.destination.name
    );
    // The migration runs as long as it needs: no timeout on this call; the policy's completion
    // timeout and the operator decide when it has run too long.
    thread::Builder::new()
        .name(format!("migrate-call-{instance}"))
        .spawn(move || {
            let result = launcher.call(context.clone(), Duration::MAX, move |connect| {
                let domain = connect
                    .lookup_domain_by_name(&instance)
                    .map_err(|e| LibvirtError::call(format!("looking up {instance}"), e))?;
                domain
                    .migrate_to_uri3(Some(&destination_uri), parameters, flags)
                    .map_err(|e| LibvirtError::call(context, e))
            });
            let _ = migrate_tx.send(result);
        })
        .expect("spawn migrate call thread");
    monitor.progress.on_event(EngineEvent::MigrationStarted);

    let mut start_decisions = Some(start_decisions);
    let migrate_result = loop {
        match migrate_rx.recv_timeout(plan.poll_interval) {
            Ok(result) => break result,
            Err(RecvTimeoutError::Disconnected) => {
                break Err(LibvirtError::Call {
                    context: "migration".into(),
                    message: "the migrate call ended without a result".into(),
                })
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        monitor.poll();
        // Start-time decisions (initial max downtime) apply once the job exists.
        if monitor.progress.phase() != MigrationPhase::Preparing || monitor.elapsed_ms() > 2_000 {
            for decision in start_decisions.take().unwrap_or_default() {
                monitor.apply_policy(decision);
            }
        }
        while let Ok(command) = commands.try_recv() {
            monitor.operator(command);
        }
    };
    while let Ok(command) = commands.try_recv() {
        // Commands that arrived as the migrate call returned: answer them, do nothing.
        monitor.send(MigrationUpdate::Refused {
            reason: format!("{command:?}: the migration has already ended"),
        });
    }
    finish(&mut monitor, migrate_result)
}

/// Checks where the guest really is, and rolls back if the migration did not move it.
fn finish(monitor: &mut Monitor, migrate_result: Result<(), LibvirtError>) -> LiveOutcome {
    let plan = monitor.plan;
    let total_time_ms = monitor.elapsed_ms();
    let destination = HostConnection::open(&plan.destination.uri, plan.call_timeout);
    let instance = plan.instance_name.clone();
    let state_on = |connection: &HostConnection| {
        on_domain(
            connection,
            &instance,
            plan.call_timeout,
            "reading state",
            |d| {
                d.is_active()
                    .map_err(|e| LibvirtError::call("reading state", e))
            },
        )
    };
    let on_source = state_on(&monitor.source);
    let on_destination = destination.as_ref().map(state_on);
    let destination_running = matches!(on_destination, Ok(Ok(true)));
    let source_defined = on_source.is_ok();

    if migrate_result.is_ok() && destination_running && !source_defined {
        let destination = destination.expect("destination answered");
        // Nova's force-complete without post-copy pauses the guest: it resumes where it ends.
        let _ = on_domain(
            &destination,
            &instance,
            plan.call_timeout,
            "resuming",
            resume_if_paused,
        );
        let final_job = on_domain(
            &destination,
            &instance,
            plan.call_timeout,
            "reading the completed job",
            |d| job_stats::job_stats(d, true),
        )
        .ok()
        .flatten();
        monitor.progress.on_event(EngineEvent::Completed);
        if let Some(mut sample) = final_job.clone() {
            sample.sampled_at_ms = total_time_ms;
            let snapshot = monitor.progress.on_sample(sample);
            monitor.send(MigrationUpdate::Progress(Box::new(snapshot)));
        }
        return LiveOutcome::Completed {
            downtime_ms: final_job.as_ref().and_then(|j| j.real_downtime_ms),
            total_time_ms,
            data_transferred_bytes: final_job.and_then(|j| j.data_processed_bytes),
        };
    }

    // Not on the destination alone: if the source still holds the guest, it stays there,
    // running, and any copy on the destination is a leftover. If the source lost it but the
    // destination runs it (post-copy), the guest is there and nothing is removed.
    let detail = match (&migrate_result, &monitor.abort_requested) {
        (_, Some(reason)) => reason.clone(),
        (Err(error), None) => error.to_string(),
        (Ok(()), None) => "libvirt reported success but the guest is not running on the \
                           destination alone"
            .to_string(),
    };
    if source_defined {
        let _ = on_domain(
            &monitor.source,
            &instance,
            plan.call_timeout,
            "resuming on the source",
            resume_if_paused,
        );
        if let Ok(destination) = &destination {
            let leftover = on_domain(
                destination,
                &instance,
                plan.call_timeout,
                "removing the leftover on the destination",
                remove_leftover,
            );
            if let Ok(Some(what)) = leftover {
                monitor.send(MigrationUpdate::Warning {
                    message: format!("rollback: {what} on {}", plan.destination.name),
                });
            }
        }
    }
    if monitor.abort_requested.is_some() {
        monitor.progress.on_event(EngineEvent::Cancelled);
        LiveOutcome::Cancelled { detail }
    } else {
        monitor.progress.on_event(EngineEvent::Failed {
            message: detail.clone(),
        });
        LiveOutcome::Failed { detail }
    }
}

fn resume_if_paused(domain: &Domain) -> Result<(), LibvirtError> {
    let (state, _) = domain
        .state()
        .map_err(|e| LibvirtError::call("reading state", e))?;
    if state.unwrap_or(virt::domain::DomainState::NoState) == virt::domain::DomainState::Paused {
        domain
            .resume()
            .map(|_| ())
            .map_err(|e| LibvirtError::call("resuming", e))?;
    }
    Ok(())
}

/// A copy on the destination while the source still holds the guest is a leftover of the
/// failed attempt: stop it and remove its definition. Only ever called in that situation.
fn remove_leftover(domain: &Domain) -> Result<Option<String>, LibvirtError> {
    let mut removed = Vec::new();
    if domain.is_active().unwrap_or(false) {
        domain
            .destroy()
            .map_err(|e| LibvirtError::call("stopping the leftover", e))?;
        removed.push("stopped");
    }
    if domain.is_persistent().unwrap_or(false) {
        domain
            .undefine()
            .map_err(|e| LibvirtError::call("removing the leftover definition", e))?;
        removed.push("undefined");
    }
    Ok((!removed.is_empty()).then(|| format!("leftover copy {}", removed.join(" and "))))
}
