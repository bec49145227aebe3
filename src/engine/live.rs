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

use serde::{Deserialize, Serialize};
use virt::domain::{Domain, MigrateParameters};
use virt::error::ErrorNumber;

use crate::libvirt::job_stats;
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::job::{JobSample, JobType};
use crate::policy::{MigrationPolicy, PolicyAction, PolicyChoice, PolicyEvent};
use crate::progress::{
    EngineEvent, MigrationPhase, MigrationProgress, ProgressConfig, ProgressModel,
};

/// One end of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTarget {
    pub name: String,
    pub uri: String,
}

impl HostTarget {
    /// The host as the config names it, with its URI; None for a host the config lacks.
    pub fn from_config(config: &crate::config::Config, name: &str) -> Option<HostTarget> {
        config
            .hosts
            .iter()
            .find(|h| h.name.as_str() == name)
            .map(|h| HostTarget {
                name: name.to_string(),
                uri: h.uri.clone(),
            })
    }
}

/// What the operator asked for, after prechecks. Kept in the history as JSON, so that a
/// restarted ferry can resume monitoring the migration under the same policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveMigrationPlan {
    pub instance_name: String,
    pub source: HostTarget,
    pub destination: HostTarget,
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
    /// The guest was paused before the migration: it stays paused wherever it ends. Otherwise
    /// ferry resumes it at the end, in case a force-complete paused it.
    #[serde(default)]
    pub guest_was_paused: bool,
    #[serde(rename = "poll_interval_ms", with = "duration_ms")]
    pub poll_interval: Duration,
    /// Bound on each monitoring call; a host that stops answering fails that poll, not the UI.
    #[serde(rename = "call_timeout_ms", with = "duration_ms")]
    pub call_timeout: Duration,
}

/// Durations in the stored plan are whole milliseconds, readable in `ferry history --json`.
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OperatorCommand {
    Abort,
    ForceComplete,
    SetBandwidth { mib_per_second: u64 },
    SetMaxDowntime { downtime_ms: u64 },
}

/// The engine's answer to one operator command: what was done, or why it was refused.
pub type CommandReply = Result<String, String>;

/// What reaches the migration thread: an operator command (with somewhere to send the answer,
/// for callers in another process), or the blocking migrate call returning.
enum Inbox {
    Command {
        command: OperatorCommand,
        reply: Option<Sender<CommandReply>>,
    },
    MigrateReturned(Result<(), LibvirtError>),
}

/// Sends operator commands to one running migration. Cheap to clone: the TUI, the CLI and the
/// control socket each hold one.
#[derive(Clone)]
pub struct CommandSender {
    inbox: Sender<Inbox>,
}

/// The migration has already ended: nobody is left to carry out the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the migration has already ended")]
pub struct MigrationEnded;

impl CommandSender {
    /// Queues a command; its result arrives as an `OperatorAction` or `Refused` update.
    pub fn send(&self, command: OperatorCommand) -> Result<(), MigrationEnded> {
        self.inbox
            .send(Inbox::Command {
                command,
                reply: None,
            })
            .map_err(|_| MigrationEnded)
    }

    /// Sends a command and waits up to `timeout` for the engine's answer.
    pub fn request(&self, command: OperatorCommand, timeout: Duration) -> CommandReply {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.inbox
            .send(Inbox::Command {
                command,
                reply: Some(reply_tx),
            })
            .map_err(|_| MigrationEnded.to_string())?;
        reply_rx.recv_timeout(timeout).unwrap_or_else(|_| {
            Err(format!(
                "no answer from the migration within {} s; it may have just ended",
                timeout.as_secs()
            ))
        })
    }
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
    /// ferry took over a migration but could not learn how it ends (the source did not
    /// answer): the history keeps it unfinished for the next `ferry resume`.
    Unknown { detail: String },
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
    /// A restarted ferry took over monitoring a migration already under way in libvirt.
    Attached {
        /// How long the job had been running, by libvirt's clock.
        job_elapsed_ms: u64,
        /// The max downtime in force when ferry took over.
        max_downtime_ms: Option<u64>,
    },
    Finished(LiveOutcome),
}

pub struct LiveMigrationHandle {
    pub commands: CommandSender,
    pub updates: Receiver<MigrationUpdate>,
    pub thread: JoinHandle<LiveOutcome>,
}

