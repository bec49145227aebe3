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

use super::settle::{backoff_seconds, settle, Ownership, Settlement};
use crate::libvirt::job_stats;
use crate::libvirt::lifecycle::DomainKey;
use crate::libvirt::standing;
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::job::{JobOperation, JobSample, JobType};
use crate::model::standing::{HostAnswer, RunningJob};
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

/// What reaches the migration thread: an operator command (with somewhere to send the answer,
/// for callers in another process), or the blocking migrate call returning.
enum Inbox {
    Command {
        command: OperatorCommand,
        reply: Option<Sender<CommandReply>>,
    },
    /// The launch call (or a post-copy resume, numbered from 1) returned.
    MigrateReturned { call: u32, end: CallEnd },
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

/// What one poll of the source found.
enum Poll {
    Sampled,
    /// The domain is on the source with no job: the migration ended one way or another.
    NoJob,
    /// The domain is no longer defined on the source (a migration with UNDEFINE_SOURCE ended).
    DomainGone,
    /// A host reports "post-copy failed": the stream broke.
    PostCopyBroken,
    /// The poll got no answer (timeout, dropped connection); reported, the next poll retries.
    Failed,
}

/// One host, as the engine reaches it: a connection that is reopened with backoff when it
/// drops, and the time since it last answered. Silence is timed and reported, never read as
/// an answer.
struct Link {
    host: String,
    uri: String,
    connection: Option<HostConnection>,
    silent_since: Option<Instant>,
    /// What libvirt said when it stopped answering, as observed.
    observed: String,
    attempts: u32,
    next_attempt_at: Instant,
    /// The longest silence this host ended, ms: part of what an outcome says was observed.
    longest_silence_ms: u64,
}

impl Link {
    fn new(target: &HostTarget, connection: Option<HostConnection>) -> Link {
        Link {
            host: target.name.clone(),
            uri: target.uri.clone(),
            connection,
            silent_since: None,
            observed: String::new(),
            attempts: 0,
            next_attempt_at: Instant::now(),
            longest_silence_ms: 0,
        }
    }

    /// The connection, reopened if it dropped and the backoff allows; None while silent.
    fn get(&mut self, timeout: Duration) -> Option<HostConnection> {
        if let Some(connection) = &self.connection {
            return Some(connection.clone());
        }
        if Instant::now() < self.next_attempt_at {
            return None;
        }
        match HostConnection::open(&self.uri, timeout) {
            Ok(connection) => {
                self.connection = Some(connection.clone());
                Some(connection)
            }
            Err(error) => {
                self.went_silent(error.to_string());
                self.schedule_reconnect();
                None
            }
        }
    }

    /// The connection for `context`, or an error saying the host did not answer.
    fn connection(
        &mut self,
        timeout: Duration,
        context: &str,
    ) -> Result<HostConnection, LibvirtError> {
        self.get(timeout).ok_or_else(|| LibvirtError::Call {
            context: context.to_string(),
            message: self.silence(),
        })
    }

    fn schedule_reconnect(&mut self) {
        self.next_attempt_at =
            Instant::now() + Duration::from_secs(super::settle::backoff_seconds(self.attempts));
        self.attempts = self.attempts.saturating_add(1);
    }

    fn went_silent(&mut self, observed: String) {
        self.silent_since.get_or_insert_with(Instant::now);
        self.observed = observed;
    }

    /// A call on this host got no answer. A connection libvirt declares dead is dropped, so
    /// the next use reopens it; a live one that timed out is kept (the host may be slow).
    fn failed(&mut self, observed: String) {
        self.went_silent(observed);
        if let Some(connection) = &self.connection {
            if !connection.is_alive(ALIVE_CHECK_TIMEOUT) {
                self.connection = None;
                self.schedule_reconnect();
            }
        }
    }

    /// The host answered; Some(how long it had been silent) if it had been.
    fn answered(&mut self) -> Option<u64> {
        self.attempts = 0;
        let silent_for_ms = self
            .silent_since
            .take()
            .map(|since| since.elapsed().as_millis() as u64)?;
        self.longest_silence_ms = self.longest_silence_ms.max(silent_for_ms);
        Some(silent_for_ms)
    }

    /// "hv1 did not answer for 44.4 s", if it was silent during the migration.
    fn silence_observed(&self) -> Option<String> {
        (self.longest_silence_ms > 0).then(|| {
            format!(
                "{} did not answer for {:.1} s",
                self.host,
                self.longest_silence_ms as f64 / 1000.0
            )
        })
    }

    fn silent_for_ms(&self) -> u64 {
        self.silent_since
            .map_or(0, |since| since.elapsed().as_millis() as u64)
    }

    /// "hv3 did not answer (…)".
    fn silence(&self) -> String {
        format!("{} did not answer ({})", self.host, self.observed)
    }

