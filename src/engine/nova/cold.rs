//! Nova cold migration and resize, carried out by Nova and watched by ferry: ferry checks the
//! server and the destination first (nothing is sent when a check refuses), asks Nova, finds
//! the migration Nova made, and follows the server until it waits in VERIFY_RESIZE for the
//! operator's confirm or revert, or Nova gives up. A refusal Nova makes after its 202 comes
//! back with Nova's own reason (the failed instance-action events and the server's fault).
//! The watch has an overall bound; when it runs out ferry says what it waited for and leaves
//! the history record unfinished rather than deciding on silence.
//!
//! What decides is pure (`judge_launch`, `judge_settle`, `failure_reason`) and unit-tested;
//! the rest reads Nova through the door, each call under the config's call timeout.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::preflight::{
    any_destination, destination_refusal, server_refusal, CloudFacts, Needs, NovaMove,
};
use super::{with_history, CloudSession, NovaMigrationPlan, NOVA_BACKEND};
use crate::engine::history::{unix_ms_now, EventKind, NewMigration, Outcome, OutcomeKind};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;
use crate::nova::types::{Flavor, Migration, MigrationFilter, MigrationType, Server, ServerFault};
use crate::nova::NovaError;

/// How long ferry follows a cold migration or resize before it says what it waited for.
/// Nova's own cold migration takes seconds to minutes (the disk is copied over ssh).
pub const WATCH_BOUND: Duration = Duration::from_secs(600);
/// Between two looks at the server.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long ferry looks for the migration record Nova makes after its 202.
const MIGRATION_LOOKUP_BOUND: Duration = Duration::from_secs(30);

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColdRequest {
    /// A cold migration; `to: None` lets the scheduler choose.
    Migrate { to: Option<String> },
    /// A resize to `flavor` (name or id). Nova's resize takes no host, so a `to` is refused
    /// before anything is sent: ferry will not promise a destination Nova cannot be held to.
    Resize { flavor: String, to: Option<String> },
}

impl ColdRequest {
    fn migration_type(&self) -> MigrationType {
        match self {
            ColdRequest::Migrate { .. } => MigrationType::Cold,
            ColdRequest::Resize { .. } => MigrationType::Resize,
        }
    }

    fn requested_host(&self) -> Option<&str> {
        match self {
            ColdRequest::Migrate { to } | ColdRequest::Resize { to, .. } => to.as_deref(),
        }
    }

    fn policy(&self) -> &'static str {
        match self {
            ColdRequest::Migrate { .. } => "nova",
            ColdRequest::Resize { .. } => "nova-resize",
        }
    }
}

/// What a launch ended in, for the summary line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdResult {
    pub server: String,
    pub server_id: String,
    pub source_host: String,
    /// Where Nova put it (the server's host in VERIFY_RESIZE).
    pub destination_host: String,
    pub nova_migration_id: Option<u64>,
    pub history_id: i64,
    pub outcome: OutcomeKind,
    pub flavor: Option<String>,
}

/// One door call under the config's call timeout, so no look at Nova can hang the watch.
async fn bounded<T, E>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T>
where
    anyhow::Error: From<E>,
{
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(anyhow::Error::from),
        Err(_) => bail!("{what}: no answer within {timeout:?} (the config's call timeout)"),
    }
}