/// Whether ferry starts the migration or takes over one libvirt is already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Launch,
    Attach,
}

/// Starts the migration on its own threads and returns at once.
pub fn start(plan: LiveMigrationPlan) -> LiveMigrationHandle {
    spawn(plan, Mode::Launch)
}

/// Takes over a migration of `plan.instance_name` that libvirt is already running (started by
/// a ferry that died): monitors it, applies the policy from where it stands, answers operator
/// commands, and checks the outcome as if ferry had launched it.
pub fn attach(plan: LiveMigrationPlan) -> LiveMigrationHandle {
    spawn(plan, Mode::Attach)
}

fn spawn(plan: LiveMigrationPlan, mode: Mode) -> LiveMigrationHandle {
    let (inbox_tx, inbox_rx) = mpsc::channel();
    let (update_tx, update_rx) = mpsc::channel();
    let migrate_inbox = inbox_tx.clone();
    let thread = thread::Builder::new()
        .name(format!("migrate-{}", plan.instance_name))
        .spawn(move || {
            let outcome = run(&plan, mode, &inbox_rx, migrate_inbox, &update_tx);
            let _ = update_tx.send(MigrationUpdate::Finished(outcome.clone()));
            outcome
        })
        .expect("spawn migration thread");
    LiveMigrationHandle {
        commands: CommandSender { inbox: inbox_tx },
        updates: update_rx,
        thread,
    }
}

/// What one poll of the source found.
enum Poll {
    Sampled,
    /// The domain is on the source with no job: the migration ended one way or another.
    NoJob,
    /// The domain is no longer defined on the source (a migration with UNDEFINE_SOURCE ended).
    DomainGone,
    /// The poll failed (timeout, connection); reported as a warning, the next poll retries.
    Failed,
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
    /// Source paths of the disks a block migration copies.
    copied_disk_paths: Vec<String>,
    /// Volumes ferry created on the destination for them: removed again on a rollback.
    precreated_on_destination: Vec<String>,
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

    fn poll(&mut self) -> Poll {
        let instance = self.plan.instance_name.clone();
        let result = self.source.call(
            format!("reading job statistics ({instance})"),
            self.plan.call_timeout,
            move |connect| match connect.lookup_domain_by_name(&instance) {
                // A shut-off domain has no job (and libvirt refuses to be asked).
                Ok(domain) if !domain.is_active().unwrap_or(true) => Ok(Some(None)),
                Ok(domain) => job_stats::job_stats(&domain, false).map(Some),
                Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(None),
                Err(error) => Err(LibvirtError::call(format!("looking up {instance}"), error)),
            },
        );
        match result {
            Ok(None) => Poll::DomainGone,
            Ok(Some(None)) => Poll::NoJob,
            Ok(Some(Some(mut sample))) => {
                sample.sampled_at_ms = self.elapsed_ms();
                self.send(MigrationUpdate::Sample(Box::new(sample.clone())));
                let snapshot = self.progress.on_sample(sample);
                self.in_post_copy |= snapshot.phase == MigrationPhase::PostCopy;
                let decisions = self.policy.on_sample(&snapshot);
                self.send(MigrationUpdate::Progress(Box::new(snapshot)));
                for decision in decisions {
                    self.apply_policy(decision);
                }
                Poll::Sampled
            }
            Err(error) => {
                self.send(MigrationUpdate::Warning {
                    message: error.to_string(),
                });
                Poll::Failed
            }
        }
    }

