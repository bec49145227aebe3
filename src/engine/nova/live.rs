//! One live migration carried out by Nova: ferry's pre-flight checks, `os-migrateLive`, then
//! a watch to its end. Nova saves a migration's byte counts only every ~5 s and shows no
//! dirty rate, pass or downtime; where the config gives read-only libvirt access to the source
//! compute host, the watch also reads the same domain's job statistics (the domain's UUID is
//! the server's id) every poll, and feeds them to ferry's progress model. It never changes
//! the domain: abort and force-complete go through Nova.
//!
//! The outcome is decided from Nova's answers only: a cloud that stops answering leaves the
//! migration unsettled in the history, for `ferry resume`, never decided on silence.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use tokio::sync::mpsc;

use super::preflight::{self, CloudFacts, Needs, NovaMove};
use super::{CloudSession, NovaMigrationPlan, NOVA_BACKEND};
use crate::engine::history::{self, EventKind, NewMigration, Outcome, OutcomeKind};
use crate::libvirt::lifecycle::DomainKey;
use crate::libvirt::HostConnection;
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;
use crate::nova::types::{Migration, MigrationFilter, MigrationType, Server, ServerMigration};
use crate::progress::{MigrationProgress, ProgressConfig, ProgressModel};

/// How often the watch reads libvirt's job statistics (Nova's own monitor polls as often).
pub const LIBVIRT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often the watch asks Nova: its record changes at most every ~5 s, and a cloud is
/// shared, so ferry asks no more than this.
pub const NOVA_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Nova's prechecks run after its 202; its migration record appears within seconds.
const MIGRATION_RECORD_WAIT: Duration = Duration::from_secs(90);
/// A cloud that has not answered for this long leaves the migration to `ferry resume`.
const SILENCE_BOUND: Duration = Duration::from_secs(600);

/// Nova's record of the migration as last read, with when ferry read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NovaRecordReading {
    pub status: String,
    pub updated_at: Option<String>,
    pub memory_total_bytes: Option<u64>,
    pub memory_remaining_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub disk_remaining_bytes: Option<u64>,
    /// ms since the launch when ferry read it.
    pub read_at_ms: u64,
}