/// ferry's pre-flight: the server's state, the flavor, the destination. Returns the server
/// and what the destination needs, or the refusal.
async fn preflight(
    session: &CloudSession,
    server: &Server,
    request: &ColdRequest,
) -> Result<Option<Flavor>> {
    let timeout = session.call_timeout();
    if let Some(refusal) = server_refusal(server, NovaMove::Cold) {
        bail!("{refusal}");
    }
    let flavor = match request {
        ColdRequest::Resize { to: Some(host), .. } => bail!(
            "Nova's resize takes no destination host (only a cold migration's `migrate` does, \
             from compute API 2.56), so ferry cannot hold it to {host}: resize without --to \
             and let the scheduler place it, or `ferry migrate {} --cold --to {host}` first",
            server.name
        ),
        ColdRequest::Resize { flavor, .. } => {
            let flavor = bounded(timeout, "find the flavor", session.client.flavor(flavor)).await?;
            if let Some(refusal) = flavor_refusal(server, &flavor) {
                bail!("{refusal}");
            }
            Some(flavor)
        }
        ColdRequest::Migrate { .. } => None,
    };
    let needs = flavor.as_ref().map_or(Needs::of(server), |flavor| Needs {
        memory_mib: flavor.memory_mib,
        vcpus: flavor.vcpus,
    });
    let services = bounded(
        timeout,
        "list compute services",
        session.client.compute_services(),
    )
    .await?;
    let hypervisors = bounded(timeout, "list hypervisors", session.client.hypervisors()).await?;
    let facts = CloudFacts {
        services: &services,
        hypervisors: &hypervisors,
    };
    // ferry cannot read allow_resize_to_same_host: a resize may stay on its own host if the
    // cloud allows it, and the scheduler decides; a cold migration never may.
    let resize = matches!(request, ColdRequest::Resize { .. });
    match request.requested_host() {
        Some(host) => {
            if let Some(refusal) = destination_refusal(&facts, server, host, needs, resize) {
                bail!("{refusal}");
            }
        }
        None => {
            let source = server.host.as_deref().unwrap_or_default();
            let own_host_fits =
                resize && destination_refusal(&facts, server, source, needs, true).is_none();
            if let Err(refusal) = any_destination(&facts, server, needs) {
                if !own_host_fits {
                    bail!("{refusal}");
                }
            }
        }
    }
    Ok(flavor)
}

