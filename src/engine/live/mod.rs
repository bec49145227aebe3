//! One live migration, start to outcome: launch (peer-to-peer, on the blocking pool), monitor
//! (job statistics every poll interval into the progress model), the policy's decisions, the
//! operator's abort / force-complete / bandwidth / downtime commands, then the outcome check
//! and rollback. Follows Nova's libvirt driver (`_live_migration_operation`,
//! `_live_migration_monitor`) and `migration.py`, with every decision reported as an update.
//!
//! Each migration is one tokio task (its monitor); the blocking migrate call runs on the
//! blocking pool and reports through the task's inbox; every other libvirt call goes through
//! the libvirt door's async operations, each under the plan's call timeout.
//!
//! - `plan`: what was asked, and the libvirt request it becomes;
//! - `launch`: the checks before the launch, the block migration's volumes, the migrate call;
//! - `monitor`: the watch loop, the hosts' links and their reconnects, operator commands;
//! - `finish`: settling the outcome, post-copy recovery, completion and rollback.

mod finish;
mod launch;
mod monitor;
mod plan;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub(crate) use self::plan::duration_ms;
pub use self::plan::LiveMigrationPlan;
use super::settle::Ownership;
pub use crate::engine::target::HostTarget;
use crate::libvirt::job_control::RunningJobReading;
use crate::libvirt::lifecycle::DomainKey;
pub use crate::libvirt::migrate::MigrationStream;
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::job::{JobSample, JobType};
use crate::model::standing::HostAnswer;
use crate::policy::PolicyEvent;
use crate::progress::{EngineEvent, MigrationProgress, ProgressConfig, ProgressModel};
use finish::{remove_precreated_volumes, settle_outcome, SettleStep};
use launch::job_words;
use monitor::ended_job_result;
use monitor::{answer_late_commands, watch, Link, Monitor};

/// What an operator can do to a running migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OperatorCommand {
    Abort,
    ForceComplete,
    SetBandwidth {
        mib_per_second: u64,
    },
    SetMaxDowntime {
        downtime_ms: u64,
    },
    /// Resume a broken post-copy now (`r` in the TUI, `ferry recover`), without waiting for
    /// the automatic attempt's backoff.
    RecoverPostCopy,
}

/// The engine's answer to one operator command: what was done, or why it was refused.
pub type CommandReply = Result<String, String>;

/// How one launch call ended.
pub(super) enum CallEnd {
    Returned(Result<(), LibvirtError>),
    /// Refused before anything moved: another job runs on the guest (seen by ferry's last look
    /// just before the call, or by libvirt itself).
    RefusedBusy(String),
}

/// What reaches the migration thread: an operator command (with somewhere to send the answer,
/// for callers in another process), or the blocking migrate call returning.
enum Inbox {
    Command {
        command: OperatorCommand,
        reply: Option<oneshot::Sender<CommandReply>>,
    },
    /// The launch call (or a post-copy resume, numbered from 1) returned.
    MigrateReturned { call: u32, end: CallEnd },
}

/// Sends operator commands to one running migration. Cheap to clone: the TUI, the CLI and the
/// control socket each hold one.
#[derive(Clone)]
pub struct CommandSender {
    inbox: mpsc::UnboundedSender<Inbox>,
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

    /// Sends a command and awaits the engine's answer, at most `timeout`.
    pub async fn ask(&self, command: OperatorCommand, timeout: Duration) -> CommandReply {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.inbox
            .send(Inbox::Command {
                command,
                reply: Some(reply_tx),
            })
            .map_err(|_| MigrationEnded.to_string())?;
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) | Err(_) => Err(format!(
                "no answer from the migration within {} s; it may have just ended",
                timeout.as_secs()
            )),
        }
    }

    /// [`CommandSender::ask`] from synchronous code (never on a runtime thread).
    pub fn request(&self, command: OperatorCommand, timeout: Duration) -> CommandReply {
        crate::runtime::wait(self.ask(command, timeout))
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
    /// Not decided: a host did not answer (or a broken post-copy could not be resumed) within
    /// the settle bound. Nothing was rolled back or removed; the history keeps it unfinished
    /// and the next `ferry resume` settles it.
    Unsettled { detail: String },
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
    /// A host stopped answering mid-migration: no figures (from the source) or no word (from
    /// the destination) for `silent_for_ms`; ferry reconnects with backoff.
    Silent {
        host: String,
        silent_for_ms: u64,
        /// What libvirt said, as observed ("no answer within 10 s", "client socket is closed").
        observed: String,
        /// The source's job statistics stopped (as opposed to the destination's watch).
        figures: bool,
    },
    /// The host answers again after `silent_for_ms`; the watch goes on with the same job.
    Reconnected {
        host: String,
        silent_for_ms: u64,
    },
    /// The migration ended (or its caller lost the job) and the outcome waits for answers.
    Unsettled {
        /// "waiting for hv3 to answer to settle the outcome".
        waiting_for: String,
        /// The settle bound left, after which the migration is left for `ferry resume`.
        gives_up_in_ms: u64,
    },
    /// The post-copy stream broke: the guest's memory is split between the hosts.
    PostCopyBroken {
        detail: String,
    },
    /// One attempt to resume a broken post-copy, and what came of it.
    PostCopyRecovery {
        attempt: u32,
        result: Result<String, String>,
    },
    Finished(LiveOutcome),
}