/// What the watch reports, in order; the last is `Finished`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "update")]
pub enum NovaLiveUpdate {
    /// Nova accepted the request (202) and made its migration record.
    Launched {
        history_id: MigrationId,
        server_id: String,
        server_name: String,
        source: String,
        requested_destination: Option<String>,
        nova_migration_id: u64,
        /// Where Nova sends it (the scheduler's choice for `auto`).
        destination: Option<String>,
    },
    /// A restarted ferry took over watching a migration Nova was already carrying out.
    Attached {
        history_id: MigrationId,
        nova_migration_id: u64,
    },
    /// Nova's record changed (status, or the byte counts it saves every ~5 s).
    Nova(NovaRecordReading),
    /// ferry's own reading of the source's libvirt job (read-only), through the progress model.
    Libvirt(Box<MigrationProgress>),
    /// Libvirt figures are not available, and why (no URI for the host, host not answering).
    LibvirtUnavailable {
        reason: String,
    },
    /// The cloud did not answer a poll; the watch goes on.
    Silent {
        detail: String,
    },
    Finished(NovaLiveOutcome),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum NovaLiveOutcome {
    /// Nova reports the server ACTIVE on its new host.
    Completed { host: String, total_time_ms: u64 },
    /// Aborted: the server stays on its source.
    Cancelled { detail: String },
    /// Nova's migration failed or its precheck refused it: Nova's own reason.
    Failed { detail: String },
    /// The cloud stopped answering: left unfinished for `ferry resume`.
    Unsettled { detail: String },
}

/// What a watch needs to know about its migration.
#[derive(Debug, Clone)]
pub struct Watched {
    pub history_id: MigrationId,
    pub server_id: String,
    pub nova_migration_id: u64,
    pub source: String,
}

/// Checks, launches and records a live migration of `server_name_or_id` to `destination`
/// (None: the scheduler chooses). Refusals come back as errors and nothing is sent to Nova.
pub async fn launch(
    session: &CloudSession,
    server_name_or_id: &str,
    destination: Option<&str>,
    updates: &mpsc::UnboundedSender<NovaLiveUpdate>,
) -> Result<Watched> {
    let cloud = session.name().to_string();
    let server = session.find_server(server_name_or_id).await?;
    if let Some(reason) = preflight::server_refusal(&server, NovaMove::Live) {
        bail!("cloud {cloud}: {reason}");
    }
    let (services, hypervisors) = tokio::try_join!(
        session.client.compute_services(),
        session.client.hypervisors()
    )?;
    let facts = CloudFacts {
        services: &services,
        hypervisors: &hypervisors,
    };
    let needs = Needs::of(&server);
    match destination {
        Some(host) => {
            if let Some(reason) =
                preflight::destination_refusal(&facts, &server, host, needs, false)
            {
                bail!(
                    "cloud {cloud}: cannot live-migrate {} to {reason}",
                    server.name
                );
            }
        }
        None => preflight::any_destination(&facts, &server, needs)
            .map_err(|reason| anyhow!("cloud {cloud}: {reason}"))?,
    }
    let source = server.host.clone().unwrap_or_default();
    let known_before: BTreeSet<u64> = live_migrations_of(session, &server.id)
        .await?
        .iter()
        .map(|m| m.record.id)
        .collect();

    let mut plan = NovaMigrationPlan {
        backend: NOVA_BACKEND.into(),
        cloud: cloud.clone(),
        server_id: server.id.clone(),
        server_name: server.name.clone(),
        nova_migration_id: None,
        migration_type: MigrationType::Live.as_str().into(),
        requested_host: destination.map(str::to_string),
        flavor: server.flavor.name.clone(),
    };
    let history_id = record_start(&server, &source, destination, &plan)?;
    if let Err(error) = session.client.live_migrate(&server.id, destination).await {
        let detail = error.to_string();
        record_finish(history_id, OutcomeKind::Failed, &detail, None);
        return Err(error.into());
    }
    record_event(
        history_id,
        EventKind::Phase,
        "Nova accepted os-migrateLive (202)",
    );

    // Nova's record appears once the conductor takes the request; a precheck that fails
    // marks it `error` (or `failed`) with the reason in the instance's actions.
    let deadline = Instant::now() + MIGRATION_RECORD_WAIT;
    let migration = loop {
        let found = live_migrations_of(session, &server.id)
            .await
            .ok()
            .and_then(|all| {
                all.into_iter()
                    .filter(|m| !known_before.contains(&m.record.id))
                    .max_by_key(|m| m.record.id)
            });
        if let Some(migration) = found {
            break migration;
        }
        if Instant::now() > deadline {
            let detail = format!(
                "Nova accepted the request but made no migration record within {}s; \
                 the server is {}",
                MIGRATION_RECORD_WAIT.as_secs(),
                describe_server(session, &server.id).await
            );
            record_finish(history_id, OutcomeKind::Failed, &detail, None);
            bail!("cloud {cloud}: {detail}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    plan.nova_migration_id = Some(migration.record.id);
    let stored_plan = serde_json::to_value(&plan)?;
    if let Err(error) =
        super::with_history(|history| Ok(history.set_plan(history_id, &stored_plan)?))
    {
        tracing::warn!("history: {error:#}");
    }
    let _ = updates.send(NovaLiveUpdate::Launched {
        history_id,
        server_id: server.id.clone(),
        server_name: server.name.clone(),
        source: source.clone(),
        requested_destination: destination.map(str::to_string),
        nova_migration_id: migration.record.id,
        destination: migration.record.dest_compute.clone(),
    });
    record_event(
        history_id,
        EventKind::Phase,
        &format!(
            "Nova migration {} ({} → {})",
            migration.record.id,
            source,
            migration
                .record
                .dest_compute
                .as_deref()
                .unwrap_or("scheduler's choice")
        ),
    );
    Ok(Watched {
        history_id,
        server_id: server.id,
        nova_migration_id: migration.record.id,
        source,
    })
}

async fn live_migrations_of(session: &CloudSession, server_id: &str) -> Result<Vec<Migration>> {
    Ok(session
        .client
        .os_migrations(&MigrationFilter {
            server_id: Some(server_id.to_string()),
            migration_type: Some(MigrationType::Live),
            ..Default::default()
        })
        .await?)
}

async fn describe_server(session: &CloudSession, server_id: &str) -> String {
    match session.client.server(server_id).await {
        Ok(server) => format!(
            "{} on {} (task {})",
            server.status,
            server.host.as_deref().unwrap_or("?"),
            server.task_state.as_deref().unwrap_or("none")
        ),
        Err(error) => format!("unknown ({error})"),
    }
}

/// Nova's reason for a failed migration: the failed events of the server's newest
/// live-migration action, and the server's fault.
pub async fn nova_reason(session: &CloudSession, server_id: &str) -> String {
    let mut parts = Vec::new();
    if let Ok(actions) = session.client.instance_actions(server_id).await {
        if let Some(action) = actions
            .iter()
            .filter(|a| a.action.contains("migrat"))
            .max_by(|a, b| a.start_time.cmp(&b.start_time))
        {
            if let Ok(detail) = session
                .client
                .instance_action(server_id, &action.request_id)
                .await
            {
                for event in detail.failed_events() {
                    parts.push(format!(
                        "{}: {}{}",
                        event.event,
                        event.result.as_deref().unwrap_or("Error"),
                        event
                            .details
                            .as_deref()
                            .map(|d| format!(" ({})", d.trim()))
                            .unwrap_or_default()
                    ));
                }
                if let Some(message) = detail.message.filter(|m| !m.is_empty()) {
                    parts.push(message);
                }
            }
        }
    }
    if let Ok(server) = session.client.server(server_id).await {
        if let Some(fault) = server.fault.filter(|f| !f.message.is_empty()) {
            parts.push(format!("fault: {}", fault.message));
        }
    }
    if parts.is_empty() {
        "Nova gave no reason in the instance's actions".into()
    } else {
        parts.join("; ")
    }
}

/// Reads libvirt's job on the source, read-only; reconnects when the host stops answering.
struct LibvirtReader {
    uri: Option<String>,
    connection: Option<HostConnection>,
    model: ProgressModel,
    call_timeout: Duration,
    reported_unavailable: bool,
}

impl LibvirtReader {
    fn new(uri: Option<String>, call_timeout: Duration) -> LibvirtReader {
        LibvirtReader {
            uri,
            connection: None,
            model: ProgressModel::new(ProgressConfig::default()),
            call_timeout,
            reported_unavailable: false,
        }
    }

    async fn read(
        &mut self,
        server_id: &str,
        elapsed_ms: u64,
    ) -> Result<Option<MigrationProgress>, String> {
        let Some(uri) = &self.uri else {
            return Err(
                "the config gives no libvirt URI for the source host (figures are \
                        Nova's only)"
                    .into(),
            );
        };
        if self.connection.is_none() {
            self.connection = Some(
                HostConnection::connect(uri, self.call_timeout)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let connection = self.connection.as_ref().expect("connected above");
        match connection
            .job_stats(&DomainKey::Uuid(server_id.to_string()), self.call_timeout)
            .await
        {
            Ok(Some(mut sample)) => {
                sample.sampled_at_ms = elapsed_ms;
                Ok(Some(self.model.on_sample(sample)))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                if let Some(connection) = self.connection.take() {
                    connection.close_in_background();
                }
                Err(error.to_string())
            }
        }
    }
}

/// Watches the migration to its end, reporting on `updates`, and records the outcome.
pub async fn watch(
    session: &CloudSession,
    watched: &Watched,
    updates: &mpsc::UnboundedSender<NovaLiveUpdate>,
) -> NovaLiveOutcome {
    let started = Instant::now();
    let mut libvirt =
        LibvirtReader::new(session.libvirt_uri(&watched.source), session.call_timeout());
    let mut last_nova_poll: Option<Instant> = None;
    let mut last_reading: Option<NovaRecordReading> = None;
    let mut last_answer = Instant::now();
    let outcome = loop {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match libvirt.read(&watched.server_id, elapsed_ms).await {
            Ok(Some(progress)) => {
                libvirt.reported_unavailable = false;
                let _ = updates.send(NovaLiveUpdate::Libvirt(Box::new(progress)));
            }
            Ok(None) => {}
            Err(reason) => {
                if !libvirt.reported_unavailable {
                    libvirt.reported_unavailable = true;
                    let _ = updates.send(NovaLiveUpdate::LibvirtUnavailable { reason });
                }
            }
        }
        if last_nova_poll.is_none_or(|at| at.elapsed() >= NOVA_POLL_INTERVAL) {
            last_nova_poll = Some(Instant::now());
            match read_nova(session, watched, elapsed_ms).await {
                Ok((reading, record)) => {
                    last_answer = Instant::now();
                    if last_reading.as_ref().map(|r| (&r.status, &r.updated_at))
                        != Some((&reading.status, &reading.updated_at))
                    {
                        if last_reading.as_ref().map(|r| &r.status) != Some(&reading.status) {
                            record_event(
                                watched.history_id,
                                EventKind::Phase,
                                &format!("Nova: {}", reading.status),
                            );
                        }
                        let _ = updates.send(NovaLiveUpdate::Nova(reading.clone()));
                        last_reading = Some(reading.clone());
                    }
                    if let Some(outcome) =
                        settle(session, watched, &reading.status, record.as_ref(), started).await
                    {
                        break outcome;
                    }
                }
                Err(detail) => {
                    let _ = updates.send(NovaLiveUpdate::Silent {
                        detail: detail.clone(),
                    });
                    if last_answer.elapsed() > SILENCE_BOUND {
                        break NovaLiveOutcome::Unsettled {
                            detail: format!(
                                "the cloud has not answered for {} s ({detail}); Nova goes on \
                                 with the migration: `ferry resume` watches it again",
                                SILENCE_BOUND.as_secs()
                            ),
                        };
                    }
                }
            }
        }
        tokio::time::sleep(LIBVIRT_POLL_INTERVAL).await;
    };
    finish_record(watched.history_id, &outcome, started);
    let _ = updates.send(NovaLiveUpdate::Finished(outcome.clone()));
    outcome
}

/// Nova's record of the migration: the in-progress list has the byte counts; once it is over
/// only `os-migrations` has it, with its final status.
async fn read_nova(
    session: &CloudSession,
    watched: &Watched,
    elapsed_ms: u64,
) -> Result<(NovaRecordReading, Option<Migration>), String> {
    let in_progress: Vec<ServerMigration> = session
        .client
        .server_migrations(&watched.server_id)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(current) = in_progress
        .into_iter()
        .find(|m| m.record.id == watched.nova_migration_id)
    {
        return Ok((
            NovaRecordReading {
                status: current.record.status.clone(),
                updated_at: current.record.updated_at.clone(),
                memory_total_bytes: current.memory_total_bytes,
                memory_remaining_bytes: current.memory_remaining_bytes,
                disk_total_bytes: current.disk_total_bytes,
                disk_remaining_bytes: current.disk_remaining_bytes,
                read_at_ms: elapsed_ms,
            },
            None,
        ));
    }
    let all = live_migrations_of(session, &watched.server_id)
        .await
        .map_err(|e| e.to_string())?;
    let record = all
        .into_iter()
        .find(|m| m.record.id == watched.nova_migration_id)
        .ok_or_else(|| {
            format!(
                "Nova lists no migration {} of server {}",
                watched.nova_migration_id, watched.server_id
            )
        })?;
    Ok((
        NovaRecordReading {
            status: record.record.status.clone(),
            updated_at: record.record.updated_at.clone(),
            memory_total_bytes: None,
            memory_remaining_bytes: None,
            disk_total_bytes: None,
            disk_remaining_bytes: None,
            read_at_ms: elapsed_ms,
        },
        Some(record),
    ))
}

/// The outcome, once Nova's answers decide it.
async fn settle(
    session: &CloudSession,
    watched: &Watched,
    status: &str,
    record: Option<&Migration>,
    started: Instant,
) -> Option<NovaLiveOutcome> {
    match status {
        "completed" => {
            // Completed by Nova's record; the server's own record must agree before ferry says so.
            let server: Server = session.client.server(&watched.server_id).await.ok()?;
            let destination = record.and_then(|r| r.record.dest_compute.clone());
            if server.task_state.is_some()
                || server.host.is_none()
                || server.host != destination && destination.is_some()
            {
                return None;
            }
            Some(NovaLiveOutcome::Completed {
                host: server.host.unwrap_or_default(),
                total_time_ms: started.elapsed().as_millis() as u64,
            })
        }
        "cancelled" => {
            let server = session.client.server(&watched.server_id).await.ok()?;
            if server.task_state.is_some() {
                return None;
            }
            Some(NovaLiveOutcome::Cancelled {
                detail: format!(
                    "aborted; the server is {} on {}",
                    server.status,
                    server.host.as_deref().unwrap_or("?")
                ),
            })
        }
        "error" | "failed" => {
            let server = session.client.server(&watched.server_id).await.ok()?;
            if server.task_state.is_some() {
                return None;
            }
            Some(NovaLiveOutcome::Failed {
                detail: format!(
                    "Nova's migration {status}: {}; the server is {} on {}",
                    nova_reason(session, &watched.server_id).await,
                    server.status,
                    server.host.as_deref().unwrap_or("?")
                ),
            })
        }
        _ => None,
    }
}

fn record_start(
    server: &Server,
    source: &str,
    destination: Option<&str>,
    plan: &NovaMigrationPlan,
) -> Result<MigrationId> {
    let host_name =
        |name: &str| HostName::parse(name).map_err(|e| anyhow!("Nova host name {name:?}: {e}"));
    let migration = NewMigration {
        kind: MigrationKind::Live,
        instance_name: server.name.clone(),
        instance_uuid: server.id.clone(),
        source_host: host_name(source)?,
        destination_host: host_name(destination.unwrap_or("auto"))?,
        policy: format!("{NOVA_BACKEND}:{}", plan.cloud),
        plan: serde_json::to_value(plan)?,
        started_at_unix_ms: history::unix_ms_now(),
    };
    super::with_history(|history| Ok(history.start_migration(&migration)?))
}

fn record_event(id: MigrationId, kind: EventKind, message: &str) {
    let recorded = super::with_history(|history| {
        let at_ms = history
            .migration(id)
            .map(|record| (history::unix_ms_now() - record.started_at_unix_ms).max(0) as u64)
            .unwrap_or(0);
        Ok(history.record_event(id, at_ms, kind, message)?)
    });
    if let Err(error) = recorded {
        tracing::warn!("history: {error:#}");
    }
}

fn record_finish(id: MigrationId, kind: OutcomeKind, detail: &str, total_time_ms: Option<u64>) {
    let outcome = Outcome {
        kind,
        detail: detail.to_string(),
        finished_at_unix_ms: history::unix_ms_now(),
        downtime_ms: None,
        total_time_ms,
        bytes_transferred: None,
    };
    if let Err(error) = super::with_history(|history| Ok(history.finish_migration(id, &outcome)?)) {
        tracing::warn!("history: {error:#}");
    }
}

fn finish_record(id: MigrationId, outcome: &NovaLiveOutcome, started: Instant) {
    let elapsed = Some(started.elapsed().as_millis() as u64);
    match outcome {
        NovaLiveOutcome::Completed { host, .. } => record_finish(
            id,
            OutcomeKind::Completed,
            &format!("Nova reports the server on {host}"),
            elapsed,
        ),
        NovaLiveOutcome::Cancelled { detail } => {
            record_finish(id, OutcomeKind::Cancelled, detail, elapsed)
        }
        NovaLiveOutcome::Failed { detail } => {
            record_finish(id, OutcomeKind::Failed, detail, elapsed)
        }
        NovaLiveOutcome::Unsettled { detail } => record_event(id, EventKind::Error, detail),
    }
}

/// The live migrations this ferry's history holds unfinished for `cloud`, to watch again.
pub fn unfinished_in_history(cloud: &str) -> Result<Vec<(MigrationId, NovaMigrationPlan, String)>> {
    let unfinished = super::with_history(|history| Ok(history.unfinished()?))?;
    Ok(unfinished
        .into_iter()
        .filter(|r| r.kind == MigrationKind::Live && r.outcome.is_none())
        .filter_map(|r| {
            let plan = NovaMigrationPlan::from_history(&r.plan)?;
            (plan.cloud == cloud).then_some((r.id, plan, r.source_host))
        })
        .collect())
}

/// Takes over watching an unfinished Nova live migration from the history. One whose record
/// never got Nova's migration id is looked for among the server's live migrations.
pub async fn attach(
    session: &CloudSession,
    history_id: MigrationId,
    plan: &NovaMigrationPlan,
    source: &str,
    updates: &mpsc::UnboundedSender<NovaLiveUpdate>,
) -> Result<Watched> {
    let nova_migration_id = match plan.nova_migration_id {
        Some(id) => id,
        None => live_migrations_of(session, &plan.server_id)
            .await?
            .into_iter()
            .map(|m| m.record.id)
            .max()
            .ok_or_else(|| anyhow!("Nova has no live migration of server {}", plan.server_id))?,
    };
    record_event(
        history_id,
        EventKind::Phase,
        &format!("watched again by a restarted ferry (Nova migration {nova_migration_id})"),
    );
    let _ = updates.send(NovaLiveUpdate::Attached {
        history_id,
        nova_migration_id,
    });
    Ok(Watched {
        history_id,
        server_id: plan.server_id.clone(),
        nova_migration_id,
        source: source.to_string(),
    })
}

/// Aborts or force-completes the server's running live migration through Nova.
pub async fn operator_command(
    session: &CloudSession,
    server_name_or_id: &str,
    abort: bool,
) -> Result<String> {
    let server = session.find_server(server_name_or_id).await?;
    let running = session.client.server_migrations(&server.id).await?;
    let Some(current) = running.into_iter().max_by_key(|m| m.record.id) else {
        bail!(
            "cloud {}: server {} has no live migration in progress (it is {} on {})",
            session.name(),
            server.name,
            server.status,
            server.host.as_deref().unwrap_or("?")
        );
    };
    let id = current.record.id;
    if abort {
        session
            .client
            .abort_live_migration(&server.id, id, Some(&current.record.status))
            .await?;
        Ok(format!(
            "asked Nova to abort migration {id} of {} (it was {})",
            server.name, current.record.status
        ))
    } else {
        session.client.force_complete(&server.id, id).await?;
        Ok(format!(
            "asked Nova to force-complete migration {id} of {} (Nova pauses the guest unless \
             its post-copy is permitted)",
            server.name
        ))
    }
}
