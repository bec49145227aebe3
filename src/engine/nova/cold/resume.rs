//! `ferry resume` for a Nova cold migration or resize whose watch ended without a verdict
//! (ferry was killed mid-watch, or the watch's bound ran out): its history record has no
//! outcome. ferry reads the server and Nova's migration of it and settles the record from
//! what Nova answers, as the launch's watch would have: VERIFY_RESIZE is recorded as awaiting
//! confirm (so `ferry confirm|revert --cloud` and the TUI find it), Nova's error as failed with
//! Nova's reason, a move still under way is watched again under the watch's bound. When the
//! cloud does not answer the record stays unfinished and ferry says so: it never decides on
//! silence. Records awaiting confirm are not unfinished watches and are left as they are.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::judge::resumed_migration;
use super::{bounded, finish, follow, record_event, Followed, Look, Watch, WatchLine};
use crate::engine::history::{EventKind, MigrationRecord, OutcomeKind};
use crate::engine::nova::{with_history, CloudSession, NovaMigrationPlan};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::nova::types::{MigrationFilter, MigrationType};
use crate::nova::NovaError;

/// How far ferry's clock and Nova's may differ when ferry tells the migrations and instance
/// actions Nova made for the move from those it made before the record started.
const CLOCK_ALLOWANCE_MS: i64 = 120_000;

/// What `ferry resume` did with one unfinished Nova cold migration or resize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdResumed {
    pub history_id: i64,
    pub cloud: String,
    pub server: String,
    pub server_id: String,
    /// Nova's type: "migration" (cold) or "resize".
    pub migration_type: String,
    pub nova_migration_id: Option<u64>,
    /// The record's outcome now; None: it stays unfinished (the cloud did not answer, or the
    /// watch's bound ran out again).
    pub outcome: Option<OutcomeKind>,
    /// Where Nova has the server, when the move reached VERIFY_RESIZE or Nova confirmed it.
    pub host: Option<String>,
    /// What ferry found, in words: the record's outcome detail, or why it stays unfinished.
    pub detail: String,
}

/// The Nova cold migrations and resizes of `cloud` whose history record has no outcome: the
/// ones a ferry stopped watching before Nova decided. Those awaiting confirm are not in it.
/// Each is (record, plan, source host).
pub fn unfinished_in_history(cloud: &str) -> Result<Vec<(MigrationId, NovaMigrationPlan, String)>> {
    let unfinished = with_history(|history| Ok(history.unfinished()?))?;
    Ok(unfinished_watches(unfinished, cloud))
}

/// Of the history's unfinished records, the Nova cold migrations and resizes of `cloud` with
/// no outcome at all (an awaiting-confirm outcome is Nova's pause, not a watch left off).
pub fn unfinished_watches(
    records: Vec<MigrationRecord>,
    cloud: &str,
) -> Vec<(MigrationId, NovaMigrationPlan, String)> {
    records
        .into_iter()
        .filter(|record| record.kind == MigrationKind::Cold && record.outcome.is_none())
        .filter_map(|record| {
            let plan = NovaMigrationPlan::from_history(&record.plan)?;
            (plan.cloud == cloud && plan.migration_type != MigrationType::Live.as_str())
                .then_some((record.id, plan, record.source_host))
        })
        .collect()
}

fn migration_type_of(plan: &NovaMigrationPlan) -> MigrationType {
    if plan.migration_type == MigrationType::Resize.as_str() {
        MigrationType::Resize
    } else {
        MigrationType::Cold
    }
}

