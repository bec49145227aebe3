//! `ferry migrate`, `ferry resume`, `ferry abort`, `ferry force-complete`: the engine from a
//! shell, one line per sample, a summary at the end, exit 0 only when every guest runs on its
//! destination.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ferry::config::Config;
use ferry::engine::cold::Recovery;
use ferry::engine::cold_record;
use ferry::engine::control::{self, ControlError};
use ferry::engine::history::{self, History};
use ferry::engine::live::{LiveMigrationPlan, MigrationUpdate, OperatorCommand};
use ferry::engine::options::LiveOptions;
use ferry::engine::report::{self, ProgressLine, Summary};
use ferry::engine::service::{Destination, Engine, EngineEvent, EngineRequest, TakeOver};
use ferry::engine::supervisor::SupervisorEvent;
use ferry::engine::unwatched::{abort_unwatched, UnwatchedAbort};
use ferry::model::migration::{MigrationId, MigrationKind};
use ferry::precheck::{render_report, PrecheckReport};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

/// The engine for one command: a CLI command cannot do without migrations, so an engine
/// without its history is an error, with why.
pub fn start_engine(
    config: &Config,
    take_over: TakeOver,
) -> Result<(Engine, UnboundedReceiver<EngineEvent>)> {
    let (engine, events) = Engine::start(config, take_over);
    if let Some(reason) = engine.unavailable() {
        bail!("{reason}");
    }
    Ok((engine, events))
}

/// Where the output goes: text for people, JSON lines for scripts.
#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn line<T: Serialize>(&self, kind: &str, text: &str, value: &T) {
        if self.json {
            let mut object = serde_json::to_value(value).unwrap_or_default();
            if let Some(map) = object.as_object_mut() {
                map.insert("type".into(), kind.into());
            }
            println!("{object}");
        } else {
            println!("{text}");
        }
    }
}

#[derive(Serialize)]
struct PrecheckLine<'a> {
    instance: &'a str,
    destination: &'a str,
    passed: bool,
    report: &'a PrecheckReport,
}