    /// How the job that just ended on the source ended, from libvirt's completed-job record.
    fn completed_job_type(&self) -> Option<JobType> {
        self.on_domain("reading the ended job", |d| job_stats::job_stats(d, true))
            .ok()
            .flatten()
            .and_then(|sample| sample.job_type)
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

    /// Carries out one operator command and reports it; the answer also goes back to the caller.
    fn operator(&mut self, command: OperatorCommand) -> CommandReply {
        let result = match command {
            OperatorCommand::Abort if self.in_post_copy => Err(
                "abort refused: the migration is in post-copy, the guest already runs \
                     on the destination and its memory is split between both hosts; \
                     it can only finish"
                    .to_string(),
            ),
            OperatorCommand::Abort => self
                .on_domain("aborting", job_stats::abort_job)
                .map(|_| {
                    self.abort_requested = Some("aborted by the operator".into());
                    "abort requested: the guest stays on the source".to_string()
                })
                .map_err(|e| e.to_string()),
            OperatorCommand::ForceComplete if self.in_post_copy => {
                Err("force-complete: already in post-copy, the migration is finishing".to_string())
            }
            OperatorCommand::ForceComplete if self.plan.post_copy_permitted => self
                .start_post_copy()
                .map(|_| "force-complete: switched to post-copy".to_string())
                .map_err(|e| e.to_string()),
            OperatorCommand::ForceComplete if self.paused_by_ferry => {
                Err("force-complete: the guest is already paused to converge".to_string())
            }
            OperatorCommand::ForceComplete => self
                .pause()
                .map(|_| {
                    "force-complete: guest paused so the remaining memory stops changing; \
                 it resumes wherever the migration ends"
                        .to_string()
                })
                .map_err(|e| e.to_string()),
            OperatorCommand::SetBandwidth { mib_per_second } => {
                let post_copy = self.in_post_copy;
                self.on_domain("setting bandwidth", move |d| {
                    job_stats::set_max_speed_mib_per_second(d, mib_per_second, post_copy)
                })
                .map(|_| format!("bandwidth set to {mib_per_second} MiB/s"))
                .map_err(|e| e.to_string())
            }
            OperatorCommand::SetMaxDowntime { downtime_ms } => self
                .on_domain("setting max downtime", move |d| {
                    job_stats::set_max_downtime_ms(d, downtime_ms)
                })
                .map(|_| format!("max downtime set to {downtime_ms} ms"))
                .map_err(|e| e.to_string()),
        };
        match &result {
            Ok(description) => self.send(MigrationUpdate::OperatorAction {
                description: description.clone(),
            }),
            Err(reason) => self.send(MigrationUpdate::Refused {
                reason: reason.clone(),
            }),
        }
        result
    }
}

fn run(
    plan: &LiveMigrationPlan,
    mode: Mode,
    inbox: &Receiver<Inbox>,
    migrate_inbox: Sender<Inbox>,
    updates: &Sender<MigrationUpdate>,
) -> LiveOutcome {
    let started = Instant::now();
    let fail = |detail: String| LiveOutcome::Failed { detail };
    let source = match HostConnection::open(&plan.source.uri, plan.call_timeout) {
        Ok(c) => c,
        Err(e) if mode == Mode::Attach => {
            return LiveOutcome::Unknown {
                detail: format!("source {}: {e}", plan.source.name),
            }
        }
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
        copied_disk_paths: Vec::new(),
        precreated_on_destination: Vec::new(),
    };
    let mut start_decisions = None;
    match mode {
        Mode::Launch => {
            // The migrate call blocks for the whole migration: it gets a connection of its own
            // so the monitor's polls never queue behind it.
            let launcher = match HostConnection::open(&plan.source.uri, plan.call_timeout) {
                Ok(c) => c,
                Err(e) => return fail(format!("source {}: {e}", plan.source.name)),
            };
            if !plan.block_migration_disks.is_empty() {
                if let Err(error) = prepare_block_migration(&mut monitor) {
                    return fail(format!("preparing the block migration: {error}"));
                }
            }
            let flags = plan.flags(monitor.policy.as_ref());
            monitor.send(MigrationUpdate::Started {
                flags,
                policy: monitor.policy.name().to_string(),
            });
            start_decisions = Some(monitor.policy.on_start());
            launch(plan, launcher, flags, migrate_inbox);
            monitor.progress.on_event(EngineEvent::MigrationStarted);
        }
        Mode::Attach => {
            drop(migrate_inbox);
            let instance = plan.instance_name.clone();
            let found = monitor.source.call(
                format!("reading the running job ({instance})"),
                plan.call_timeout,
                move |connect| match connect.lookup_domain_by_name(&instance) {
                    // Shut off on the source: the job is over (a completed migration whose
                    // caller died leaves the definition behind); the outcome check decides.
                    Ok(d) if !d.is_active().unwrap_or(true) => Ok(Some((None, None))),
                    Ok(d) => Ok(Some((
                        job_stats::job_stats(&d, false)?,
                        job_stats::max_downtime_ms(&d).ok(),
                    ))),
                    Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(None),
                    Err(error) => Err(LibvirtError::call(format!("looking up {instance}"), error)),
                },
            );
            match found {
                Ok(Some((Some(job), max_downtime_ms)))
                    if job.job_type.is_some_and(JobType::is_running) =>
                {
                    let job_elapsed_ms = job.time_elapsed_ms.unwrap_or(0);
                    // The progress model and the policy's timeouts count from the job's start.
                    monitor.started = Instant::now()
                        .checked_sub(Duration::from_millis(job_elapsed_ms))
                        .unwrap_or(started);
                    monitor.policy.on_resume(max_downtime_ms);
                    monitor.progress.on_event(EngineEvent::MigrationStarted);
                    monitor.send(MigrationUpdate::Attached {
                        job_elapsed_ms,
                        max_downtime_ms,
                    });
                }
                // The job ended while ferry was away: only the outcome is left to check.
                Ok(Some(_)) => {
                    let result = ended_job_result(&mut monitor);
                    return finish(&mut monitor, result);
                }
                Ok(None) => return finish(&mut monitor, Ok(())),
                Err(error) => {
                    return LiveOutcome::Unknown {
                        detail: format!("reading the running job: {error}"),
                    }
                }
            }
        }
    }

    let mut next_poll_at = Instant::now() + plan.poll_interval;
    let migrate_result = loop {
        let wait = next_poll_at.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(wait) {
            Ok(Inbox::MigrateReturned(result)) => break result,
            Ok(Inbox::Command { command, reply }) => {
                let answer = monitor.operator(command);
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                break Err(LibvirtError::Call {
                    context: "migration".into(),
                    message: "the migrate call ended without a result".into(),
                })
            }
        }
        next_poll_at = Instant::now() + plan.poll_interval;
        let poll = monitor.poll();
        // Start-time decisions (initial max downtime) apply once the job exists.
        if monitor.progress.phase() != MigrationPhase::Preparing || monitor.elapsed_ms() > 2_000 {
            for decision in start_decisions.take().unwrap_or_default() {
                monitor.apply_policy(decision);
            }
        }
        if mode == Mode::Attach {
            match poll {
                Poll::NoJob => break ended_job_result(&mut monitor),
                Poll::DomainGone => break Ok(()),
                Poll::Sampled | Poll::Failed => {}
            }
        }
    };
    if migrate_result.is_err() && monitor.abort_requested.is_none() {
        // An abort from outside (virsh domjobabort, `ferry abort` with no ferry watching)
        // shows only in the source's record of the ended job.
        if monitor.completed_job_type() == Some(JobType::Cancelled) {
            monitor.abort_requested =
                Some("aborted from outside this ferry (e.g. virsh domjobabort)".into());
        }
    }
    while let Ok(message) = inbox.try_recv() {
        // Commands that arrived as the migration ended: answer them, do nothing.
        if let Inbox::Command { command, reply } = message {
            let reason = format!("{command:?}: the migration has already ended");
            monitor.send(MigrationUpdate::Refused {
                reason: reason.clone(),
            });
            if let Some(reply) = reply {
                let _ = reply.send(Err(reason));
            }
        }
    }
    finish(&mut monitor, migrate_result)
}

/// An incremental block migration needs its target volumes on the destination (libvirt does
/// not pre-create them for NON_SHARED_INC): ferry creates them, shaped like the source's, and
/// remembers which, so a rollback removes exactly those.
fn prepare_block_migration(monitor: &mut Monitor) -> Result<(), LibvirtError> {
    let plan = monitor.plan;
    let wanted = plan.block_migration_disks.clone();
    let paths = monitor.on_domain("reading the disks to copy", move |d| {
        let xml = d
            .xml_desc(0)
            .map_err(|e| LibvirtError::call("reading the domain XML", e))?;
        let disks = crate::libvirt::facts::disks_from_domain_xml(&xml);
        wanted
            .iter()
            .map(|target| {
                disks
                    .iter()
                    .find(|disk| &disk.target == target)
                    .and_then(|disk| match &disk.source {
                        crate::libvirt::facts::DiskSource::Path { path } => Some(path.clone()),
                        _ => None,
                    })
                    .ok_or_else(|| LibvirtError::Call {
                        context: format!("disk {target}"),
                        message: "not a file or block disk of the guest; only those are copied"
                            .into(),
                    })
            })
            .collect::<Result<Vec<String>, LibvirtError>>()
    })?;
    let destination = HostConnection::open(&plan.destination.uri, plan.call_timeout)?;
    let to_create = paths.clone();
    let created = monitor.source.call_with(
        &destination,
        "creating the copied disks' volumes on the destination",
        plan.call_timeout,
        move |source, destination| {
            crate::libvirt::storage::precreate_volumes(source, destination, &to_create)
        },
    )?;
    monitor.copied_disk_paths = paths;
    monitor.precreated_on_destination = created;
    Ok(())
}

/// Runs the blocking migrate call on its own thread; its result comes back through the inbox.
fn launch(plan: &LiveMigrationPlan, launcher: HostConnection, flags: u32, inbox: Sender<Inbox>) {
    let parameters = MigrateParameters {
        bandwidth: plan.bandwidth_mib_per_second,
        // The cap holds in post-copy too (libvirt leaves that phase unlimited otherwise, and
        // takes it in bytes per second): the operator capped the link, not a phase.
        bandwidth_postcopy: plan
            .bandwidth_mib_per_second
            .filter(|_| plan.post_copy_permitted)
            .map(|mib| mib << 20),
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
            let _ = inbox.send(Inbox::MigrateReturned(result));
        })
        .expect("spawn migrate call thread");
}