/// Checks, launches and watches one cold migration or resize of `server_name`, reporting
/// each change through `report`. Ok when the server waits for confirm (or Nova confirmed it
/// itself); an error says why not: ferry's refusal (nothing sent), Nova's refusal with its
/// reason, or what ferry waited for when its bound ran out (the record stays unfinished).
pub async fn launch(
    session: &CloudSession,
    server_name: &str,
    request: &ColdRequest,
    report: &mut (dyn FnMut(&WatchLine) + Send),
) -> Result<ColdResult> {
    let timeout = session.call_timeout();
    let server = bounded(timeout, "find the server", session.find_server(server_name)).await?;
    let flavor = preflight(session, &server, request).await?;
    let source_host = server.host.clone().unwrap_or_default();
    let migration_type = request.migration_type();
    let filter = MigrationFilter {
        server_id: Some(server.id.clone()),
        migration_type: Some(migration_type),
        ..Default::default()
    };
    // What Nova had before: the new migration and action are the ones not in these.
    let migrations_before: BTreeSet<u64> = bounded(
        timeout,
        "list the server's migrations",
        session.client.os_migrations(&filter),
    )
    .await?
    .iter()
    .map(|migration| migration.record.id)
    .collect();
    let actions_before: BTreeSet<String> = bounded(
        timeout,
        "list the server's instance actions",
        session.client.instance_actions(&server.id),
    )
    .await?
    .into_iter()
    .map(|action| action.request_id)
    .collect();

    let plan = NovaMigrationPlan {
        backend: NOVA_BACKEND.to_string(),
        cloud: session.name().to_string(),
        server_id: server.id.clone(),
        server_name: server.name.clone(),
        nova_migration_id: None,
        migration_type: migration_type.as_str().to_string(),
        requested_host: request.requested_host().map(str::to_string),
        flavor: flavor.as_ref().map(|f| f.name.clone()),
    };
    let started = Instant::now();
    let launched = match request {
        ColdRequest::Migrate { to } => {
            bounded(
                timeout,
                "cold-migrate",
                session.client.cold_migrate(&server.id, to.as_deref()),
            )
            .await
        }
        ColdRequest::Resize { .. } => {
            let flavor_id = flavor.as_ref().map(|f| f.id.clone()).unwrap_or_default();
            bounded(
                timeout,
                "resize",
                session.client.resize(&server.id, &flavor_id),
            )
            .await
        }
    };
    // A refusal Nova answered (400, 403, 409, too old) means nothing happened. No answer at
    // all does not: Nova may have taken it, so ferry looks for the migration before it says.
    let unanswered = match launched {
        Ok(()) => None,
        Err(error) => {
            let timed_out = error.to_string().contains("no answer")
                || error
                    .downcast_ref::<NovaError>()
                    .is_some_and(NovaError::is_timeout);
            if !timed_out {
                return Err(error);
            }
            Some(error)
        }
    };
    let migration = find_new_migration(session, &filter, &migrations_before).await;
    if migration.is_none() {
        if let Some(error) = unanswered {
            return Err(error.context(format!(
                "Nova did not answer and no new migration of {} appeared within {:?}: \
                 check `openstack server migration list --server {}` before trying again",
                server.name, MIGRATION_LOOKUP_BOUND, server.id
            )));
        }
    }
    let plan = NovaMigrationPlan {
        nova_migration_id: migration.as_ref().map(|m| m.record.id),
        ..plan
    };
    let destination_known = migration
        .as_ref()
        .and_then(|m| m.record.dest_compute.clone())
        .or_else(|| request.requested_host().map(str::to_string))
        .unwrap_or_else(|| "auto".to_string());
    let started_at_unix_ms = unix_ms_now() - i64::try_from(started.elapsed().as_millis())?;
    let history_id = with_history(|history| {
        Ok(history.start_migration(&NewMigration {
            kind: MigrationKind::Cold,
            instance_name: server.name.clone(),
            instance_uuid: server.id.clone(),
            source_host: host_name(&source_host)?,
            destination_host: host_name(&destination_known)?,
            policy: request.policy().to_string(),
            plan: serde_json::to_value(&plan).context("writing the plan as JSON")?,
            started_at_unix_ms,
        })?)
    })?;
    let followed = Followed {
        server_id: server.id.clone(),
        server_name: server.name.clone(),
        source_host,
        history_id,
        started_at_unix_ms,
        plan,
        filter,
        migrations_before,
        actions_before,
    };
    followed.event(
        EventKind::Phase,
        &match &followed.plan.nova_migration_id {
            Some(id) => format!("Nova accepted it: migration {id}"),
            None => "Nova accepted it; its migration record was not found yet".to_string(),
        },
    );
    follow(session, &followed, Watch::new(started), None, report).await
}

/// One cold migration or resize Nova carries out, as ferry's watch follows it: from its
/// launch, or taken over from the history by `ferry resume`.
pub(super) struct Followed {
    pub(super) server_id: String,
    pub(super) server_name: String,
    pub(super) source_host: String,
    pub(super) history_id: MigrationId,
    /// When the history record started: its events are timed from here.
    pub(super) started_at_unix_ms: i64,
    pub(super) plan: NovaMigrationPlan,
    /// The server's migrations of the move's type, as os-migrations is asked for them.
    pub(super) filter: MigrationFilter,
    /// Nova's migrations and instance actions from before ferry asked: the move's own are
    /// the ones not in these.
    pub(super) migrations_before: BTreeSet<u64>,
    pub(super) actions_before: BTreeSet<String>,
}

impl Followed {
    fn what(&self) -> &'static str {
        if self.plan.migration_type == MigrationType::Resize.as_str() {
            "resize"
        } else {
            "cold migration"
        }
    }

    pub(super) fn event(&self, kind: EventKind, message: &str) {
        record_event(self.history_id, self.started_at_unix_ms, kind, message);
    }

    fn finish(&self, kind: OutcomeKind, detail: &str) {
        finish(self.history_id, kind, detail);
    }
}

