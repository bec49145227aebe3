//! The watch of one running migration: the hosts' links (reconnected with backoff, silence
//! timed and reported), the poll of the source's job into the progress model and the policy,
//! and the operator's commands.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{
    CallEnd, CommandReply, HostTarget, Inbox, LiveMigrationPlan, MigrationStream, MigrationUpdate,
    OperatorCommand, ALIVE_CHECK_TIMEOUT, DESTINATION_CHECK_EVERY_POLLS, JOB_AGE_SLACK_MS,
    RECOVERY_GRACE,
};
use crate::engine::settle::{backoff_seconds, Ownership};
use crate::libvirt::job_control::JobPoll;
use crate::libvirt::lifecycle::DomainKey;
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::job::{JobOperation, JobType};
use crate::model::standing::HostAnswer;
use crate::policy::{MigrationPolicy, PolicyAction, PolicyEvent};
use crate::progress::{EngineEvent, MigrationPhase, ProgressModel};

/// What one poll of the source found.
pub(super) enum Poll {
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
pub(super) struct Link {
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
    pub(super) fn new(target: &HostTarget, connection: Option<HostConnection>) -> Link {
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
    pub(super) async fn get(&mut self, timeout: Duration) -> Option<HostConnection> {
        if let Some(connection) = &self.connection {
            return Some(connection.clone());
        }
        if Instant::now() < self.next_attempt_at {
            return None;
        }
        match HostConnection::connect(&self.uri, timeout).await {
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
    pub(super) async fn connection(
        &mut self,
        timeout: Duration,
        context: &str,
    ) -> Result<HostConnection, LibvirtError> {
        self.get(timeout).await.ok_or_else(|| LibvirtError::Call {
            context: context.to_string(),
            message: self.silence(),
        })
    }

    fn schedule_reconnect(&mut self) {
        self.next_attempt_at = Instant::now() + Duration::from_secs(backoff_seconds(self.attempts));
        self.attempts = self.attempts.saturating_add(1);
    }

    fn went_silent(&mut self, observed: String) {
        self.silent_since.get_or_insert_with(Instant::now);
        self.observed = observed;
    }

    /// A call on this host got no answer. A connection libvirt declares dead is dropped, so
    /// the next use reopens it; a live one that timed out is kept (the host may be slow).
    pub(super) async fn failed(&mut self, observed: String) {
        self.went_silent(observed);
        if let Some(connection) = &self.connection {
            if !connection.is_alive(ALIVE_CHECK_TIMEOUT).await {
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
    pub(super) fn silence_observed(&self) -> Option<String> {
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
    pub(super) fn silence(&self) -> String {
        format!("{} did not answer ({})", self.host, self.observed)
    }

    /// Where the guest stands on this host; Silent while the host does not answer.
    pub(super) async fn standing(&mut self, key: &DomainKey, timeout: Duration) -> HostAnswer {
        let Some(connection) = self.get(timeout).await else {
            return HostAnswer::Silent {
                why: self.silence(),
            };
        };
        let answer = connection.domain_standing(key, timeout).await;
        if let HostAnswer::Silent { why } = &answer {
            self.failed(why.clone()).await;
        }
        answer
    }
}

pub(super) struct Monitor<'a> {
    pub(super) plan: &'a LiveMigrationPlan,
    pub(super) updates: &'a mpsc::UnboundedSender<MigrationUpdate>,
    pub(super) source: Link,
    pub(super) destination: Link,
    /// The guest by UUID once read (a same-named domain elsewhere could be another guest).
    pub(super) key: DomainKey,
    pub(super) progress: ProgressModel,
    pub(super) policy: Box<dyn MigrationPolicy + Send>,
    pub(super) started: Instant,
    /// When this process's launch call went out (None for an attached migration).
    pub(super) launched_at: Option<Instant>,
    pub(super) in_post_copy: bool,
    pub(super) paused_by_ferry: bool,
    pub(super) abort_requested: Option<String>,
    /// Source paths of the disks a block migration copies.
    pub(super) copied_disk_paths: Vec<String>,
    /// Volumes ferry created on the destination for them: removed again on a rollback.
    pub(super) precreated_on_destination: Vec<String>,
    pub(super) ownership: Ownership,
    pub(super) polls: u32,
    /// Launch calls made (the first, then post-copy resumes): a late answer from an earlier
    /// call is recognised and ignored.
    pub(super) calls_made: u32,
    pub(super) recoveries: u32,
    pub(super) migrate_inbox: mpsc::UnboundedSender<Inbox>,
    /// Where the migration stream goes: the port the resume reconnects to.
    pub(super) stream: MigrationStream,
    /// When the last post-copy resume was sent.
    pub(super) recovery_sent_at: Option<Instant>,
    /// The first launch call's connection, to tell a dropped connection from libvirt's answer.
    pub(super) launcher: Option<HostConnection>,
}

impl Monitor<'_> {
    pub(super) fn send(&self, update: MigrationUpdate) {
        let _ = self.updates.send(update);
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The guest by name, as the source's operations look it up (the launch call too).
    pub(super) fn by_name(&self) -> DomainKey {
        DomainKey::Name(self.plan.instance_name.clone())
    }

    /// What every operation on the source takes: the guest by name and the call timeout.
    fn call_args(&self) -> (DomainKey, Duration) {
        (self.by_name(), self.plan.call_timeout)
    }

    /// Runs one operation on the source's connection. A failure on a connection libvirt
    /// declares dead marks the source silent, so the next use reconnects.
    pub(super) async fn on_source<T, Operation, Answer>(
        &mut self,
        operation: Operation,
    ) -> Result<T, LibvirtError>
    where
        Operation: FnOnce(HostConnection) -> Answer,
        Answer: std::future::Future<Output = Result<T, LibvirtError>>,
    {
        let Some(connection) = self.source.get(self.plan.call_timeout).await else {
            return Err(LibvirtError::Call {
                context: self.plan.source.name.clone(),
                message: format!("{}; reconnecting", self.source.silence()),
            });
        };
        let result = operation(connection.clone()).await;
        if let Err(error) = &result {
            if !connection.is_alive(ALIVE_CHECK_TIMEOUT).await {
                self.source.failed(error.to_string()).await;
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

    pub(super) async fn poll(&mut self) -> Poll {
        let poll = self.poll_source().await;
        self.polls = self.polls.wrapping_add(1);
        if matches!(poll, Poll::Sampled | Poll::Failed)
            && (self.in_post_copy || self.polls.is_multiple_of(DESTINATION_CHECK_EVERY_POLLS))
            && self.progress.phase() != MigrationPhase::Preparing
            && self.destination_reports_broken_post_copy().await
        {
            return Poll::PostCopyBroken;
        }
        poll
    }

    /// Asks the destination where the guest stands; true if it says post-copy failed.
    async fn destination_reports_broken_post_copy(&mut self) -> bool {
        self.standing_on(false)
            .await
            .standing()
            .is_some_and(|s| s.post_copy_failed)
    }

    /// Where the guest stands on the source or the destination, reporting a silence when it
    /// begins to last and the answer that ends it.
    pub(super) async fn standing_on(&mut self, link_is_source: bool) -> HostAnswer {
        let key = self.key.clone();
        let timeout = self.plan.call_timeout;
        let answer = if link_is_source {
            self.source.standing(&key, timeout).await
        } else {
            self.destination.standing(&key, timeout).await
        };
        if answer.is_silent() {
            self.report_silence(link_is_source);
        } else {
            self.report_answer(link_is_source);
        }
        answer
    }

    async fn poll_source(&mut self) -> Poll {
        let Some(connection) = self.source.get(self.plan.call_timeout).await else {
            self.report_silence(true);
            return Poll::Failed;
        };
        let result = connection
            .poll_migration_job(&self.by_name(), self.plan.call_timeout)
            .await;
        if result.is_ok() {
            self.report_answer(true);
        }
        match result {
            Ok(JobPoll::DomainGone) => Poll::DomainGone,
            Ok(JobPoll::NoJob) => Poll::NoJob,
            Ok(JobPoll::PostCopyFailed) => Poll::PostCopyBroken,
            Ok(JobPoll::Sampled(mut sample)) => {
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
                self.send(MigrationUpdate::Sample(sample.clone()));
                let snapshot = self.progress.on_sample(*sample);
                self.in_post_copy |= snapshot.phase == MigrationPhase::PostCopy;
                let decisions = self.policy.on_sample(&snapshot);
                self.send(MigrationUpdate::Progress(Box::new(snapshot)));
                for decision in decisions {
                    self.apply_policy(decision).await;
                }
                Poll::Sampled
            }
            Err(error) => {
                self.source.failed(error.to_string()).await;
                self.report_silence(true);
                Poll::Failed
            }
        }
    }

    /// How the job that just ended on the source ended, from libvirt's completed-job record.
    pub(super) async fn completed_job_type(&mut self) -> Option<JobType> {
        let (key, timeout) = self.call_args();
        self.on_source(move |source| async move { source.completed_job_stats(&key, timeout).await })
            .await
            .ok()
            .flatten()
            .and_then(|sample| sample.job_type)
    }

    pub(super) async fn apply_policy(&mut self, decision: PolicyEvent) {
        let result = match decision.action {
            PolicyAction::SetMaxDowntime { to_ms, .. } => self.set_max_downtime(to_ms).await,
            // Taken at start through the migration flags (see LiveMigrationPlan::request).
            PolicyAction::EnableAutoConverge => Ok(()),
            PolicyAction::StartPostCopy if !self.plan.post_copy_permitted => {
                Err(LibvirtError::Call {
                    context: "policy".into(),
                    message: "post-copy is not permitted for this migration".into(),
                })
            }
            PolicyAction::StartPostCopy => self.start_post_copy().await,
            PolicyAction::Pause => self.pause().await,
            PolicyAction::Abort => {
                self.abort_requested = Some(decision.reason.clone());
                self.abort_job().await
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

    async fn set_max_downtime(&mut self, downtime_ms: u64) -> Result<(), LibvirtError> {
        let (key, timeout) = self.call_args();
        self.on_source(move |source| async move {
            source.set_max_downtime_ms(&key, downtime_ms, timeout).await
        })
        .await
    }

    async fn abort_job(&mut self) -> Result<(), LibvirtError> {
        let (key, timeout) = self.call_args();
        self.on_source(move |source| async move { source.abort_migration_job(&key, timeout).await })
            .await
    }

    async fn start_post_copy(&mut self) -> Result<(), LibvirtError> {
        let (key, timeout) = self.call_args();
        self.on_source(move |source| async move { source.start_post_copy(&key, timeout).await })
            .await?;
        self.in_post_copy = true;
        self.progress.on_event(EngineEvent::PostCopyStarted);
        Ok(())
    }

    async fn pause(&mut self) -> Result<(), LibvirtError> {
        let (key, timeout) = self.call_args();
        self.on_source(move |source| async move { source.pause_domain(&key, timeout).await })
            .await?;
        self.paused_by_ferry = true;
        Ok(())
    }

    /// Carries out one operator command and reports it; the answer also goes back to the caller.
    pub(super) async fn operator(&mut self, command: OperatorCommand) -> CommandReply {
        let result = match command {
            OperatorCommand::Abort if self.in_post_copy => Err(
                "abort refused: the migration is in post-copy, the guest already runs \
                     on the destination and its memory is split between both hosts; \
                     it can only finish"
                    .to_string(),
            ),
            OperatorCommand::Abort => self
                .abort_job()
                .await
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
                .await
                .map(|_| "force-complete: switched to post-copy".to_string())
                .map_err(|e| e.to_string()),
            OperatorCommand::ForceComplete if self.paused_by_ferry => {
                Err("force-complete: the guest is already paused to converge".to_string())
            }
            OperatorCommand::ForceComplete => self
                .pause()
                .await
                .map(|_| {
                    "force-complete: guest paused so the remaining memory stops changing; \
                 it resumes wherever the migration ends"
                        .to_string()
                })
                .map_err(|e| e.to_string()),
            OperatorCommand::SetBandwidth { mib_per_second } => {
                let (key, timeout) = self.call_args();
                let post_copy = self.in_post_copy;
                self.on_source(move |source| async move {
                    source
                        .set_max_speed_mib_per_second(&key, mib_per_second, post_copy, timeout)
                        .await
                })
                .await
                .map(|_| format!("bandwidth set to {mib_per_second} MiB/s"))
                .map_err(|e| e.to_string())
            }
            OperatorCommand::SetMaxDowntime { downtime_ms } => self
                .set_max_downtime(downtime_ms)
                .await
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

    pub(super) fn reply(&self, result: CommandReply) -> CommandReply {
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
    pub(super) async fn wait_settling(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<Inbox>,
        wait: Duration,
    ) -> bool {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, inbox.recv()).await {
                Ok(Some(Inbox::Command {
                    command: OperatorCommand::RecoverPostCopy,
                    reply,
                })) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok("resuming the broken post-copy now".into()));
                    }
                    return true;
                }
                Ok(Some(Inbox::Command { command, reply })) => {
                    let answer = self.reply(Err(format!(
                        "{command:?}: the migration job has ended; ferry is settling its outcome \
                         from both hosts' answers"
                    )));
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                }
                // A late answer of an earlier call: the settle loop reads the hosts instead.
                Ok(Some(Inbox::MigrateReturned { .. })) => {}
                Err(_elapsed) => return false,
                // Never while the monitor holds its own sender; waits out the time all the same.
                Ok(None) => {
                    tokio::time::sleep(left).await;
                    return false;
                }
            }
        }
    }
}

/// Watches the job until it ends: the launch call returning (`waiting_for_call`), or, when
/// following a job whose caller is gone (a dropped connection, an attached migration), the
/// source reporting no job. Err: the launch was refused because another job runs.
pub(super) async fn watch(
    monitor: &mut Monitor<'_>,
    inbox: &mut mpsc::UnboundedReceiver<Inbox>,
    mut waiting_for_call: bool,
    start_decisions: &mut Option<Vec<PolicyEvent>>,
) -> Result<Result<(), LibvirtError>, String> {
    let plan = monitor.plan;
    let mut next_poll_at = tokio::time::Instant::now() + plan.poll_interval;
    loop {
        let message = tokio::select! {
            message = inbox.recv() => Some(message),
            () = tokio::time::sleep_until(next_poll_at) => None,
        };
        match message {
            Some(Some(Inbox::MigrateReturned { call, end })) if call == monitor.calls_made => {
                match end {
                    CallEnd::RefusedBusy(reason) => {
                        monitor.ownership.launch_refused_for_another_job = true;
                        return Err(reason);
                    }
                    CallEnd::Returned(Ok(())) => return Ok(Ok(())),
                    CallEnd::Returned(Err(error)) => {
                        if error.is_another_job_running() {
                            monitor.ownership.launch_refused_for_another_job = true;
                            return Err(error.to_string());
                        }
                        // The call's own connection dropped: libvirt carries on with the job on
                        // the source. Follow it to its end, as `ferry resume` does.
                        if waiting_for_call && call_lost_its_connection(monitor, &error).await {
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
                }
            }
            // A late answer from an earlier call (before a post-copy resume).
            Some(Some(Inbox::MigrateReturned { .. })) => continue,
            Some(Some(Inbox::Command { command, reply })) => {
                let answer = monitor.operator(command).await;
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
                continue;
            }
            // Time to poll.
            None => {}
            Some(None) if waiting_for_call => {
                return Ok(Err(LibvirtError::Call {
                    context: "migration".into(),
                    message: "the migrate call ended without a result".into(),
                }))
            }
            Some(None) => tokio::time::sleep_until(next_poll_at).await,
        }
        next_poll_at = tokio::time::Instant::now() + plan.poll_interval;
        let poll = monitor.poll().await;
        // Start-time decisions (initial max downtime) apply once the job exists.
        if monitor.progress.phase() != MigrationPhase::Preparing || monitor.elapsed_ms() > 2_000 {
            for decision in start_decisions.take().unwrap_or_default() {
                monitor.apply_policy(decision).await;
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
            Poll::NoJob if !waiting_for_call => return Ok(ended_job_result(monitor).await),
            Poll::DomainGone if !waiting_for_call => return Ok(Ok(())),
            _ => {}
        }
    }
}

/// Commands that arrived as the migration ended: answer them, do nothing.
pub(super) fn answer_late_commands(monitor: &Monitor, inbox: &mut mpsc::UnboundedReceiver<Inbox>) {
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

/// Whether the launch call failed because ferry's own connection under it dropped (rather
/// than libvirt answering that the migration failed): libvirt says so of that connection.
pub(super) async fn call_lost_its_connection(
    monitor: &mut Monitor<'_>,
    error: &LibvirtError,
) -> bool {
    let lost = match &monitor.launcher {
        Some(launcher) => !launcher.is_alive(ALIVE_CHECK_TIMEOUT).await,
        None => false,
    };
    if lost {
        monitor.launcher = None;
        monitor.source.failed(error.to_string()).await;
    }
    lost
}

/// An attached migration's job is gone from the source while the domain is still there: the
/// source's completed-job record says whether it completed, failed or was cancelled.
pub(super) async fn ended_job_result(monitor: &mut Monitor<'_>) -> Result<(), LibvirtError> {
    match monitor.completed_job_type().await {
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
