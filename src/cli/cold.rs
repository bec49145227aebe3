//! `ferry migrate --cold`, `ferry confirm`, `ferry revert`: Nova's resize/migrate flow from a
//! shell. The migration stops at "awaiting confirm" with the source copy kept; the operator
//! settles it later, from any terminal, with the plan the history kept.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ferry::config::Config;
use ferry::engine::cold::{self, ColdMigrationPlan, ColdOptions, ColdOutcome, ColdUpdate};
use ferry::engine::history::{
    self, EventKind, History, MigrationKind, MigrationRecord, NewMigration, Outcome, OutcomeKind,
};
use ferry::model::units::{format_bytes, format_duration_ms, format_rate};
use ferry::model::HostName;
use ferry::precheck::render_report;
use serde::Serialize;

use super::migrate::Output;

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    instance: &'a str,
    #[serde(flatten)]
    value: &'a T,
}

pub fn migrate(
    config: &Config,
    instances: &[String],
    destination: &str,
    options: &ColdOptions,
    output: Output,
) -> Result<ExitCode> {
    let mut all_awaiting = true;
    let mut history = History::open(&history::default_path())?;
    for instance in instances {
        let planning = match cold::plan(config, instance, destination, options) {
            Ok(planning) => planning,
            Err(error) => {
                all_awaiting = false;
                eprintln!("ferry: {instance}: {error}");
                continue;
            }
        };
        output.line(
            "precheck",
            &format!(
                "cold prechecks for {instance} → {destination}:\n{}",
                render_report(&planning.report)
            ),
            &Line {
                instance,
                value: &planning.report,
            },
        );
        let Some(plan) = planning.plan else {
            all_awaiting = false;
            eprintln!("ferry: {instance}: not started; fix the failed checks above and retry");
            continue;
        };
        all_awaiting &= run_one(&mut history, plan, output)?;
    }
    Ok(if all_awaiting {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_one(history: &mut History, plan: ColdMigrationPlan, output: Output) -> Result<bool> {
    let instance = plan.instance_name.clone();
    let id = history.start_migration(&NewMigration {
        kind: MigrationKind::Cold,
        instance_name: instance.clone(),
        instance_uuid: plan.instance_uuid.clone(),
        source_host: HostName::parse(&plan.source.name)?,
        destination_host: HostName::parse(&plan.destination.name)?,
        policy: "cold".into(),
        plan: serde_json::to_value(&plan)?,
        started_at_unix_ms: history::unix_ms_now(),
    })?;
    let started = std::time::Instant::now();
    let handle = cold::start(plan);
    let mut outcome = None;
    for update in handle.updates.iter() {
        let at_ms = started.elapsed().as_millis() as u64;
        let (kind, text) = match &update {
            ColdUpdate::Phase(phase) => (
                Some(EventKind::Phase),
                format!("{instance}: {}", serde_json::to_string(phase)?),
            ),
            ColdUpdate::Prechecks { .. } => (None, String::new()),
            ColdUpdate::Progress(progress) => (
                None,
                format!(
                    "{:>7} {instance}  {} disk {} of {} ({})  {} of {}  {}  ETA {}",
                    format_duration_ms(at_ms),
                    if progress.verifying {
                        "verifying"
                    } else {
                        "copying"
                    },
                    progress.disk_number,
                    progress.disk_count,
                    progress.target,
                    format_bytes(progress.bytes_done),
                    format_bytes(progress.bytes_total),
                    progress
                        .rate_bytes_per_second
                        .map_or("-".into(), format_rate),
                    progress.eta_ms.map_or("-".into(), format_duration_ms),
                ),
            ),
            ColdUpdate::Verified {
                target,
                bytes,
                sha256,
            } => (
                Some(EventKind::Phase),
                format!(
                    "{instance}: {target} verified on the destination ({}, sha256 {sha256})",
                    format_bytes(*bytes)
                ),
            ),
            ColdUpdate::Warning { message } => (
                Some(EventKind::Error),
                format!("{instance}: warning: {message}"),
            ),
            ColdUpdate::RollbackStep { description } => (
                Some(EventKind::Error),
                format!("{instance}: rollback: {description}"),
            ),
            ColdUpdate::Finished(finished) => {
                outcome = Some(finished.clone());
                (None, String::new())
            }
        };
        if let Some(kind) = kind {
            if let Err(error) = history.record_event(id, at_ms, kind, &text) {
                eprintln!("ferry: history: {error}");
            }
        }
        if !text.is_empty() {
            let kind = match &update {
                ColdUpdate::Progress(_) => "progress",
                _ => "update",
            };
            output.line(
                kind,
                &text,
                &Line {
                    instance: &instance,
                    value: &update,
                },
            );
        }
    }
    let outcome = outcome
        .or_else(|| handle.thread.join().ok())
        .context("the cold migration ended without an outcome")?;
    let (detail, downtime_ms, total_time_ms, bytes) = match &outcome {
        ColdOutcome::AwaitingConfirm {
            total_time_ms,
            downtime_ms,
            bytes_copied,
            ..
        } => (
            String::new(),
            *downtime_ms,
            Some(*total_time_ms),
            Some(*bytes_copied),
        ),
        ColdOutcome::Refused { detail } | ColdOutcome::Failed { detail } => {
            (detail.clone(), None, None, None)
        }
        ColdOutcome::RolledBack { detail, leftovers } => (
            if leftovers.is_empty() {
                detail.clone()
            } else {
                format!(
                    "{detail}; left on the destination: {}",
                    leftovers.join(", ")
                )
            },
            None,
            None,
            None,
        ),
    };
    history.finish_migration(
        id,
        &Outcome {
            kind: outcome.kind(),
            detail,
            finished_at_unix_ms: history::unix_ms_now(),
            downtime_ms,
            total_time_ms,
            bytes_transferred: bytes,
        },
    )?;
    let awaiting = matches!(outcome, ColdOutcome::AwaitingConfirm { .. });
    let text = match &outcome {
        ColdOutcome::AwaitingConfirm {
            total_time_ms,
            downtime_ms,
            bytes_copied,
            ..
        } => format!(
            "{instance}: awaiting confirm after {}, {} copied and verified, guest off for {}; \
             `ferry confirm {instance}` removes the source copy, `ferry revert {instance}` goes back",
            format_duration_ms(*total_time_ms),
            format_bytes(*bytes_copied),
            downtime_ms.map_or("-".to_string(), format_duration_ms)
        ),
        other => format!("{instance}: {}", serde_json::to_string(other)?),
    };
    output.line(
        "summary",
        &text,
        &Line {
            instance: &instance,
            value: &outcome,
        },
    );
    Ok(awaiting)
}

/// The instance's cold migration that waits for an answer, with its stored plan.
fn awaiting(history: &History, instance: &str) -> Result<(MigrationRecord, ColdMigrationPlan)> {
    let record = history
        .unfinished()?
        .into_iter()
        .filter(|r| {
            r.kind == MigrationKind::Cold
                && r.instance_name == instance
                && r.outcome == Some(OutcomeKind::AwaitingConfirm)
        })
        .max_by_key(|r| r.started_at_unix_ms);
    let Some(record) = record else {
        bail!("{instance}: no cold migration awaits confirm or revert (see `ferry history`)");
    };
    let plan = serde_json::from_value(record.plan.clone()).with_context(|| {
        format!(
            "{instance}: the stored plan of migration {} cannot be read",
            record.id
        )
    })?;
    Ok((record, plan))
}

/// `ferry confirm` (keep the move, remove the source copy) or `ferry revert` (go back).
pub fn settle(config: &Config, instance: &str, keep: bool) -> Result<ExitCode> {
    let mut history = History::open(&history::default_path())?;
    let (record, plan) = awaiting(&history, instance)?;
    let timeout = config.call_timeout();
    let (result, kind, verb) = if keep {
        (
            cold::confirm(&plan, timeout),
            OutcomeKind::Confirmed,
            "confirmed",
        )
    } else {
        (
            cold::revert(&plan, timeout),
            OutcomeKind::Reverted,
            "reverted",
        )
    };
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            let _ = history.record_event(record.id, 0, EventKind::Error, &error.to_string());
            bail!("{instance}: not {verb}: {error}");
        }
    };
    for step in &report.steps {
        println!("{instance}: {step}");
        let _ = history.record_event(record.id, 0, EventKind::Operator, step);
    }
    history.finish_migration(
        record.id,
        &Outcome {
            kind,
            detail: String::new(),
            finished_at_unix_ms: history::unix_ms_now(),
            downtime_ms: None,
            total_time_ms: None,
            bytes_transferred: None,
        },
    )?;
    println!("{instance}: {verb}");
    Ok(ExitCode::SUCCESS)
}