/// One look at the server, with the status of Nova's migration of it once found.
pub(super) struct Look {
    pub(super) server: Server,
    pub(super) migration_status: Option<String>,
}

/// Follows the move until Nova decides it (the server waits in VERIFY_RESIZE, Nova confirmed
/// or reverted it itself, or Nova gave up) or the watch's bound runs out, and records the
/// verdict on the history record (nothing when the bound runs out: the record stays
/// unfinished). `first_look`, when given, is judged before ferry looks again. Never holds
/// the history across an await: every write goes through `with_history`.
pub(super) async fn follow(
    session: &CloudSession,
    followed: &Followed,
    mut watch: Watch,
    mut first_look: Option<Look>,
    report: &mut (dyn FnMut(&WatchLine) + Send),
) -> Result<ColdResult> {
    let server_name = &followed.server_name;
    let mut migration_id = followed.plan.nova_migration_id;
    loop {
        let look = match first_look.take() {
            Some(look) => look,
            None => {
                if watch.expired() {
                    let message = watch.gave_up(&format!(
                        "{server_name} to reach VERIFY_RESIZE (or Nova's migration to fail)"
                    ))
                        + ". The record stays unfinished: look again with `ferry resume`, \
                         or in Nova";
                    followed.event(EventKind::Error, &message);
                    bail!("{message}");
                }
                let server = match watch.look(session, &followed.server_id).await {
                    Ok(Some(now)) => now,
                    Ok(None) => continue,
                    Err(error) => {
                        let message = format!("{server_name}: {error:#}");
                        followed.finish(OutcomeKind::Failed, &message);
                        bail!("{message}");
                    }
                };
                let migration = match migration_id {
                    Some(id) => nova_migration(session, &followed.filter, id).await,
                    None => {
                        let found = find_new_migration_once(
                            session,
                            &followed.filter,
                            &followed.migrations_before,
                        )
                        .await;
                        migration_id = found.as_ref().map(|m| m.record.id);
                        if let Some(id) = migration_id {
                            followed.event(EventKind::Phase, &format!("Nova's migration {id}"));
                        }
                        found
                    }
                };
                Look {
                    server,
                    migration_status: migration.map(|m| m.record.status),
                }
            }
        };
        let now = look.server;
        let migration_status = look.migration_status.as_deref();
        if let Some(line) = watch.changed(&now, migration_status, report) {
            followed.event(EventKind::Phase, &line);
        }
        let (outcome, host) = match judge_resume(&now, migration_status, &followed.source_host) {
            ResumeVerdict::StillMoving => continue,
            ResumeVerdict::AwaitingConfirm { host } => (OutcomeKind::AwaitingConfirm, host),
            ResumeVerdict::ConfirmedByNova { host } => (OutcomeKind::Confirmed, host),
            ResumeVerdict::RevertedInNova { host } => {
                let message = format!(
                    "Nova reverted the {} of {server_name} (not this ferry): it is {} on {host}",
                    followed.what(),
                    now.status
                );
                followed.finish(OutcomeKind::Reverted, &message);
                bail!("{message}");
            }
            ResumeVerdict::Failed => {
                // Nova marks the migration `error` before it has rolled the server back and
                // written the fault; its reason is read once the server has no task left.
                let now =
                    settled_after_failure(session, now, &mut watch, migration_status, report).await;
                let reason = nova_reason(
                    session,
                    &followed.server_id,
                    &followed.actions_before,
                    now.fault.as_ref(),
                    migration_status,
                )
                .await;
                let message = format!(
                    "Nova refused the {} of {server_name}: {reason}; it is {} on {}",
                    followed.what(),
                    now.status,
                    now.host.as_deref().unwrap_or("?")
                );
                followed.finish(OutcomeKind::Failed, &message);
                bail!("{message}");
            }
        };
        let detail = if outcome == OutcomeKind::Confirmed {
            format!("Nova moved it to {host} and confirmed it itself")
        } else {
            format!("on {host} in VERIFY_RESIZE: confirm or revert it")
        };
        // ferry checks what Nova did, not only that it finished.
        let mismatch = followed
            .plan
            .flavor
            .as_deref()
            .and_then(|wanted| flavor_mismatch(&now, wanted));
        let detail = match &mismatch {
            Some(mismatch) => format!("{detail}; {mismatch}"),
            None => detail,
        };
        followed.finish(outcome, &detail);
        if let Some(mismatch) = mismatch {
            bail!("{server_name}: {mismatch}");
        }
        return Ok(ColdResult {
            server: server_name.clone(),
            server_id: followed.server_id.clone(),
            source_host: followed.source_host.clone(),
            destination_host: host,
            nova_migration_id: migration_id,
            history_id: followed.history_id.0,
            outcome,
            flavor: followed.plan.flavor.clone(),
        });
    }
}

