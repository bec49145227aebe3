//! `ferry migrate --cold`, `ferry confirm`, `ferry revert`: Nova's resize/migrate flow from a
//! shell. The migration stops at "awaiting confirm" with the source copy kept; the operator
//! settles it later, from any terminal (or the TUI), with the plan the history kept.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use ferry::config::Config;
use ferry::engine::cold::{self, ColdMigrationPlan, ColdOptions, ColdOutcome, ColdUpdate};
use ferry::engine::cold_record;
use ferry::engine::history::{self, History};
use ferry::model::units::{format_bytes, format_duration_ms, format_rate};
use ferry::precheck::render_report;
use serde::Serialize;

use super::migrate::Output;

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    instance: &'a str,
    /// ms since the migration started; absent before it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    at_ms: Option<u64>,
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
        let planning =
            match ferry::runtime::wait(cold::plan(config, instance, destination, options)) {
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
                at_ms: None,
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

/// The text line of an update; None for those the text output leaves out.
fn update_text(instance: &str, at_ms: u64, update: &ColdUpdate) -> Option<String> {
    match update {
        ColdUpdate::Progress(progress) => Some(format!(
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
        )),
        other => cold_record::history_event(other).map(|(_, text)| format!("{instance}: {text}")),
    }
}

fn run_one(history: &mut History, plan: ColdMigrationPlan, output: Output) -> Result<bool> {
    let instance = plan.instance_name.clone();
    // Held until the outcome is recorded: `ferry resume` leaves this migration alone meanwhile.
    let _running = cold_record::lock_run(&plan)?;
    let id = cold_record::record_start(history, &plan)?;
    let started = Instant::now();
    let mut handle = cold::start(plan);
    let mut outcome = None;
    while let Some(update) = handle.updates.blocking_recv() {
        let at_ms = started.elapsed().as_millis() as u64;
        if let Err(error) = cold_record::record_update(history, id, at_ms, &update) {
            eprintln!("ferry: {error}");
        }
        if let ColdUpdate::Finished(finished) = &update {
            outcome = Some(finished.clone());
        }
        if let Some(text) = update_text(&instance, at_ms, &update) {
            let kind = match &update {
                ColdUpdate::Progress(_) => "progress",
                _ => "update",
            };
            output.line(
                kind,
                &text,
                &Line {
                    instance: &instance,
                    at_ms: Some(at_ms),
                    value: &update,
                },
            );
        }
    }
    let outcome = outcome
        .or_else(|| ferry::runtime::wait(handle.task).ok())
        .context("the cold migration ended without an outcome")?;
    cold_record::record_outcome(history, id, &outcome)?;
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
            at_ms: Some(started.elapsed().as_millis() as u64),
            value: &outcome,
        },
    );
    Ok(awaiting)
}

/// `ferry confirm` (keep the move, remove the source copy) or `ferry revert` (go back).
pub fn settle(config: &Config, instance: &str, keep: bool) -> Result<ExitCode> {
    let mut history = History::open(&history::default_path())?;
    let (id, plan) = cold_record::awaiting(&history, instance)?;
    let report = cold_record::settle(&mut history, id, &plan, keep, config.call_timeout())?;
    for step in &report.steps {
        println!("{instance}: {step}");
    }
    println!(
        "{instance}: {}",
        if keep { "confirmed" } else { "reverted" }
    );
    Ok(ExitCode::SUCCESS)
}