/// A running migration: its command sender, its updates in order (the last is `Finished`),
/// and its task, whose result is the outcome.
pub struct LiveMigrationHandle {
    pub commands: CommandSender,
    pub updates: mpsc::UnboundedReceiver<MigrationUpdate>,
    pub task: tokio::task::JoinHandle<LiveOutcome>,
}

/// Whether ferry starts the migration or takes over one libvirt is already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Launch,
    Attach,
}

/// Starts the migration as a task on the shared runtime and returns at once.
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
    let (inbox_tx, mut inbox_rx) = mpsc::unbounded_channel();
    let (update_tx, update_rx) = mpsc::unbounded_channel();
    let migrate_inbox = inbox_tx.clone();
    let task = crate::runtime::handle().spawn(async move {
        let outcome = run(&plan, mode, &mut inbox_rx, migrate_inbox, &update_tx).await;
        let _ = update_tx.send(MigrationUpdate::Finished(outcome.clone()));
        outcome
    });
    LiveMigrationHandle {
        commands: CommandSender { inbox: inbox_tx },
        updates: update_rx,
        task,
    }
}

/// How long the outcome check keeps asking a silent host before it leaves the migration
/// unsettled for `ferry resume`: longer than a link blip or a dropped ssh session (the lab's
/// 60 s cut), short enough that a dead host does not hold a terminal for ever.
const SETTLE_BOUND: Duration = Duration::from_secs(300);
/// How many times ferry resumes a broken post-copy on its own before leaving it to the
/// operator (`r`, `ferry recover`).
const POST_COPY_RECOVERY_ATTEMPTS: u32 = 5;
/// Every Nth poll also asks the destination where the guest stands (every poll in post-copy,
/// where a break shows on the destination first).
const DESTINATION_CHECK_EVERY_POLLS: u32 = 5;
/// A job is this attempt's when libvirt's count of its age fits in the time since ferry's
/// launch call, give or take this much (the call takes a moment to reach libvirt).
const JOB_AGE_SLACK_MS: u64 = 3_000;
/// How long after a post-copy resume the hosts may still report "post-copy failed" before the
/// watch takes it as broken again (on the lab they leave it within a second).
const RECOVERY_GRACE: Duration = Duration::from_secs(60);
/// Whether a dropped connection is dead is asked with this bound: it is a local question.
const ALIVE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