    /// Where the guest stands on this host; Silent while the host does not answer.
    fn standing(&mut self, key: &DomainKey, timeout: Duration) -> HostAnswer {
        let Some(connection) = self.get(timeout) else {
            return HostAnswer::Silent {
                why: self.silence(),
            };
        };
        let answer = connection.domain_standing(key, timeout);
        if let HostAnswer::Silent { why } = &answer {
            self.failed(why.clone());
        }
        answer
    }
}

/// How one launch call ended.
enum CallEnd {
    Returned(Result<(), LibvirtError>),
    /// Refused before anything moved: another job runs on the guest (seen by ferry's last look
    /// just before the call, or by libvirt itself).
    RefusedBusy(String),
}

struct Monitor<'a> {
    plan: &'a LiveMigrationPlan,
    updates: &'a Sender<MigrationUpdate>,
    source: Link,
    destination: Link,
    /// The guest by UUID once read (a same-named domain elsewhere could be another guest).
    key: DomainKey,
    progress: ProgressModel,
    policy: Box<dyn MigrationPolicy + Send>,
    started: Instant,
    /// When this process's launch call went out (None for an attached migration).
    launched_at: Option<Instant>,
    in_post_copy: bool,
    paused_by_ferry: bool,
    abort_requested: Option<String>,
    /// Source paths of the disks a block migration copies.
    copied_disk_paths: Vec<String>,
    /// Volumes ferry created on the destination for them: removed again on a rollback.
    precreated_on_destination: Vec<String>,
    ownership: Ownership,
    polls: u32,
    /// Launch calls made (the first, then post-copy resumes): a late answer from an earlier
    /// call is recognised and ignored.
    calls_made: u32,
    recoveries: u32,
    migrate_inbox: Sender<Inbox>,
    /// Where the migration stream goes: the port the resume reconnects to.
    stream: MigrationStream,
    /// When the last post-copy resume was sent.
    recovery_sent_at: Option<Instant>,
    /// The first launch call's connection, to tell a dropped connection from libvirt's answer.
    launcher: Option<HostConnection>,
}