/// How long ferry waits, after Nova said a move failed, for Nova to settle the server (and
/// write its fault) before it reads the reason.
const FAILURE_SETTLE_BOUND: Duration = Duration::from_secs(60);

/// The server once Nova has no task on it any more, or as last seen when the bound runs out.
async fn settled_after_failure(
    session: &CloudSession,
    mut server: Server,
    watch: &mut Watch,
    migration_status: Option<&str>,
    report: &mut (dyn FnMut(&WatchLine) + Send),
) -> Server {
    let waiting_since = Instant::now();
    while server.task_state.is_some() && waiting_since.elapsed() < FAILURE_SETTLE_BOUND {
        if let Ok(Some(now)) = watch.look(session, &server.id).await {
            watch.changed(&now, migration_status, report);
            server = now;
        }
    }
    server
}

/// What a watch has seen: when it began, the last line it reported, the last look that failed.
pub(super) struct Watch {
    started: Instant,
    last_line: Option<WatchLine>,
    last_error: Option<String>,
}

impl Watch {
    pub(super) fn new(started: Instant) -> Watch {
        Watch {
            started,
            last_line: None,
            last_error: None,
        }
    }

    pub(super) fn expired(&self) -> bool {
        self.started.elapsed() > WATCH_BOUND
    }

    /// Why ferry stopped watching: the bound, what it waited for, and what it last saw.
    pub(super) fn gave_up(&self, waited_for: &str) -> String {
        format!(
            "gave up watching after {WATCH_BOUND:?}: waited for {waited_for}; last seen: {}{}",
            self.last_line
                .as_ref()
                .map(WatchLine::text)
                .unwrap_or_else(|| "nothing".to_string()),
            self.last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        )
    }

    /// The server a poll interval from now: `None` when the look failed (not a verdict: the
    /// next one may answer), an error when the server is gone.
    pub(super) async fn look(
        &mut self,
        session: &CloudSession,
        server_id: &str,
    ) -> Result<Option<Server>> {
        tokio::time::sleep(POLL_INTERVAL).await;
        match bounded(
            session.call_timeout(),
            "show the server",
            session.client.server(server_id),
        )
        .await
        {
            Ok(now) => Ok(Some(now)),
            Err(error)
                if error
                    .downcast_ref::<NovaError>()
                    .is_some_and(NovaError::is_not_found) =>
            {
                Err(error.context("the server was deleted while ferry watched it"))
            }
            Err(error) => {
                self.last_error = Some(format!("{error:#}"));
                Ok(None)
            }
        }
    }

    /// Reports the look if anything but the clock changed; returns its text for the history.
    pub(super) fn changed(
        &mut self,
        server: &Server,
        migration_status: Option<&str>,
        report: &mut (dyn FnMut(&WatchLine) + Send),
    ) -> Option<String> {
        let line = WatchLine::observed(server, migration_status, self.started);
        if self
            .last_line
            .as_ref()
            .is_some_and(|last| last.same_as(&line))
        {
            return None;
        }
        report(&line);
        let text = line.text();
        self.last_line = Some(line);
        Some(text)
    }
}