async fn run(
    plan: &LiveMigrationPlan,
    mode: Mode,
    inbox: &mut mpsc::UnboundedReceiver<Inbox>,
    migrate_inbox: mpsc::UnboundedSender<Inbox>,
    updates: &mpsc::UnboundedSender<MigrationUpdate>,
) -> LiveOutcome {
    let started = Instant::now();
    let fail = |detail: String| LiveOutcome::Failed { detail };
    let source = match HostConnection::connect(&plan.source.uri, plan.call_timeout).await {
        Ok(c) => c,
        Err(e) if mode == Mode::Attach => {
            return LiveOutcome::Unsettled {
                detail: format!("{} did not answer ({e})", plan.source.name),
            }
        }
        Err(e) => {
            return fail(format!(
                "not started: {} did not answer ({e})",
                plan.source.name
            ))
        }
    };
    let copied_disks = plan.block_migration_disk_sizes_bytes.clone();
    let data_gib = crate::policy::nova::data_gib(plan.instance_memory_bytes, &copied_disks);
    // The guest's identity, read once: later questions go by UUID.
    let by_name = DomainKey::Name(plan.instance_name.clone());
    let source_before = source.domain_standing(&by_name, plan.call_timeout).await;
    let key = match &source_before {
        HostAnswer::Holds(standing) if !standing.uuid.is_empty() => {
            DomainKey::Uuid(standing.uuid.clone())
        }
        _ => by_name,
    };
    let mut monitor = Monitor {
        plan,
        updates,
        source: Link::new(&plan.source, Some(source)),
        destination: Link::new(&plan.destination, None),
        key,
        progress: ProgressModel::new(ProgressConfig::default()),
        policy: plan.policy.build(data_gib),
        started,
        launched_at: None,
        in_post_copy: false,
        paused_by_ferry: false,
        abort_requested: None,
        copied_disk_paths: Vec::new(),
        precreated_on_destination: Vec::new(),
        ownership: Ownership::default(),
        polls: 0,
        calls_made: 0,
        recoveries: 0,
        migrate_inbox,
        launcher: None,
        recovery_sent_at: None,
        stream: MigrationStream::for_migration(&plan.destination.uri, &plan.instance_name),
    };
    let mut start_decisions = None;
    let mut waiting_for_call = false;
    match mode {
        Mode::Launch => {
            // ferry's last look before acting: one migration per instance, whoever started
            // the other (the launch call looks once more on its own connection).
            match &source_before {
                HostAnswer::Holds(standing) => {
                    if let Some(job) = standing.job {
                        return fail(format!(
                            "not started: {}",
                            crate::precheck::JobInProgress {
                                host: plan.source.name.clone(),
                                what: job_words(job).into(),
                            }
                            .refusal(&plan.instance_name)
                        ));
                    }
                }
                HostAnswer::Absent => {
                    return fail(format!(
                        "not started: {} is not defined on {}",
                        plan.instance_name, plan.source.name
                    ))
                }
                HostAnswer::Silent { why } => {
                    return fail(format!(
                        "not started: {} did not answer ({why})",
                        plan.source.name
                    ))
                }
            }
            // Whether a copy on the destination later is this attempt's: was one there before?
            let key = monitor.key.clone();
            monitor.ownership.destination_held_it_before =
                match monitor.destination.standing(&key, plan.call_timeout).await {
                    HostAnswer::Holds(_) => Some(true),
                    HostAnswer::Absent => Some(false),
                    HostAnswer::Silent { .. } => None,
                };
            // The migrate call blocks for the whole migration: it gets a connection of its own
            // so the monitor's polls never queue behind it.
            let launcher = match HostConnection::connect(&plan.source.uri, plan.call_timeout).await
            {
                Ok(c) => c,
                Err(e) => {
                    return fail(format!(
                        "not started: {} did not answer ({e})",
                        plan.source.name
                    ))
                }
            };
            if !plan.block_migration_disks.is_empty() {
                if let Err(error) = launch::prepare_block_migration(&mut monitor).await {
                    return fail(format!("preparing the block migration: {error}"));
                }
            }
            let request = plan.request(monitor.policy.as_ref(), Some(monitor.stream.clone()));
            monitor.send(MigrationUpdate::Started {
                flags: request.flags(),
                policy: monitor.policy.name().to_string(),
            });
            start_decisions = Some(monitor.policy.on_start());
            monitor.calls_made += 1;
            monitor.launcher = Some(launcher.clone());
            launch::launch(
                plan,
                launcher,
                request,
                monitor.calls_made,
                monitor.migrate_inbox.clone(),
            );
            monitor.launched_at = Some(Instant::now());
            monitor.progress.on_event(EngineEvent::MigrationStarted);
            waiting_for_call = true;
        }
        Mode::Attach => {
            let instance = plan.instance_name.clone();
            let connection = monitor.source.get(plan.call_timeout).await;
            let found = match connection {
                Some(connection) => {
                    connection
                        .running_job(&DomainKey::Name(instance), plan.call_timeout)
                        .await
                }
                None => Err(LibvirtError::Call {
                    context: "reading the running job".into(),
                    message: monitor.source.silence(),
                }),
            };
            match found {
                Ok(Some(RunningJobReading {
                    job: Some(job),
                    max_downtime_ms,
                })) if job.job_type.is_some_and(JobType::is_running) => {
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
                // The job ended while ferry was away (or post-copy broke): only the outcome
                // is left to settle, from both hosts' answers.
                Ok(Some(_)) | Ok(None) => {
                    let result = if matches!(found, Ok(Some(_))) {
                        ended_job_result(&mut monitor).await
                    } else {
                        Ok(())
                    };
                    match settle_outcome(&mut monitor, inbox, result).await {
                        SettleStep::Outcome(outcome) => return outcome,
                        SettleStep::WatchAgain {
                            waiting_for_call: w,
                        } => waiting_for_call = w,
                    }
                }
                Err(error) => {
                    return LiveOutcome::Unsettled {
                        detail: format!("reading the running job: {error}"),
                    }
                }
            }
        }
    }

    loop {
        let migrate_result =
            match watch(&mut monitor, inbox, waiting_for_call, &mut start_decisions).await {
                Ok(result) => result,
                Err(refusal) => {
                    // Nothing moved and nothing on the destination is this attempt's but the
                    // volumes it made for the copy.
                    remove_precreated_volumes(&mut monitor).await;
                    return fail(format!("not started: {refusal}"));
                }
            };
        if migrate_result.is_err() && monitor.abort_requested.is_none() {
            // An abort from outside (virsh domjobabort, `ferry abort` with no ferry watching)
            // shows only in the source's record of the ended job.
            if monitor.completed_job_type().await == Some(JobType::Cancelled) {
                monitor.abort_requested =
                    Some("aborted from outside this ferry (e.g. virsh domjobabort)".into());
            }
        }
        match settle_outcome(&mut monitor, inbox, migrate_result).await {
            SettleStep::Outcome(outcome) => {
                answer_late_commands(&monitor, inbox);
                return outcome;
            }
            SettleStep::WatchAgain {
                waiting_for_call: w,
            } => waiting_for_call = w,
        }
    }
}