impl Monitor<'_> {
    fn send(&self, update: MigrationUpdate) {
        let _ = self.updates.send(update);
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn on_domain<T: Send + 'static>(
        &mut self,
        what: &str,
        call: impl FnOnce(&Domain) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let Some(connection) = self.source.get(self.plan.call_timeout) else {
            return Err(LibvirtError::Call {
                context: what.to_string(),
                message: format!("{}; reconnecting", self.source.silence()),
            });
        };
        let result = on_domain(
            &connection,
            &self.plan.instance_name,
            self.plan.call_timeout,
            what,
            call,
        );
        if let Err(error) = &result {
            if !connection.is_alive(ALIVE_CHECK_TIMEOUT) {
                self.source.failed(error.to_string());
            }
        }
        result
    }

    fn report_silence(&self, link_is_source: bool) {
        let link = if link_is_source {
            &self.source
        } else {
            &self.destination
        };
        self.send(MigrationUpdate::Silent {
            host: link.host.clone(),
            silent_for_ms: link.silent_for_ms(),
            observed: link.observed.clone(),
            figures: link_is_source,
        });
    }

    fn report_answer(&mut self, link_is_source: bool) {
        let link = if link_is_source {
            &mut self.source
        } else {
            &mut self.destination
        };
        if let Some(silent_for_ms) = link.answered() {
            let host = link.host.clone();
            self.send(MigrationUpdate::Reconnected {
                host,
                silent_for_ms,
            });
        }
    }

    fn poll(&mut self) -> Poll {
        let poll = self.poll_source();
        self.polls = self.polls.wrapping_add(1);
        if matches!(poll, Poll::Sampled | Poll::Failed)
            && (self.in_post_copy || self.polls.is_multiple_of(DESTINATION_CHECK_EVERY_POLLS))
            && self.progress.phase() != MigrationPhase::Preparing
            && self.destination_reports_broken_post_copy()
        {
            return Poll::PostCopyBroken;
        }
        poll
    }

    /// Asks the destination where the guest stands; true if it says post-copy failed.
    fn destination_reports_broken_post_copy(&mut self) -> bool {
        self.standing_on(false)
            .standing()
            .is_some_and(|s| s.post_copy_failed)
    }

    /// Where the guest stands on the source or the destination, reporting a silence when it
    /// begins to last and the answer that ends it.
    fn standing_on(&mut self, link_is_source: bool) -> HostAnswer {
        let key = self.key.clone();
        let timeout = self.plan.call_timeout;
        let answer = if link_is_source {
            self.source.standing(&key, timeout)
        } else {
            self.destination.standing(&key, timeout)
        };
        if answer.is_silent() {
            self.report_silence(link_is_source);
        } else {
            self.report_answer(link_is_source);
        }
        answer
    }

    fn poll_source(&mut self) -> Poll {
        let Some(connection) = self.source.get(self.plan.call_timeout) else {
            self.report_silence(true);
            return Poll::Failed;
        };
        let instance = self.plan.instance_name.clone();
        let result = connection.call(
            format!("reading job statistics ({instance})"),
            self.plan.call_timeout,
            move |connect| match connect.lookup_domain_by_name(&instance) {
                // A shut-off domain has no job (and libvirt refuses to be asked).
                Ok(domain) if !domain.is_active().unwrap_or(true) => Ok(Some(None)),
                Ok(domain) => {
                    let standing = standing::read_standing(&domain)?;
                    if standing.post_copy_failed {
                        return Ok(Some(Some(Err(()))));
                    }
                    job_stats::job_stats(&domain, false).map(|job| Some(job.map(Ok)))
                }
                Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(None),
                Err(error) => Err(LibvirtError::call(format!("looking up {instance}"), error)),
            },
        );
        if result.is_ok() {
            self.report_answer(true);
        }
        match result {
            Ok(None) => Poll::DomainGone,
            Ok(Some(None)) => Poll::NoJob,
            Ok(Some(Some(Err(())))) => Poll::PostCopyBroken,
            Ok(Some(Some(Ok(mut sample)))) => {
                sample.sampled_at_ms = self.elapsed_ms();
                if let Some(launched_at) = self.launched_at {
                    let since_launch_ms = launched_at.elapsed().as_millis() as u64;
                    let job_age_ms = sample.time_elapsed_ms.unwrap_or(u64::MAX);
                    if sample.operation == Some(JobOperation::MigrationOut)
                        && job_age_ms <= since_launch_ms + JOB_AGE_SLACK_MS
                    {
                        self.ownership.saw_this_attempts_job = true;
                    }
                }
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
                self.source.failed(error.to_string());
                self.report_silence(true);
                Poll::Failed
            }
        }
    }

    /// How the job that just ended on the source ended, from libvirt's completed-job record.
    fn completed_job_type(&mut self) -> Option<JobType> {
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
            OperatorCommand::RecoverPostCopy => Err(
                "nothing to recover: the post-copy stream is not broken (ferry resumes a broken \
                 one by itself)"
                    .to_string(),
            ),
        };
        self.reply(result)
    }

    fn reply(&self, result: CommandReply) -> CommandReply {
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

    /// Waits up to `wait` while the outcome is being settled, answering commands: only a
    /// post-copy recovery applies now. True if the operator asked to recover at once.
    fn wait_settling(&mut self, inbox: &Receiver<Inbox>, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match inbox.recv_timeout(left) {
                Ok(Inbox::Command {
                    command: OperatorCommand::RecoverPostCopy,
                    reply,
                }) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok("resuming the broken post-copy now".into()));
                    }
                    return true;
                }
                Ok(Inbox::Command { command, reply }) => {
                    let answer = self.reply(Err(format!(
                        "{command:?}: the migration job has ended; ferry is settling its outcome \
                         from both hosts' answers"
                    )));
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                }
                // A late answer of an earlier call: the settle loop reads the hosts instead.
                Ok(Inbox::MigrateReturned { .. }) => {}
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(left);
                    return false;
                }
            }
        }
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
    let source_before = source.domain_standing(&by_name, plan.call_timeout);
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
                match monitor.destination.standing(&key, plan.call_timeout) {
                    HostAnswer::Holds(_) => Some(true),
                    HostAnswer::Absent => Some(false),
                    HostAnswer::Silent { .. } => None,
                };
            // The migrate call blocks for the whole migration: it gets a connection of its own
            // so the monitor's polls never queue behind it.
            let launcher = match HostConnection::open(&plan.source.uri, plan.call_timeout) {
                Ok(c) => c,
                Err(e) => {
                    return fail(format!(
                        "not started: {} did not answer ({e})",
                        plan.source.name
                    ))
                }
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
            monitor.calls_made += 1;
            monitor.launcher = Some(launcher.clone());
            launch(
                plan,
                launcher,
                flags,
                monitor.calls_made,
                monitor.stream.clone(),
                monitor.migrate_inbox.clone(),
            );
            monitor.launched_at = Some(Instant::now());
            monitor.progress.on_event(EngineEvent::MigrationStarted);
            waiting_for_call = true;
        }
        Mode::Attach => {
            let instance = plan.instance_name.clone();
            let connection = monitor.source.get(plan.call_timeout);
            let found = match connection {
                Some(connection) => connection.call(
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
                        Err(error) => {
                            Err(LibvirtError::call(format!("looking up {instance}"), error))
                        }
                    },
                ),
                None => Err(LibvirtError::Call {
                    context: "reading the running job".into(),
                    message: monitor.source.silence(),
                }),
            };
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
                // The job ended while ferry was away (or post-copy broke): only the outcome
                // is left to settle, from both hosts' answers.
                Ok(Some(_)) | Ok(None) => {
                    let result = if matches!(found, Ok(Some(_))) {
                        ended_job_result(&mut monitor)
                    } else {
                        Ok(())
                    };
                    match settle_outcome(&mut monitor, inbox, result) {
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
            match watch(&mut monitor, inbox, waiting_for_call, &mut start_decisions) {
                Ok(result) => result,
                Err(refusal) => {
                    // Nothing moved and nothing on the destination is this attempt's but the
                    // volumes it made for the copy.
                    remove_precreated_volumes(&mut monitor);
                    return fail(format!("not started: {refusal}"));
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
        match settle_outcome(&mut monitor, inbox, migrate_result) {
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

/// "a migration job", for the refusal.
fn job_words(job: RunningJob) -> &'static str {
    match job {
        RunningJob::MigrationOut => "a migration job",
        RunningJob::MigrationIn => "an incoming migration job",
        RunningJob::Other => "a job",
    }
}

/// Commands that arrived as the migration ended: answer them, do nothing.
fn answer_late_commands(monitor: &Monitor, inbox: &Receiver<Inbox>) {
    while let Ok(message) = inbox.try_recv() {
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
}

/// Watches the job until it ends: the launch call returning (`waiting_for_call`), or, when
/// following a job whose caller is gone (a dropped connection, an attached migration), the
/// source reporting no job. Err: the launch was refused because another job runs.
fn watch(
    monitor: &mut Monitor,
    inbox: &Receiver<Inbox>,
    mut waiting_for_call: bool,
    start_decisions: &mut Option<Vec<PolicyEvent>>,
) -> Result<Result<(), LibvirtError>, String> {
    let plan = monitor.plan;
    let mut next_poll_at = Instant::now() + plan.poll_interval;
    loop {
        let wait = next_poll_at.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(wait) {
            Ok(Inbox::MigrateReturned { call, end }) if call == monitor.calls_made => match end {
                CallEnd::RefusedBusy(reason) => {
                    monitor.ownership.launch_refused_for_another_job = true;
                    return Err(reason);
                }
                CallEnd::Returned(Ok(())) => return Ok(Ok(())),
                CallEnd::Returned(Err(error)) => {
                    if libvirt_refused_for_another_job(&error) {
                        monitor.ownership.launch_refused_for_another_job = true;
                        return Err(error.to_string());
                    }
                    // The call's own connection dropped: libvirt carries on with the job on
                    // the source. Follow it to its end, as `ferry resume` does.
                    if waiting_for_call && call_lost_its_connection(monitor, &error) {
                        waiting_for_call = false;
                        monitor.send(MigrationUpdate::Warning {
                            message: format!(
                                "the launch call lost its connection to {} ({error}); the \
                                 migration goes on in {}'s libvirtd: ferry reconnects and \
                                 watches it to its end",
                                plan.source.name, plan.source.name
                            ),
                        });
                        continue;
                    }
                    return Ok(Err(error));
                }
            },
            // A late answer from an earlier call (before a post-copy resume).
            Ok(Inbox::MigrateReturned { .. }) => continue,
            Ok(Inbox::Command { command, reply }) => {
                let answer = monitor.operator(command);
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if waiting_for_call => {
                return Ok(Err(LibvirtError::Call {
                    context: "migration".into(),
                    message: "the migrate call ended without a result".into(),
                }))
            }
            Err(RecvTimeoutError::Disconnected) => thread::sleep(wait),
        }
        next_poll_at = Instant::now() + plan.poll_interval;
        let poll = monitor.poll();
        // Start-time decisions (initial max downtime) apply once the job exists.
        if monitor.progress.phase() != MigrationPhase::Preparing || monitor.elapsed_ms() > 2_000 {
            for decision in start_decisions.take().unwrap_or_default() {
                monitor.apply_policy(decision);
            }
        }
        match poll {
            // A resume just sent: the hosts say "post-copy failed" until QEMU has picked the
            // stream up again; its call returning says how it went.
            Poll::PostCopyBroken
                if monitor
                    .recovery_sent_at
                    .is_some_and(|at| at.elapsed() < RECOVERY_GRACE) => {}
            Poll::PostCopyBroken => {
                return Ok(Err(LibvirtError::Call {
                    context: "post-copy".into(),
                    message: "the post-copy stream broke".into(),
                }))
            }
            Poll::NoJob if !waiting_for_call => return Ok(ended_job_result(monitor)),
            Poll::DomainGone if !waiting_for_call => return Ok(Ok(())),
            _ => {}
        }
    }
}

/// libvirt's own refusal of a second job on the domain ("another migration job is already
/// running", or the job lock held by another call).
fn libvirt_refused_for_another_job(error: &LibvirtError) -> bool {
    let text = error.to_string();
    text.contains("another migration job is already running")
        || text.contains("cannot acquire state change lock")
}

/// Whether the launch call failed because ferry's own connection under it dropped (rather
/// than libvirt answering that the migration failed): libvirt says so of that connection.
fn call_lost_its_connection(monitor: &mut Monitor, error: &LibvirtError) -> bool {
    let lost = monitor
        .launcher
        .as_ref()
        .is_some_and(|launcher| !launcher.is_alive(ALIVE_CHECK_TIMEOUT));
    if lost {
        monitor.launcher = None;
        monitor.source.failed(error.to_string());
    }
    lost
}

/// What the outcome check leads to: an outcome, or back to watching a job still running.
enum SettleStep {
    Outcome(LiveOutcome),
    WatchAgain { waiting_for_call: bool },
}

/// Settles the outcome from both hosts' answers, asking again with backoff while one is
/// silent, up to the settle bound; resumes a broken post-copy when both answer.
fn settle_outcome(
    monitor: &mut Monitor,
    inbox: &Receiver<Inbox>,
    migrate_result: Result<(), LibvirtError>,
) -> SettleStep {
    let plan = monitor.plan;
    let deadline = Instant::now() + SETTLE_BOUND;
    let mut attempt = 0;
    let mut broken_reported = false;
    let mut recover_now = false;
    loop {
        let on_source = monitor.standing_on(true);
        let on_destination = monitor.standing_on(false);
        let verdict = settle(
            &plan.source.name,
            &on_source,
            &plan.destination.name,
            &on_destination,
            monitor.in_post_copy,
        );
        let left = deadline.saturating_duration_since(Instant::now());
        match verdict {
            Settlement::Unsettled { waiting_for } => {
                let observed = [&on_source, &on_destination]
                    .into_iter()
                    .filter_map(|answer| match answer {
                        HostAnswer::Silent { why } => Some(why.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if left.is_zero() {
                    return SettleStep::Outcome(LiveOutcome::Unsettled {
                        detail: format!(
                            "still waiting for {waiting_for} after {} s{}",
                            SETTLE_BOUND.as_secs(),
                            if observed.is_empty() {
                                String::new()
                            } else {
                                format!(" ({observed})")
                            }
                        ),
                    });
                }
                monitor.send(MigrationUpdate::Unsettled {
                    waiting_for: format!("waiting for {waiting_for} to settle the outcome"),
                    gives_up_in_ms: left.as_millis() as u64,
                });
            }
            Settlement::StillMigrating => {
                monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "the migration job still runs on {}: watching it to its end",
                        plan.source.name
                    ),
                });
                return SettleStep::WatchAgain {
                    waiting_for_call: false,
                };
            }
            Settlement::PostCopyBroken => {
                monitor.in_post_copy = true;
                let both_answer = !on_source.is_silent() && !on_destination.is_silent();
                let detail = broken_post_copy_words(plan, &on_source, &on_destination);
                if !broken_reported {
                    monitor.send(MigrationUpdate::PostCopyBroken {
                        detail: detail.clone(),
                    });
                    broken_reported = true;
                }
                let may_try = recover_now || monitor.recoveries < POST_COPY_RECOVERY_ATTEMPTS;
                if both_answer && may_try {
                    recover_now = false;
                    monitor.recoveries += 1;
                    let attempt_number = monitor.recoveries;
                    match start_post_copy_recovery(monitor) {
                        Ok(Recovery::StreamAlive(words)) => {
                            // Not an attempt: nothing was broken to resume.
                            monitor.recoveries -= 1;
                            monitor.send(MigrationUpdate::Warning { message: words });
                            return SettleStep::WatchAgain {
                                waiting_for_call: false,
                            };
                        }
                        Ok(Recovery::Resumed(words)) => {
                            monitor.send(MigrationUpdate::PostCopyRecovery {
                                attempt: attempt_number,
                                result: Ok(words),
                            });
                            // No call blocks for a resumed stream: the job's end is watched.
                            return SettleStep::WatchAgain {
                                waiting_for_call: false,
                            };
                        }
                        Err(error) => monitor.send(MigrationUpdate::PostCopyRecovery {
                            attempt: attempt_number,
                            result: Err(error.to_string()),
                        }),
                    }
                }
                if left.is_zero() || (!may_try && both_answer) {
                    return SettleStep::Outcome(LiveOutcome::Unsettled {
                        detail: format!(
                            "{detail}; not resumed after {} attempts: `ferry recover {}` tries \
                             again (nothing was rolled back or removed)",
                            monitor.recoveries, plan.instance_name
                        ),
                    });
                }
            }
            Settlement::Moved {
                source_kept_definition,
            } => return SettleStep::Outcome(complete(monitor, source_kept_definition)),
            Settlement::StayedOnSource => {
                return SettleStep::Outcome(roll_back(monitor, migrate_result, &on_destination))
            }
            Settlement::Contradiction { detail } => {
                return SettleStep::Outcome(LiveOutcome::Failed {
                    detail: format!(
                        "{}: {detail}; nothing was touched: check both hosts",
                        describe_result(&migrate_result, &monitor.abort_requested)
                    ),
                })
            }
        }
        let wait = Duration::from_secs(backoff_seconds(attempt)).min(left);
        attempt += 1;
        recover_now |= monitor.wait_settling(inbox, wait);
    }
}

/// "post-copy broken: busy paused on hv2, memory split with hv3; resuming when both answer".
fn broken_post_copy_words(
    plan: &LiveMigrationPlan,
    on_source: &HostAnswer,
    on_destination: &HostAnswer,
) -> String {
    let where_paused = if on_source.standing().is_some_and(|s| s.paused) {
        format!("paused on {}", plan.source.name)
    } else if on_destination.standing().is_some_and(|s| s.paused) {
        format!("paused on {}", plan.destination.name)
    } else {
        format!("running on {}", plan.destination.name)
    };
    let waiting = match (on_source.is_silent(), on_destination.is_silent()) {
        (false, false) => "resuming it".to_string(),
        (true, false) => format!("resuming when {} answers", plan.source.name),
        (false, true) => format!("resuming when {} answers", plan.destination.name),
        (true, true) => "resuming when both answer".to_string(),
    };
    format!(
        "post-copy broken: {} {where_paused}, memory split between {} and {}; {waiting}",
        plan.instance_name, plan.source.name, plan.destination.name
    )
}

fn describe_result(
    migrate_result: &Result<(), LibvirtError>,
    abort_requested: &Option<String>,
) -> String {
    match (migrate_result, abort_requested) {
        (_, Some(reason)) => reason.clone(),
        (Err(error), None) => error.to_string(),
        (Ok(()), None) => "libvirt reported success".to_string(),
    }
}

/// Resumes the broken post-copy: the same migration, picked up where its stream broke, by
/// the source's QEMU reconnecting to the destination's listener (see
/// `HostConnection::resume_post_copy_stream` for why not libvirt's POSTCOPY_RESUME). The call
/// returns at once; libvirt finishes both jobs, which the watch follows.
fn start_post_copy_recovery(monitor: &mut Monitor) -> Result<Recovery, LibvirtError> {
    let plan = monitor.plan;
    let source = monitor
        .source
        .connection(plan.call_timeout, "resuming post-copy")?;
    let port = monitor.stream.port_in_use();
    let qemu_uri = monitor.stream.qemu_uri(port);
    monitor.recovery_sent_at = Some(Instant::now());
    let reply =
        source.resume_post_copy_stream(&plan.instance_name, &qemu_uri, plan.call_timeout)?;
    // Seen on the lab with a 60 s link cut: libvirt's own connection between the hosts timed
    // out, so libvirt says "post-copy failed", while QEMU's stream survived the cut and went on.
    // QEMU then has nothing to resume: the migration is alive and is watched to its end.
    if reply.contains(QEMU_STREAM_ALIVE) {
        return Ok(Recovery::StreamAlive(format!(
            "libvirt reports the post-copy failed, but QEMU's stream to {qemu_uri} is alive (\
             no paused migration to resume): watching it finish"
        )));
    }
    if reply.contains("\"error\"") {
        return Err(LibvirtError::Call {
            context: format!("resuming post-copy to {qemu_uri}"),
            message: format!("QEMU refused: {reply}"),
        });
    }
    Ok(Recovery::Resumed(format!(
        "post-copy resumed: {}'s QEMU reconnected to {qemu_uri}; {} fetches its remaining \
         memory again",
        plan.source.name, plan.destination.name
    )))
}

/// QEMU's answer to `migrate resume` when its migration is not paused (the stream never broke).
const QEMU_STREAM_ALIVE: &str = "Cannot resume if there is no paused migration";

/// What a resume found.
enum Recovery {
    /// The stream broke and is resumed.
    Resumed(String),
    /// libvirt said failed, QEMU's stream never broke: nothing to resume.
    StreamAlive(String),
}

/// The guest runs on the destination alone: finish what the migration leaves behind.
fn complete(monitor: &mut Monitor, source_kept_definition: bool) -> LiveOutcome {
    let plan = monitor.plan;
    let total_time_ms = monitor.elapsed_ms();
    let instance = plan.instance_name.clone();
    if source_kept_definition {
        // UNDEFINE_SOURCE is carried out by the migrate call's own confirm step; when its
        // caller died mid-way, libvirt leaves the inactive source definition behind.
        let undefined = monitor.on_domain("removing the source's inactive definition", |d| {
            if d.is_active().unwrap_or(true) {
                return Ok(false);
            }
            d.undefine()
                .map(|_| true)
                .map_err(|e| LibvirtError::call("undefining", e))
        });
        monitor.send(MigrationUpdate::Warning {
            message: match undefined {
                Ok(true) => "the source kept an inactive definition (libvirt did not carry \
                             out UNDEFINE_SOURCE: its migrate call lost its caller, or the \
                             post-copy was resumed); removed, as UNDEFINE_SOURCE asks"
                    .to_string(),
                Ok(false) => "the source's copy became active again; left alone".to_string(),
                Err(error) => format!("the source's inactive definition stays: {error}"),
            },
        });
    }
    let destination = monitor.destination.get(plan.call_timeout);
    // Nova's force-complete without post-copy pauses the guest: it resumes where it ends.
    let final_job = destination.as_ref().and_then(|destination| {
        if !plan.guest_was_paused {
            let _ = on_domain(
                destination,
                &instance,
                plan.call_timeout,
                "resuming",
                resume_if_paused,
            );
        }
        on_domain(
            destination,
            &instance,
            plan.call_timeout,
            "reading the completed job",
            |d| job_stats::job_stats(d, true),
        )
        .ok()
        .flatten()
    });
    // The move is verified (runs on the destination, gone from the source): the source's
    // copies of the block-migrated disks are stale now, as Nova removes them after a
    // block migration. Only the disks this migration copied, never shared ones.
    if !monitor.copied_disk_paths.is_empty() {
        let paths = monitor.copied_disk_paths.clone();
        let left = match monitor.source.get(plan.call_timeout) {
            Some(source) => source.call(
                "removing the source's copies of the migrated disks",
                plan.call_timeout,
                move |source| Ok(crate::libvirt::storage::delete_volumes(source, &paths)),
            ),
            None => Err(LibvirtError::Call {
                context: "removing the source's copies of the migrated disks".into(),
                message: monitor.source.silence(),
            }),
        };
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
    LiveOutcome::Completed {
        downtime_ms: final_job.as_ref().and_then(|j| j.real_downtime_ms),
        total_time_ms,
        data_transferred_bytes: final_job.and_then(|j| j.data_processed_bytes),
    }
}

/// The guest still runs on the source: resume it if ferry paused it, and remove from the
/// destination only what this attempt made.
fn roll_back(
    monitor: &mut Monitor,
    migrate_result: Result<(), LibvirtError>,
    on_destination: &HostAnswer,
) -> LiveOutcome {
    let plan = monitor.plan;
    let mut detail = match (&migrate_result, &monitor.abort_requested) {
        (Ok(()), None) => {
            "libvirt reported success but the guest still runs on the source".to_string()
        }
        (Err(error), None) => format!("libvirt ended the migration ({error})"),
        _ => describe_result(&migrate_result, &monitor.abort_requested),
    };
    // What was observed around it, beside libvirt's words.
    for silence in [
        monitor.source.silence_observed(),
        monitor.destination.silence_observed(),
    ]
    .into_iter()
    .flatten()
    {
        detail.push_str(&format!("; {silence} during the migration"));
    }
    if !plan.guest_was_paused {
        let _ = monitor.on_domain("resuming on the source", resume_if_paused);
    }
    if on_destination.standing().is_some() {
        if monitor.ownership.owns_destination_copy() {
            let removed = monitor
                .destination
                .get(plan.call_timeout)
                .map(|destination| {
                    let key = monitor.key.clone();
                    destination.remove_domain_copy(&key, plan.call_timeout)
                });
            match removed {
                Some(Ok(done)) if done.is_empty() => {}
                Some(Ok(done)) => monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "rollback: this attempt's copy on {}: {}",
                        plan.destination.name,
                        done.join(", ")
                    ),
                }),
                Some(Err(error)) => monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "rollback: the copy on {} stays: {error}",
                        plan.destination.name
                    ),
                }),
                None => monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "rollback: the copy on {} stays: {}",
                        plan.destination.name,
                        monitor.destination.silence()
                    ),
                }),
            }
        } else {
            monitor.send(MigrationUpdate::Warning {
                message: format!(
                    "{} {}: left alone, since {}",
                    plan.destination.name,
                    on_destination.describe(),
                    monitor.ownership.why_not_ours()
                ),
            });
        }
    }
    remove_precreated_volumes(monitor);
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