/// Settles the unfinished record `history_id` (a Nova cold migration or resize of
/// `plan.server_id` from `source`) from Nova's answers, reporting each change it sees through
/// `report`. An error only when ferry's history cannot be read or written; what Nova said (or
/// that it did not answer) is in the result.
pub async fn resume_unfinished(
    session: &CloudSession,
    history_id: MigrationId,
    plan: &NovaMigrationPlan,
    source: &str,
    report: &mut (dyn FnMut(&WatchLine) + Send),
) -> Result<ColdResumed> {
    let record = with_history(|history| Ok(history.migration(history_id)?))?;
    let resumed =
        |outcome: Option<OutcomeKind>, host: Option<String>, detail: String| ColdResumed {
            history_id: history_id.0,
            cloud: plan.cloud.clone(),
            server: plan.server_name.clone(),
            server_id: plan.server_id.clone(),
            migration_type: plan.migration_type.clone(),
            nova_migration_id: plan.nova_migration_id,
            outcome,
            host,
            detail,
        };
    if let Some(outcome) = record.outcome {
        return Ok(resumed(
            Some(outcome),
            None,
            format!(
                "already {outcome} ({}): left as it is",
                record.outcome_detail
            ),
        ));
    }
    let started_at_unix_ms = record.started_at_unix_ms;
    let unanswered = |what: &str, error: anyhow::Error| {
        let detail = format!(
            "the cloud did not answer ({what}: {error:#}): the record stays unfinished; \
             `ferry resume` looks again"
        );
        record_event(
            history_id,
            started_at_unix_ms,
            EventKind::Error,
            &format!("ferry resume: {detail}"),
        );
        resumed(None, None, detail)
    };
    let timeout = session.call_timeout();
    let server = match bounded(
        timeout,
        "show the server",
        session.client.server(&plan.server_id),
    )
    .await
    {
        Ok(server) => server,
        Err(error)
            if error
                .downcast_ref::<NovaError>()
                .is_some_and(NovaError::is_not_found) =>
        {
            let detail = format!(
                "Nova has no server {} ({}) any more: it was deleted before its {} ended",
                plan.server_name, plan.server_id, plan.migration_type
            );
            finish(history_id, OutcomeKind::Failed, &detail);
            return Ok(resumed(Some(OutcomeKind::Failed), None, detail));
        }
        Err(error) => return Ok(unanswered("show the server", error)),
    };
    let filter = MigrationFilter {
        server_id: Some(plan.server_id.clone()),
        migration_type: Some(migration_type_of(plan)),
        ..Default::default()
    };
    let migrations = match bounded(
        timeout,
        "list the server's migrations",
        session.client.os_migrations(&filter),
    )
    .await
    {
        Ok(migrations) => migrations,
        Err(error) => return Ok(unanswered("list the server's migrations", error)),
    };
    let (migration, migrations_before) = resumed_migration(
        &migrations,
        plan.nova_migration_id,
        source,
        started_at_unix_ms,
        CLOCK_ALLOWANCE_MS,
    );
    let nova_migration_id = migration.map(|m| m.record.id);
    let migration_status = migration.map(|m| m.record.status.clone());
    // Only the reason of a failure is read from these; without them it is read from the
    // newest action.
    let actions_before = bounded(
        timeout,
        "list the server's instance actions",
        session.client.instance_actions(&plan.server_id),
    )
    .await
    .map(|actions| {
        actions
            .into_iter()
            .filter(|action| {
                super::judge::made_before(
                    action.start_time.as_deref(),
                    started_at_unix_ms,
                    CLOCK_ALLOWANCE_MS,
                )
            })
            .map(|action| action.request_id)
            .collect()
    })
    .unwrap_or_default();
    let plan = NovaMigrationPlan {
        nova_migration_id: plan.nova_migration_id.or(nova_migration_id),
        ..plan.clone()
    };
    if record_plan_gains_id(&record.plan, &plan) {
        let stored = serde_json::to_value(&plan)?;
        with_history(|history| Ok(history.set_plan(history_id, &stored)?))?;
    }
    record_event(
        history_id,
        started_at_unix_ms,
        EventKind::Phase,
        &format!(
            "watched again by `ferry resume`: {} {} on {}{}",
            server.name,
            server.status,
            server.host.as_deref().unwrap_or("?"),
            match (&plan.nova_migration_id, &migration_status) {
                (Some(id), Some(status)) => format!(", Nova's migration {id} {status}"),
                (Some(id), None) => format!(", Nova lists no migration {id}"),
                (None, _) => ", Nova lists no migration of it since the record started".into(),
            }
        ),
    );
    let followed = Followed {
        server_id: plan.server_id.clone(),
        server_name: plan.server_name.clone(),
        source_host: source.to_string(),
        history_id,
        started_at_unix_ms,
        plan,
        filter,
        migrations_before,
        actions_before,
    };
    let first_look = Look {
        server,
        migration_status,
    };
    let watched = follow(
        session,
        &followed,
        Watch::new(Instant::now()),
        Some(first_look),
        report,
    )
    .await;
    let now = with_history(|history| Ok(history.migration(history_id)?))?;
    let detail = match (&watched, now.outcome) {
        (_, Some(_)) => now.outcome_detail.clone(),
        (Err(error), None) => format!("{error:#}"),
        (Ok(_), None) => "the record has no outcome after the watch".to_string(),
    };
    let host = watched.ok().map(|result| result.destination_host);
    Ok(ColdResumed {
        nova_migration_id: followed.plan.nova_migration_id,
        ..resumed(now.outcome, host, detail)
    })
}

/// Whether the record's stored plan lacks the Nova migration id `plan` has now.
fn record_plan_gains_id(stored: &serde_json::Value, plan: &NovaMigrationPlan) -> bool {
    plan.nova_migration_id.is_some()
        && NovaMigrationPlan::from_history(stored).is_some_and(|s| s.nova_migration_id.is_none())
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
