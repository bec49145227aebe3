//! `ferry confirm|revert X --cloud C`: the answer to a Nova cold migration or resize waiting
//! in VERIFY_RESIZE, asked of Nova and watched to its end, recorded on the migration's history
//! record.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::judge::{awaiting_record, failure_reason, judge_settle, SettleVerdict, WatchLine};
use super::{bounded, finish, host_name, nova_migration, record_event, Watch};
use crate::engine::history::{unix_ms_now, EventKind, NewMigration, OutcomeKind};
use crate::engine::nova::{with_history, CloudSession, NovaMigrationPlan, NOVA_BACKEND};
use crate::model::migration::MigrationKind;
use crate::nova::types::{MigrationFilter, MigrationType};

/// What a confirm or revert ended in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettleResult {
    pub server: String,
    pub server_id: String,
    pub host: String,
    pub status: String,
    pub history_id: i64,
    pub outcome: OutcomeKind,
}

/// `ferry confirm|revert X --cloud C`: the server must wait in VERIFY_RESIZE; Nova is asked
/// to confirm (`keep`) or revert, and ferry watches until the server is settled with no task
/// on the host expected (the destination, or for a revert the source). The outcome goes on
/// the history record of the server's last Nova migration awaiting confirm (one is made if
/// the history has none, so it still holds what happened).
pub async fn settle(
    session: &CloudSession,
    server_name: &str,
    keep: bool,
    report: &mut (dyn FnMut(&WatchLine) + Send),
) -> Result<SettleResult> {
    let timeout = session.call_timeout();
    let verb = if keep { "confirm" } else { "revert" };
    let server = bounded(timeout, "find the server", session.find_server(server_name)).await?;
    if server.status != "VERIFY_RESIZE" {
        bail!(
            "server {} is {}{}, not VERIFY_RESIZE: there is no cold migration or resize to {verb}",
            server.name,
            server.status,
            server
                .task_state
                .as_deref()
                .map(|task| format!(" (task {task})"))
                .unwrap_or_default()
        );
    }
    let current_host = server.host.clone().unwrap_or_default();
    // Nova's migration awaiting confirm: `finished` is the status of a move in VERIFY_RESIZE.
    let waiting = bounded(
        timeout,
        "list the server's migrations",
        session.client.os_migrations(&MigrationFilter {
            server_id: Some(server.id.clone()),
            ..Default::default()
        }),
    )
    .await?
    .into_iter()
    .filter(|m| m.migration_type != Some(MigrationType::Live) && m.record.status == "finished")
    .max_by_key(|m| m.record.id);
    let unfinished = with_history(|history| Ok(history.unfinished()?))?;
    let record = awaiting_record(&unfinished, &server.id);
    let source_host = waiting
        .as_ref()
        .and_then(|m| m.record.source_compute.clone())
        .or_else(|| record.as_ref().map(|r| r.source_host.clone()))
        .ok_or_else(|| {
            anyhow!(
                "server {}: neither Nova nor ferry's history says where it came from, so a \
                 revert could not be checked",
                server.name
            )
        })?;
    let (history_id, started_at_unix_ms) = match &record {
        Some(record) => (record.id, record.started_at_unix_ms),
        None => {
            let migration_type = waiting
                .as_ref()
                .and_then(|m| m.migration_type)
                .unwrap_or(MigrationType::Cold);
            let plan = NovaMigrationPlan {
                backend: NOVA_BACKEND.to_string(),
                cloud: session.name().to_string(),
                server_id: server.id.clone(),
                server_name: server.name.clone(),
                nova_migration_id: waiting.as_ref().map(|m| m.record.id),
                migration_type: migration_type.as_str().to_string(),
                requested_host: None,
                flavor: server.flavor.name.clone(),
            };
            let started_at_unix_ms = unix_ms_now();
            let found = NewMigration {
                kind: MigrationKind::Cold,
                instance_name: server.name.clone(),
                instance_uuid: server.id.clone(),
                source_host: host_name(&source_host)?,
                destination_host: host_name(&current_host)?,
                policy: if migration_type == MigrationType::Resize {
                    "nova-resize"
                } else {
                    "nova"
                }
                .to_string(),
                plan: serde_json::to_value(&plan).context("writing the plan as JSON")?,
                started_at_unix_ms,
            };
            let id = with_history(|history| Ok(history.start_migration(&found)?))?;
            // Started elsewhere (not by this ferry): it awaited confirm when ferry found it.
            finish(
                id,
                OutcomeKind::AwaitingConfirm,
                &format!("found in VERIFY_RESIZE on {current_host} (not started by ferry)"),
            );
            (id, started_at_unix_ms)
        }
    };
    let event = |kind: EventKind, message: &str| {
        record_event(history_id, started_at_unix_ms, kind, message)
    };
    let expected_host = if keep {
        current_host.clone()
    } else {
        source_host.clone()
    };
    event(
        EventKind::Operator,
        &format!("{verb} asked of Nova (expected on {expected_host})"),
    );
    let asked = if keep {
        bounded(
            timeout,
            "confirm the resize",
            session.client.confirm_resize(&server.id),
        )
        .await
    } else {
        bounded(
            timeout,
            "revert the resize",
            session.client.revert_resize(&server.id),
        )
        .await
    };
    if let Err(error) = asked {
        event(EventKind::Error, &format!("{error:#}"));
        return Err(error);
    }
    let filter = MigrationFilter {
        server_id: Some(server.id.clone()),
        ..Default::default()
    };
    let mut watch = Watch::new(Instant::now());
    loop {
        if watch.expired() {
            let message = watch.gave_up(&format!(
                "{} to be ACTIVE or SHUTOFF with no task on {expected_host}",
                server.name
            )) + ". The record stays awaiting confirm";
            event(EventKind::Error, &message);
            bail!("{message}");
        }
        let now = match watch.look(session, &server.id).await {
            Ok(Some(now)) => now,
            Ok(None) => continue,
            Err(error) => {
                let message = format!("{}: {error:#}", server.name);
                finish(history_id, OutcomeKind::Failed, &message);
                bail!("{message}");
            }
        };
        let migration = match &waiting {
            Some(waiting) => nova_migration(session, &filter, waiting.record.id).await,
            None => None,
        };
        let migration_status = migration.as_ref().map(|m| m.record.status.as_str());
        if let Some(line) = watch.changed(&now, migration_status, report) {
            event(EventKind::Phase, &line);
        }
        match judge_settle(&now, migration_status, &expected_host) {
            SettleVerdict::Waiting => {}
            SettleVerdict::Done => {
                let outcome = if keep {
                    OutcomeKind::Confirmed
                } else {
                    OutcomeKind::Reverted
                };
                finish(
                    history_id,
                    outcome,
                    &format!("{} on {expected_host}", now.status),
                );
                return Ok(SettleResult {
                    server: server.name.clone(),
                    server_id: server.id.clone(),
                    host: expected_host,
                    status: now.status,
                    history_id: history_id.0,
                    outcome,
                });
            }
            SettleVerdict::Failed(why) => {
                let reason = failure_reason(None, now.fault.as_ref(), migration_status);
                let message = format!("the {verb} of {} failed: {why}; {reason}", server.name);
                finish(history_id, OutcomeKind::Failed, &message);
                bail!("{message}");
            }
        }
    }
}