/// The volumes this attempt created on the destination for a block migration: its own, so a
/// rollback removes them (never a volume that was there before: those were not created).
fn remove_precreated_volumes(monitor: &mut Monitor) {
    if monitor.precreated_on_destination.is_empty() {
        return;
    }
    let plan = monitor.plan;
    let paths = std::mem::take(&mut monitor.precreated_on_destination);
    let left = match monitor.destination.get(plan.call_timeout) {
        Some(destination) => destination
            .call(
                "removing the volumes made for the copy",
                plan.call_timeout,
                move |destination| Ok(crate::libvirt::storage::delete_volumes(destination, &paths)),
            )
            .unwrap_or_else(|error| vec![error.to_string()]),
        None => vec![monitor.destination.silence()],
    };
    if !left.is_empty() {
        monitor.send(MigrationUpdate::Warning {
            message: format!(
                "rollback: volumes left on {}: {}",
                plan.destination.name,
                left.join("; ")
            ),
        });
    }
}

/// Where QEMU's migration stream goes: the destination host as ferry reaches it, and the
/// ports to try, in order, from libvirt's default range (49152–49215). The first is the same
/// for a given guest and destination every time, so a ferry that takes the migration over after
/// a restart knows where to resume it.
#[derive(Debug, Clone)]
pub struct MigrationStream {
    pub host: String,
    pub ports: Vec<u16>,
    /// The port the launch call is using now (shared with its thread).
    in_use: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

/// libvirt's default `migration_port_min`…`migration_port_max` (qemu.conf).
const MIGRATION_PORT_MIN: u16 = 49152;
const MIGRATION_PORT_COUNT: u16 = 64;
/// Ports tried when the first is held by another migration to the same destination.
const MIGRATION_PORTS_TRIED: u16 = 4;

impl MigrationStream {
    pub fn for_migration(destination_uri: &str, instance: &str) -> MigrationStream {
        // FNV-1a: stable across runs and builds, unlike std's hasher.
        let hash = instance.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let first = (hash % u64::from(MIGRATION_PORT_COUNT)) as u16;
        let ports: Vec<u16> = (0..MIGRATION_PORTS_TRIED)
            .map(|i| MIGRATION_PORT_MIN + (first + i) % MIGRATION_PORT_COUNT)
            .collect();
        MigrationStream {
            host: uri_host(destination_uri),
            in_use: std::sync::Arc::new(std::sync::atomic::AtomicU16::new(ports[0])),
            ports,
        }
    }