fn host_name(name: &str) -> Result<HostName> {
    HostName::parse(name).map_err(|error| anyhow!("Nova's host {name:?}: {error}"))
}

/// Records how the move ended (or that it awaits confirm) on its history record.
pub(super) fn finish(id: MigrationId, kind: OutcomeKind, detail: &str) {
    let outcome = Outcome {
        kind,
        detail: detail.to_string(),
        finished_at_unix_ms: unix_ms_now(),
        downtime_ms: None,
        total_time_ms: None,
        bytes_transferred: None,
    };
    if let Err(error) = with_history(|history| Ok(history.finish_migration(id, &outcome)?)) {
        tracing::warn!("history: {error:#}");
    }
}

/// Adds an event to the history record, timed from the record's start.
pub(super) fn record_event(
    id: MigrationId,
    started_at_unix_ms: i64,
    kind: EventKind,
    message: &str,
) {
    let at_ms = u64::try_from(unix_ms_now() - started_at_unix_ms).unwrap_or(0);
    if let Err(error) = with_history(|history| Ok(history.record_event(id, at_ms, kind, message)?))
    {
        tracing::warn!("history: {error:#}");
    }
}

/// The newest of the server's migrations not in `before`, looked for until Nova has made it
/// (it does in its conductor, just after the 202) or the lookup bound runs out.
async fn find_new_migration(
    session: &CloudSession,
    filter: &MigrationFilter,
    before: &BTreeSet<u64>,
) -> Option<Migration> {
    let started = Instant::now();
    while started.elapsed() < MIGRATION_LOOKUP_BOUND {
        if let Some(found) = find_new_migration_once(session, filter, before).await {
            return Some(found);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    None
}

async fn find_new_migration_once(
    session: &CloudSession,
    filter: &MigrationFilter,
    before: &BTreeSet<u64>,
) -> Option<Migration> {
    bounded(
        session.call_timeout(),
        "list the server's migrations",
        session.client.os_migrations(filter),
    )
    .await
    .ok()?
    .into_iter()
    .filter(|migration| !before.contains(&migration.record.id))
    .max_by_key(|migration| migration.record.id)
}

async fn nova_migration(
    session: &CloudSession,
    filter: &MigrationFilter,
    id: u64,
) -> Option<Migration> {
    bounded(
        session.call_timeout(),
        "list the server's migrations",
        session.client.os_migrations(filter),
    )
    .await
    .ok()?
    .into_iter()
    .find(|migration| migration.record.id == id)
}

/// Nova's reason, read from the newest instance action ferry did not see before it asked.
async fn nova_reason(
    session: &CloudSession,
    server_id: &str,
    actions_before: &BTreeSet<String>,
    fault: Option<&ServerFault>,
    migration_status: Option<&str>,
) -> String {
    let timeout = session.call_timeout();
    let mut action = None;
    if let Ok(actions) = bounded(
        timeout,
        "list instance actions",
        session.client.instance_actions(server_id),
    )
    .await
    {
        // Nova lists them newest first.
        if let Some(new) = actions
            .into_iter()
            .find(|a| !actions_before.contains(&a.request_id))
        {
            action = bounded(
                timeout,
                "show the instance action",
                session.client.instance_action(server_id, &new.request_id),
            )
            .await
            .ok();
        }
    }
    failure_reason(action.as_ref(), fault, migration_status)
}

mod judge;
mod resume;
mod settle;

pub use judge::{
    awaiting_record, failure_reason, flavor_mismatch, flavor_refusal, judge_launch, judge_resume,
    judge_settle, LaunchVerdict, ResumeVerdict, SettleVerdict, WatchLine,
};
pub use resume::{resume_unfinished, unfinished_in_history, ColdResumed};
pub use settle::{settle, SettleResult};

#[cfg(test)]
mod tests;