/// An attached migration's job is gone from the source while the domain is still there: the
/// source's completed-job record says whether it completed, failed or was cancelled.
fn ended_job_result(monitor: &mut Monitor) -> Result<(), LibvirtError> {
    match monitor.completed_job_type() {
        Some(JobType::Completed) => Ok(()),
        Some(JobType::Cancelled) => {
            monitor.abort_requested =
                Some("aborted while ferry was not watching, or from outside ferry".into());
            Err(LibvirtError::Call {
                context: "migration".into(),
                message: "the job was cancelled".into(),
            })
        }
        other => Err(LibvirtError::Call {
            context: "migration".into(),
            message: format!(
                "the migration job ended ({}) while the guest is still on the source",
                other.map_or("no record of how".to_string(), |t| format!("{t:?}")
                    .to_lowercase())
            ),
        }),
    }
}

/// Checks where the guest really is, and rolls back if the migration did not move it.
fn finish(monitor: &mut Monitor, migrate_result: Result<(), LibvirtError>) -> LiveOutcome {
    let plan = monitor.plan;
    let total_time_ms = monitor.elapsed_ms();
    let destination = HostConnection::open(&plan.destination.uri, plan.call_timeout);
    let instance = plan.instance_name.clone();
    let presence_on = |connection: &HostConnection| presence(connection, &instance, plan);
    let on_source = presence_on(&monitor.source);
    let on_destination = destination
        .as_ref()
        .map(presence_on)
        .unwrap_or_else(|error| Presence::Unknown(error.to_string()));

    // The guest runs on the destination and the source holds no running copy: it moved,
    // whatever the migrate call said (it may have lost its caller, a ferry that died).
    let moved = on_destination == Presence::Active
        && matches!(on_source, Presence::Absent | Presence::Inactive);
    if moved {
        if on_source == Presence::Inactive {
            // UNDEFINE_SOURCE is carried out by the migrate call's own confirm step; when its
            // caller died mid-way, libvirt leaves the inactive source definition behind.
            let undefined = on_domain(
                &monitor.source,
                &instance,
                plan.call_timeout,
                "removing the source's inactive definition",
                |d| {
                    if d.is_active().unwrap_or(true) {
                        return Ok(false);
                    }
                    d.undefine()
                        .map(|_| true)
                        .map_err(|e| LibvirtError::call("undefining", e))
                },
            );
            monitor.send(MigrationUpdate::Warning {
                message: match undefined {
                    Ok(true) => "the source kept an inactive definition (its migrate call had \
                                 lost its caller); removed, as UNDEFINE_SOURCE asks"
                        .to_string(),
                    Ok(false) => "the source's copy became active again; left alone".to_string(),
                    Err(error) => format!("the source's inactive definition stays: {error}"),
                },
            });
        }
        let destination = destination.expect("destination answered");
        // Nova's force-complete without post-copy pauses the guest: it resumes where it ends.
        if !plan.guest_was_paused {
            let _ = on_domain(
                &destination,
                &instance,
                plan.call_timeout,
                "resuming",
                resume_if_paused,
            );
        }
        let final_job = on_domain(
            &destination,
            &instance,
            plan.call_timeout,
            "reading the completed job",
            |d| job_stats::job_stats(d, true),
        )
        .ok()
        .flatten();
        // The move is verified (runs on the destination, gone from the source): the source's
        // copies of the block-migrated disks are stale now, as Nova removes them after a
        // block migration. Only the disks this migration copied, never shared ones.
        if !monitor.copied_disk_paths.is_empty() {
            let paths = monitor.copied_disk_paths.clone();
            let left = monitor.source.call(
                "removing the source's copies of the migrated disks",
                plan.call_timeout,
                move |source| Ok(crate::libvirt::storage::delete_volumes(source, &paths)),
            );
            match left {
                Ok(left) if left.is_empty() => {}
                Ok(left) => monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "the stale source copies could not all be removed: {}",
                        left.join("; ")
                    ),
                }),
                Err(error) => monitor.send(MigrationUpdate::Warning {
                    message: format!("the stale source copies were not removed: {error}"),
                }),
            }
        }
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
    let mut detail = match (&migrate_result, &monitor.abort_requested) {
        (_, Some(reason)) => reason.clone(),
        (Err(error), None) => error.to_string(),
        (Ok(()), None) => "libvirt reported success but the guest is not running on the \
                           destination alone"
            .to_string(),
    };
    // A failure in post-copy splits the guest's memory between the hosts: neither copy may be
    // destroyed, and only the operator can recover it (libvirt's post-copy recovery).
    if monitor.in_post_copy {
        detail = format!(
            "{detail}; post-copy had started, so nothing was rolled back: the guest's memory is \
             split between {} and {}; recover it with `virsh migrate --postcopy-resume` or \
             decide which copy to keep",
            plan.source.name, plan.destination.name
        );
    } else if on_source != Presence::Active {
        // No running copy on the source to roll back to: touching the destination could
        // destroy the only copy. Left as found, for the operator.
        detail = format!(
            "{detail}; the source holds no running copy ({}), the destination {}: nothing was \
             removed; check both hosts",
            on_source.describe(),
            on_destination.describe()
        );
    }
    if on_source == Presence::Active && !monitor.in_post_copy {
        if !plan.guest_was_paused {
            let _ = on_domain(
                &monitor.source,
                &instance,
                plan.call_timeout,
                "resuming on the source",
                resume_if_paused,
            );
        }
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
            if !monitor.precreated_on_destination.is_empty() {
                let paths = monitor.precreated_on_destination.clone();
                let left = destination.call(
                    "removing the volumes made for the copy",
                    plan.call_timeout,
                    move |destination| {
                        Ok(crate::libvirt::storage::delete_volumes(destination, &paths))
                    },
                );
                if let Some(left) = left.ok().filter(|left| !left.is_empty()) {
                    monitor.send(MigrationUpdate::Warning {
                        message: format!(
                            "rollback: volumes left on {}: {}",
                            plan.destination.name,
                            left.join("; ")
                        ),
                    });
                }
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

/// Where the guest stands on one host, as the outcome check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presence {
    /// Running or paused.
    Active,
    /// Defined, not running.
    Inactive,
    Absent,
    /// The host did not answer: no conclusion may be drawn.
    Unknown(String),
}

impl Presence {
    fn describe(&self) -> String {
        match self {
            Presence::Active => "has it active".into(),
            Presence::Inactive => "has it defined but shut off".into(),
            Presence::Absent => "does not have it".into(),
            Presence::Unknown(error) => format!("could not be asked: {error}"),
        }
    }
}

fn presence(connection: &HostConnection, instance: &str, plan: &LiveMigrationPlan) -> Presence {
    let name = instance.to_string();
    let answer = connection.call(
        format!("reading the state of {instance}"),
        plan.call_timeout,
        move |connect| match connect.lookup_domain_by_name(&name) {
            Ok(domain) => domain
                .is_active()
                .map(|active| {
                    if active {
                        Presence::Active
                    } else {
                        Presence::Inactive
                    }
                })
                .map_err(|e| LibvirtError::call("reading state", e)),
            Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(Presence::Absent),
            Err(error) => Err(LibvirtError::call(format!("looking up {name}"), error)),
        },
    );
    answer.unwrap_or_else(|error| Presence::Unknown(error.to_string()))
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