    fn set_port_in_use(&self, port: u16) {
        self.in_use.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn port_in_use(&self) -> u16 {
        self.in_use.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `VIR_MIGRATE_PARAM_URI`: `tcp://hv3:49163`.
    pub fn libvirt_uri(&self, port: u16) -> String {
        format!("tcp://{}:{port}", self.host)
    }

    /// QEMU's own syntax for the same address: `tcp:hv3:49163`.
    pub fn qemu_uri(&self, port: u16) -> String {
        format!("tcp:{}:{port}", self.host)
    }
}

/// The host part of a libvirt URI: `qemu+ssh://root@hv3/system?…` → `hv3`.
fn uri_host(uri: &str) -> String {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal keeps its brackets: tcp://[fd00::3]:49163.
        return format!("[{}]", bracketed.split(']').next().unwrap_or_default());
    }
    host_port.split(':').next().unwrap_or_default().to_string()
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
    let source = monitor
        .source
        .connection(plan.call_timeout, "preparing the block migration")?;
    let destination = monitor
        .destination
        .connection(plan.call_timeout, "preparing the block migration")?;
    let to_create = paths.clone();
    let created = source.call_with(
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

/// Runs the blocking migrate call on its own thread; its end comes back through the inbox as
/// call number `call`. Just before migrating, on the call's own connection, it looks once more
/// for a job on the guest: one migration per instance, whoever started the other.
fn launch(
    plan: &LiveMigrationPlan,
    launcher: HostConnection,
    flags: u32,
    call: u32,
    stream: MigrationStream,
    inbox: Sender<Inbox>,
) {
    let mut parameters = MigrateParameters {
        bandwidth: plan.bandwidth_mib_per_second,
        // The cap holds in post-copy too (libvirt leaves that phase unlimited otherwise): the
        // operator capped the link, not a phase. MiB/s, like the pre-copy cap (virsh's
        // --postcopy-bandwidth passes it as is; given in bytes, 8 MiB/s became 8 TiB/s and a
        // post-copy meant to last a minute on the lab ended in 3 s).
        bandwidth_postcopy: plan
            .bandwidth_mib_per_second
            .filter(|_| plan.post_copy_permitted),
        migrate_disks: plan.block_migration_disks.clone(),
        ..Default::default()
    };
    let destination_uri = plan.destination.uri.clone();
    let instance = plan.instance_name.clone();
    let source_name = plan.source.name.clone();
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
                if let Some(what) = crate::libvirt::readings::job_in_progress(&domain)? {
                    let refusal = crate::precheck::JobInProgress {
                        host: source_name,
                        what,
                    }
                    .refusal(&instance);
                    return Ok(Err(refusal));
                }
                // The stream goes to a port ferry names, so that a broken post-copy can be
                // resumed to it; a port another migration holds is refused at once by the
                // destination, before anything moved, and the next one is tried.
                let mut last_error = None;
                for port in stream.ports.iter().copied() {
                    stream.set_port_in_use(port);
                    parameters.uri = Some(stream.libvirt_uri(port));
                    match domain.migrate_to_uri3(Some(&destination_uri), parameters.clone(), flags)
                    {
                        Ok(()) => return Ok(Ok(())),
                        Err(error) if error.message().contains("Address already in use") => {
                            last_error = Some(LibvirtError::call(context.clone(), error));
                        }
                        Err(error) => return Err(LibvirtError::call(context, error)),
                    }
                }
                Err(last_error.unwrap_or(LibvirtError::Call {
                    context,
                    message: "no migration port to try".into(),
                }))
            });
            let end = match result {
                Ok(Err(refusal)) => CallEnd::RefusedBusy(refusal),
                Ok(Ok(())) => CallEnd::Returned(Ok(())),
                Err(error) => CallEnd::Returned(Err(error)),
            };
            let _ = inbox.send(Inbox::MigrateReturned { call, end });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_goes_to_the_destination_host_on_a_port_stable_for_the_guest() {
        let uri = "qemu+ssh://root@hv3/system?command=/var/lib/ferry-lab/ssh/ssh&no_tty=1";
        let stream = MigrationStream::for_migration(uri, "busy");
        assert_eq!(stream.host, "hv3");
        assert_eq!(stream.ports.len(), 4);
        assert!(stream.ports.iter().all(|p| (49152..=49215).contains(p)));
        let again = MigrationStream::for_migration(uri, "busy");
        assert_eq!(
            stream.ports, again.ports,
            "a restarted ferry finds the same port"
        );
        assert_eq!(stream.port_in_use(), stream.ports[0]);
        let port = stream.ports[0];
        assert_eq!(stream.libvirt_uri(port), format!("tcp://hv3:{port}"));
        assert_eq!(stream.qemu_uri(port), format!("tcp:hv3:{port}"));
        // Consecutive, wrapping inside libvirt's range.
        for pair in stream.ports.windows(2) {
            assert!(pair[1] == pair[0] + 1 || (pair[0] == 49215 && pair[1] == 49152));
        }
    }

    #[test]
    fn uri_hosts() {
        assert_eq!(uri_host("qemu+ssh://root@hv1/system"), "hv1");
        assert_eq!(
            uri_host("qemu+tcp://node-7.example:16509/system"),
            "node-7.example"
        );
        assert_eq!(uri_host("qemu+ssh://[fd00::3]/system"), "[fd00::3]");
        assert_eq!(
            uri_host("qemu+ssh://admin@[fd00::3]:2222/system"),
            "[fd00::3]"
        );
    }
}
