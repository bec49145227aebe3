//! `ferry migrate --cold`, `ferry confirm`, `ferry revert`: Nova's resize/migrate flow from a
//! shell. The migration stops at "awaiting confirm" with the source copy kept; the operator
//! settles it later, from any terminal (or the TUI), with the plan the history kept.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use ferry::config::Config;
use ferry::engine::cold::{ColdOptions, ColdOutcome, ColdUpdate};
use ferry::engine::cold_record;
use ferry::engine::history::{self, History};
use ferry::engine::service::{ColdEvent, EngineEvent, EngineRequest, TakeOver};
use ferry::model::migration::{MigrationId, MigrationKind};
use ferry::model::units::{format_bytes, format_duration_ms, format_rate};
use ferry::precheck::render_report;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

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
    let (engine, mut events) = super::migrate::start_engine(config, TakeOver::Nothing)?;
    for instance in instances {
        engine.send(EngineRequest::LaunchCold {
            instance: instance.clone(),
            source: None,
            destination: destination.to_string(),
            options: options.clone(),
        });
    }
    let awaiting = watch(&mut events, instances.len(), output)?;
    Ok(if awaiting == instances.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the engine's events until each cold launch ended (awaiting confirm, rolled back,
/// failed) or was refused; returns how many await confirm.
fn watch(
    events: &mut UnboundedReceiver<EngineEvent>,
    expected: usize,
    output: Output,
) -> Result<usize> {
    let mut remaining = expected;
    let mut awaiting = 0;
    // Each migration's instance and when its run began: `at_ms` counts from there.
    let mut runs: HashMap<MigrationId, (String, Instant)> = HashMap::new();
    // What each resize changes, for its last line.
    let mut resizes: HashMap<MigrationId, String> = HashMap::new();
    while remaining > 0 {
        let event = events
            .blocking_recv()
            .context("the engine stopped before every cold migration ended")?;
        match event {
            EngineEvent::Planned {
                kind: MigrationKind::Cold,
                instance,
                destination,
                report,
                ..
            } => output.line(
                "precheck",
                &format!(
                    "cold prechecks for {instance} → {destination}:\n{}",
                    render_report(&report)
                ),
                &Line {
                    instance: &instance,
                    at_ms: None,
                    value: &report,
                },
            ),
            EngineEvent::Refused {
                kind: MigrationKind::Cold,
                instance,
                reason,
            } => {
                remaining -= 1;
                eprintln!("ferry: {instance}: not started: {reason}");
            }
            EngineEvent::Notice(message) => eprintln!("ferry: note: {message}"),
            EngineEvent::Cold(id, ColdEvent::Queued { description }) => {
                let instance = runs.get(&id).map_or("", |(instance, _)| instance.as_str());
                output.line(
                    "waiting",
                    &format!("{instance}: {description}"),
                    &serde_json::json!({ "instance": instance, "description": description }),
                );
            }
            EngineEvent::Cold(id, ColdEvent::Launched(plan)) => {
                runs.insert(id, (plan.instance_name.clone(), Instant::now()));
                if let Some(words) = cold_record::resize_words(&plan) {
                    resizes.insert(id, words);
                }
            }
            EngineEvent::Cold(id, ColdEvent::Engine(update)) => {
                let Some((instance, started)) = runs.get(&id) else {
                    continue;
                };
                let at_ms = started.elapsed().as_millis() as u64;
                if let ColdUpdate::Finished(outcome) = &update {
                    remaining -= 1;
                    if matches!(outcome, ColdOutcome::AwaitingConfirm { .. }) {
                        awaiting += 1;
                    }
                    print_summary(
                        instance,
                        at_ms,
                        outcome,
                        resizes.get(&id).map(String::as_str),
                        output,
                    )?;
                } else if let Some(text) = update_text(instance, at_ms, &update) {
                    let kind = match &update {
                        ColdUpdate::Progress(_) => "progress",
                        _ => "update",
                    };
                    output.line(
                        kind,
                        &text,
                        &Line {
                            instance,
                            at_ms: Some(at_ms),
                            value: &update,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    Ok(awaiting)
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

/// The last line of a cold migration: where it stands and what the operator does next.
fn print_summary(
    instance: &str,
    at_ms: u64,
    outcome: &ColdOutcome,
    resize: Option<&str>,
    output: Output,
) -> Result<()> {
    let text = match outcome {
        ColdOutcome::AwaitingConfirm {
            total_time_ms,
            downtime_ms,
            bytes_copied,
            ..
        } if resize.is_some() => format!(
            "{instance}: awaiting confirm after {}, {} ({} copied), guest off for {}; \
             `ferry confirm {instance}` keeps the new size, `ferry revert {instance}` goes back",
            format_duration_ms(*total_time_ms),
            resize.unwrap_or_default(),
            format_bytes(*bytes_copied),
            downtime_ms.map_or("-".to_string(), format_duration_ms)
        ),
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
            instance,
            at_ms: Some(at_ms),
            value: outcome,
        },
    );
    Ok(())
}

/// `ferry confirm` (keep the move, remove the source copy) or `ferry revert` (go back),
/// through the engine, with the plan the history kept.
pub fn settle(config: &Config, instance: &str, keep: bool) -> Result<ExitCode> {
    let (id, _) = cold_record::awaiting(&History::open(&history::default_path())?, instance)?;
    let (engine, mut events) = super::migrate::start_engine(config, TakeOver::Nothing)?;
    engine.send(EngineRequest::SettleCold { id, keep });
    loop {
        let event = events
            .blocking_recv()
            .context("the engine stopped before the answer was carried out")?;
        match event {
            EngineEvent::Cold(settled, ColdEvent::Settled { result, .. }) if settled == id => {
                let steps = result.map_err(|reason| anyhow::anyhow!("{instance}: {reason}"))?;
                for step in &steps {
                    println!("{instance}: {step}");
                }
                println!(
                    "{instance}: {}",
                    if keep { "confirmed" } else { "reverted" }
                );
                return Ok(ExitCode::SUCCESS);
            }
            EngineEvent::Notice(message) => eprintln!("ferry: note: {message}"),
            _ => {}
        }
    }
}