/// Asks the engine to check and launch each instance; every migration that passes runs under
/// the queue. One line per event, a summary per migration.
pub fn migrate(
    config: &Config,
    instances: &[String],
    destination: &str,
    options: &LiveOptions,
    output: Output,
) -> Result<ExitCode> {
    let (engine, mut events) = start_engine(config, TakeOver::Nothing)?;
    let destination = if destination == "auto" {
        Destination::Auto
    } else {
        Destination::Named(destination.to_string())
    };
    for instance in instances {
        engine.send(EngineRequest::LaunchLive {
            instance: instance.clone(),
            source: None,
            destination: destination.clone(),
            options: options.clone(),
        });
    }
    let completed = watch(&mut events, instances.len(), output)?;
    Ok(if completed == instances.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Settles the cold migrations a ferry that died left mid-way (`cold_record::recover_interrupted`),
/// then takes over every live migration the history shows unfinished: a ferry that died left
/// them to libvirt, which carried on.
pub fn resume(config: &Config, output: Output) -> Result<ExitCode> {
    resume_matching(config, output, None)
}

/// `ferry recover INSTANCE`: the ferry that watches the migration resumes its broken post-copy
/// at once; with none watching, this ferry takes the migration over from the history, which
/// resumes a broken post-copy as soon as both hosts answer, and watches it to its end.
pub fn recover(config: &Config, instance: &str, output: Output) -> Result<ExitCode> {
    match send_to_watcher(instance, OperatorCommand::RecoverPostCopy)? {
        Some(exit) => Ok(exit),
        None => resume_matching(config, output, Some(instance)),
    }
}

/// Sends the command to the ferry watching the migration and prints its answer; None when
/// no ferry watches it.
fn send_to_watcher(instance: &str, command: OperatorCommand) -> Result<Option<ExitCode>> {
    match control::send(instance, command) {
        Ok(Ok(message)) => {
            println!("{instance}: {message}");
            Ok(Some(ExitCode::SUCCESS))
        }
        Ok(Err(reason)) => {
            eprintln!("ferry: {instance}: {reason}");
            Ok(Some(ExitCode::FAILURE))
        }
        Err(ControlError::NoListener { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn resume_matching(config: &Config, output: Output, only: Option<&str>) -> Result<ExitCode> {
    let path = history::default_path();
    let cold_recovered = match only {
        None => recover_cold(&mut History::open(&path)?, output)?,
        Some(_) => None,
    };
    let take_over = match only {
        None => TakeOver::Everything,
        Some(instance) => TakeOver::Only(instance.to_string()),
    };
    let (engine, mut events) = start_engine(config, take_over)?;
    let resumed = engine.resumed().len();
    if let (Some(instance), 0) = (only, resumed) {
        bail!(
            "{instance}: no unfinished live migration of it in {}; a broken post-copy that \
             ferry did not start can be resumed from its source with both hosts' connections \
             (never `virsh migrate --p2p --postcopy-resume`, which crashed the destination's \
             libvirtd on libvirt 11.3)",
            path.display()
        );
    }
    if resumed == 0 {
        if cold_recovered.is_none() {
            println!(
                "nothing to resume: no unfinished live migration and no interrupted cold \
                 migration in {}",
                path.display()
            );
        }
        return Ok(if cold_recovered == Some(false) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let completed = watch(&mut events, resumed, output)?;
    Ok(if completed == resumed && cold_recovered != Some(false) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Serialize)]
struct RecoveredLine<'a> {
    id: MigrationId,
    instance: &'a str,
    source: &'a str,
    destination: &'a str,
    #[serde(flatten)]
    recovery: Option<&'a Recovery>,
    /// Why it was left as it is (and will be tried again by the next `ferry resume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_recovered: Option<&'a str>,
}

/// Recovers the interrupted cold migrations and prints what each came to. None: there were
/// none; Some(false): one or more were left as they are.
fn recover_cold(history: &mut History, output: Output) -> Result<Option<bool>> {
    let interrupted = cold_record::recover_interrupted(history)?;
    if interrupted.is_empty() {
        return Ok(None);
    }
    let mut all_settled = true;
    for found in &interrupted {
        let record = &found.record;
        let (id, instance) = (record.id, record.instance_name.as_str());
        let line = |recovery, not_recovered| RecoveredLine {
            id,
            instance,
            source: &record.source_host,
            destination: &record.destination_host,
            recovery,
            not_recovered,
        };
        let heading = format!(
            "#{id} {instance}: cold migration {} → {} interrupted when ferry stopped",
            record.source_host, record.destination_host
        );
        match &found.result {
            Ok((plan, recovery @ Recovery::AwaitingConfirm { reason })) => output.line(
                "recovered",
                &format!(
                    "{heading}; awaiting confirm: {reason}. `ferry confirm {instance}` {}, \
                     `ferry revert {instance}` goes back",
                    if plan.resizes_in_place().is_some() {
                        "keeps the new size"
                    } else {
                        "removes the source copy"
                    }
                ),
                &line(Some(recovery), None),
            ),
            Ok((
                _,
                recovery @ Recovery::RolledBack {
                    reason,
                    steps,
                    leftovers,
                },
            )) => {
                let mut text = format!(
                    "{heading}; rolled back ({reason}): {instance} is on {} as before",
                    record.source_host
                );
                for step in steps {
                    text.push_str(&format!("\n#{id} {instance}: {step}"));
                }
                if !leftovers.is_empty() {
                    text.push_str(&format!(
                        "\n#{id} {instance}: left on the destination (remove by hand): {}",
                        leftovers.join(", ")
                    ));
                }
                output.line("recovered", &text, &line(Some(recovery), None));
            }
            Err(reason) => {
                all_settled = false;
                if output.json {
                    output.line("recovered", "", &line(None, Some(reason)));
                } else {
                    eprintln!("ferry: {heading}; not recovered: {reason}");
                }
            }
        }
    }
    Ok(Some(all_settled))
}

/// Prints every event of the engine until each launched or resumed live migration has its
/// outcome (or was refused); returns how many completed.
fn watch(
    events: &mut UnboundedReceiver<EngineEvent>,
    expected: usize,
    output: Output,
) -> Result<usize> {
    let mut remaining = expected;
    let mut completed = 0;
    let mut plans: HashMap<MigrationId, Box<LiveMigrationPlan>> = HashMap::new();
    let mut iterations = HashMap::new();
    let mut note_printed = false;
    while remaining > 0 {
        let event = events
            .blocking_recv()
            .context("the engine stopped before every migration ended")?;
        let event = match event {
            EngineEvent::Live(event) => *event,
            EngineEvent::Planned {
                kind: MigrationKind::Live,
                instance,
                source,
                destination,
                report,
                passed_over,
            } => {
                if !output.json {
                    for (host, why) in &passed_over {
                        println!("auto: {host} not chosen: {why}");
                    }
                }
                output.line(
                    "precheck",
                    &format!(
                        "prechecks for {instance} {source} → {destination}:\n{}",
                        render_report(&report)
                    ),
                    &PrecheckLine {
                        instance: &instance,
                        destination: &destination,
                        passed: report.passed(),
                        report: &report,
                    },
                );
                if report.passed() && !output.json && !note_printed {
                    note_printed = true;
                    println!(
                        "Ctrl-C leaves the migrations running in libvirt: `ferry resume` \
                         watches them again, `ferry abort NAME` stops one."
                    );
                }
                continue;
            }
            EngineEvent::Refused {
                kind: MigrationKind::Live,
                instance,
                reason,
            } => {
                remaining -= 1;
                eprintln!("ferry: {instance}: not started: {reason}");
                continue;
            }
            EngineEvent::Notice(message) => {
                eprintln!("ferry: note: {message}");
                continue;
            }
            EngineEvent::Planned { .. }
            | EngineEvent::Refused { .. }
            | EngineEvent::Cold(..)
            | EngineEvent::Nova(..)
            | EngineEvent::NovaVerdicts { .. }
            | EngineEvent::Prechecks { .. } => continue,
        };
        match &event {
            SupervisorEvent::Queued { request, plan } => {
                output.line(
                    "queued",
                    &format!(
                        "{}: {} → {}, history id {request}",
                        plan.instance_name, plan.source.name, plan.destination.name
                    ),
                    &serde_json::json!({
                        "request": request,
                        "instance": plan.instance_name,
                        "source": plan.source.name,
                        "destination": plan.destination.name,
                    }),
                );
                plans.insert(*request, plan.clone());
            }
            SupervisorEvent::Waiting {
                request,
                description,
                ..
            } => {
                let instance = plans.get(request).map_or("", |p| p.instance_name.as_str());
                output.line("waiting", &format!("{instance}: {description}"), &event)
            }
            SupervisorEvent::Started { request, attached } => {
                let instance = plans.get(request).map_or("", |p| p.instance_name.as_str());
                let verb = if *attached {
                    "resumed watching"
                } else {
                    "started"
                };
                output.line("started", &format!("{instance}: {verb}"), &event);
            }
            SupervisorEvent::Rejected { instance, reason } => {
                remaining -= 1;
                output.line(
                    "rejected",
                    &format!("{instance}: not started: {reason}"),
                    &event,
                );
            }
            SupervisorEvent::Notice { message, .. } => {
                output.line("notice", &format!("note: {message}"), &event)
            }
            SupervisorEvent::Update { request, update } => {
                let instance = plans
                    .get(request)
                    .map_or(String::new(), |p| p.instance_name.clone());
                match update {
                    MigrationUpdate::Progress(progress) => {
                        if let Some(n) = progress.iteration {
                            iterations.insert(*request, n);
                        }
                        output.line(
                            "progress",
                            &report::progress_text(&instance, progress),
                            &ProgressLine::new(&instance, progress),
                        );
                    }
                    MigrationUpdate::Policy(decision) => output.line(
                        "policy",
                        &format!("{instance}: policy: {}", decision.reason),
                        &decision,
                    ),
                    MigrationUpdate::OperatorAction { description } => {
                        output.line("operator", &format!("{instance}: {description}"), update)
                    }
                    MigrationUpdate::Refused { reason } => {
                        output.line("refused", &format!("{instance}: refused: {reason}"), update)
                    }
                    MigrationUpdate::Warning { message } => output.line(
                        "warning",
                        &format!("{instance}: warning: {message}"),
                        update,
                    ),
                    MigrationUpdate::Attached {
                        job_elapsed_ms,
                        max_downtime_ms,
                    } => output.line(
                        "attached",
                        &format!(
                            "{instance}: the job has been running {} s; max downtime {}",
                            job_elapsed_ms / 1000,
                            max_downtime_ms.map_or("unknown".into(), |ms| format!("{ms} ms"))
                        ),
                        update,
                    ),
                    MigrationUpdate::Silent {
                        host,
                        silent_for_ms,
                        observed,
                        figures,
                    } => {
                        let seconds = format!("{:.1} s", *silent_for_ms as f64 / 1000.0);
                        let text = if *figures {
                            format!("{instance}: no figures for {seconds}: reconnecting to {host} ({host} did not answer: {observed})")
                        } else {
                            format!("{instance}: {host} silent for {seconds}: reconnecting ({observed})")
                        };
                        output.line("silent", &text, update)
                    }
                    MigrationUpdate::Reconnected {
                        host,
                        silent_for_ms,
                    } => output.line(
                        "reconnected",
                        &format!(
                            "{instance}: {host} answers again after {:.1} s; watching the same job",
                            *silent_for_ms as f64 / 1000.0
                        ),
                        update,
                    ),
                    MigrationUpdate::Unsettled {
                        waiting_for,
                        gives_up_in_ms,
                    } => output.line(
                        "unsettled",
                        &format!(
                            "{instance}: unsettled: {waiting_for} (asking again; left for `ferry \
                             resume` in {} s)",
                            gives_up_in_ms / 1000
                        ),
                        update,
                    ),
                    MigrationUpdate::PostCopyBroken { detail } => {
                        output.line("postcopy_broken", &format!("{instance}: {detail}"), update)
                    }
                    MigrationUpdate::PostCopyRecovery { attempt, result } => output.line(
                        "postcopy_recovery",
                        &match result {
                            Ok(done) => format!("{instance}: recovery attempt {attempt}: {done}"),
                            Err(error) => {
                                format!("{instance}: recovery attempt {attempt} failed: {error}")
                            }
                        },
                        update,
                    ),
                    MigrationUpdate::Started { .. }
                    | MigrationUpdate::Sample(_)
                    | MigrationUpdate::Finished(_) => {}
                }
            }
            SupervisorEvent::Done { request, outcome } => {
                remaining -= 1;
                let Some(plan) = plans.get(request) else {
                    continue;
                };
                let summary = Summary {
                    runs_on: report::runs_on(outcome, &plan.source.name, &plan.destination.name),
                    instance: plan.instance_name.clone(),
                    source: plan.source.name.clone(),
                    destination: plan.destination.name.clone(),
                    outcome: outcome.clone(),
                    iterations: iterations.get(request).copied(),
                };
                if summary.completed() {
                    completed += 1;
                }
                output.line("summary", &summary.text(), &summary);
            }
        }
    }
    Ok(completed)
}

/// `ferry abort` / `ferry force-complete`: through the ferry that watches the migration, or,
/// for an abort when none does, straight to libvirt (which rolls the guest back itself).
pub fn operator_command(
    config: &Config,
    instance: &str,
    command: OperatorCommand,
) -> Result<ExitCode> {
    match send_to_watcher(instance, command.clone())? {
        Some(exit) => Ok(exit),
        None => match command {
            OperatorCommand::Abort => abort_unwatched_now(config, instance),
            _ => bail!(
                "no ferry is watching a migration of {instance}; run `ferry resume` to watch it \
                 again (force-complete needs a watching ferry, which resumes a paused guest at \
                 the end), then retry"
            ),
        },
    }
}

/// Aborts a migration nobody watches, through the engine.
fn abort_unwatched_now(config: &Config, instance: &str) -> Result<ExitCode> {
    match ferry::runtime::wait(abort_unwatched(config, instance)) {
        Err(reason) => bail!("{reason}"),
        Ok(UnwatchedAbort::RefusedInPostCopy { host }) => {
            eprintln!(
                "ferry: {instance} on {host}: abort refused: the migration is in post-copy; it \
                 can only finish (`ferry recover {instance}` resumes a broken one)"
            );
            Ok(ExitCode::FAILURE)
        }
        Ok(UnwatchedAbort::Sent { host }) => {
            println!(
                "{instance}: abort sent to libvirt on {host}; the guest stays there. No ferry \
                 was watching: `ferry resume` records the outcome."
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
