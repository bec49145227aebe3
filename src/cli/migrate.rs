//! `ferry migrate`, `ferry resume`, `ferry abort`, `ferry force-complete`: the engine from a
//! shell, one line per sample, a summary at the end, exit 0 only when every guest runs on its
//! destination.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ferry::config::Config;
use ferry::engine::cold::Recovery;
use ferry::engine::cold_record;
use ferry::engine::control::{self, ControlError};
use ferry::engine::history::{self, History, MigrationId};
use ferry::engine::live::{MigrationUpdate, OperatorCommand};
use ferry::engine::options::{self, LiveOptions};
use ferry::engine::report::{self, ProgressLine, Summary};
use ferry::engine::supervisor::{
    unfinished_live_migrations, Supervisor, SupervisorEvent, SupervisorSettings,
};
use ferry::libvirt::lifecycle::DomainKey;
use ferry::libvirt::precheck_facts;
use ferry::libvirt::{HostConnection, LibvirtError};
use ferry::model::standing::{HostAnswer, RunningJob};
use ferry::precheck::{render_report, PrecheckFacts, PrecheckReport};
use serde::Serialize;

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

/// Runs the prechecks for each instance, then every migration that passed, under the queue.
pub fn migrate(
    config: &Config,
    instances: &[String],
    destination: &str,
    options: &LiveOptions,
    output: Output,
) -> Result<ExitCode> {
    let mut plans = Vec::new();
    let mut refused = 0;
    for instance in instances {
        let checked = if destination == "auto" {
            auto_destination(config, instance, options, output)
        } else {
            precheck_facts::precheck_live_migration(
                config,
                instance,
                None,
                destination,
                options.block,
            )
            .map_err(anyhow::Error::from)
        };
        let (facts, report) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                refused += 1;
                eprintln!("ferry: {instance}: {error:#}");
                continue;
            }
        };
        output.line(
            "precheck",
            &format!(
                "prechecks for {instance} {} → {}:\n{}",
                facts.source_host,
                facts.destination_host,
                render_report(&report)
            ),
            &PrecheckLine {
                instance,
                destination: &facts.destination_host,
                passed: report.passed(),
                report: &report,
            },
        );
        if !report.passed() {
            refused += 1;
            eprintln!("ferry: {instance}: not started; fix the failed checks above and retry");
            continue;
        }
        match options::live_plan(config, &facts, &report, options) {
            Some(plan) => plans.push(plan),
            None => {
                refused += 1;
                eprintln!("ferry: {instance}: a host is missing from the config");
            }
        }
    }
    if plans.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    let history = History::open(&history::default_path())?;
    let mut supervisor = Supervisor::start(SupervisorSettings {
        history,
        limits: config.migration.queue_limits(),
    });
    if !output.json {
        println!(
            "Ctrl-C leaves the migrations running in libvirt: `ferry resume` watches them \
             again, `ferry abort NAME` stops one."
        );
    }
    for plan in &plans {
        supervisor.submit(plan.clone());
    }
    let completed = watch(&mut supervisor, plans.len(), output)?;
    Ok(if completed == plans.len() && refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--to auto`: every other host is checked; the passing one with the most free memory wins.
/// The refused candidates are listed with their reasons, so the choice can be understood.
fn auto_destination(
    config: &Config,
    instance: &str,
    options: &LiveOptions,
    output: Output,
) -> Result<(PrecheckFacts, PrecheckReport)> {
    let auto = precheck_facts::pick_auto_destination(config, instance, None, options.block)?;
    for candidate in &auto.candidates {
        if Some(&candidate.host) != auto.chosen.as_ref() && !output.json {
            let verdict = if candidate.report.passed() {
                "passes, less free memory".to_string()
            } else {
                candidate.report.failure_reasons()
            };
            println!("auto: {} not chosen: {verdict}", candidate.host);
        }
    }
    let chosen = auto.chosen.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "--to auto: no host passes the prechecks from {}; run with --to HOST to see one \
             host's full report",
            auto.source_host
        )
    })?;
    let candidate = auto
        .candidates
        .into_iter()
        .find(|c| c.host == chosen)
        .expect("the chosen host is a candidate");
    Ok((candidate.facts, candidate.report))
}

/// Settles the cold migrations a ferry that died left mid-way (`cold_record::recover_interrupted`),
/// then takes over every live migration the history shows unfinished: a ferry that died left
/// them to libvirt, which carried on.
pub fn resume(output: Output) -> Result<ExitCode> {
    resume_matching(output, None)
}

/// `ferry recover INSTANCE`: the ferry that watches the migration resumes its broken post-copy
/// at once; with none watching, this ferry takes the migration over from the history, which
/// resumes a broken post-copy as soon as both hosts answer, and watches it to its end.
pub fn recover(instance: &str, output: Output) -> Result<ExitCode> {
    match send_to_watcher(instance, OperatorCommand::RecoverPostCopy)? {
        Some(exit) => Ok(exit),
        None => resume_matching(output, Some(instance)),
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

fn resume_matching(output: Output, only: Option<&str>) -> Result<ExitCode> {
    let path = history::default_path();
    let mut history = History::open(&path)?;
    let cold_recovered = match only {
        None => recover_cold(&mut history, output)?,
        Some(_) => None,
    };
    let unfinished = unfinished_live_migrations(&history)?;
    for problem in &unfinished.unreadable {
        eprintln!("ferry: {problem}");
    }
    let plans: Vec<_> = unfinished
        .resumable
        .into_iter()
        .filter(|(_, plan)| only.is_none_or(|name| plan.instance_name == name))
        .collect();
    if let (Some(instance), true) = (only, plans.is_empty()) {
        bail!(
            "{instance}: no unfinished live migration of it in {}; a broken post-copy that \
             ferry did not start can be resumed from its source with both hosts' connections \
             (never `virsh migrate --p2p --postcopy-resume`, which crashed the destination's \
             libvirtd on libvirt 11.3)",
            path.display()
        );
    }
    if plans.is_empty() {
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
    let mut supervisor = Supervisor::start(SupervisorSettings {
        history,
        limits: Default::default(),
    });
    for (id, plan) in &plans {
        supervisor.resume(*id, plan.clone());
    }
    let completed = watch(&mut supervisor, plans.len(), output)?;
    Ok(
        if completed == plans.len() && cold_recovered != Some(false) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
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
            Ok((_, recovery @ Recovery::AwaitingConfirm { reason })) => output.line(
                "recovered",
                &format!(
                    "{heading}; awaiting confirm: {reason}. `ferry confirm {instance}` removes \
                     the source copy, `ferry revert {instance}` goes back"
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

/// Prints every event until each submitted migration has its outcome; returns how many
/// completed.
fn watch(supervisor: &mut Supervisor, submitted: usize, output: Output) -> Result<usize> {
    let mut remaining = submitted;
    let mut completed = 0;
    let mut plans = std::collections::HashMap::new();
    let mut iterations = std::collections::HashMap::new();
    while remaining > 0 {
        let event = supervisor
            .events
            .blocking_recv()
            .context("the supervisor stopped before every migration ended")?;
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
            OperatorCommand::Abort => abort_unwatched(config, instance),
            _ => bail!(
                "no ferry is watching a migration of {instance}; run `ferry resume` to watch it \
                 again (force-complete needs a watching ferry, which resumes a paused guest at \
                 the end), then retry"
            ),
        },
    }
}

/// Aborts a migration nobody watches: finds the host where the guest has an outgoing job (its
/// destination holds the incoming side, which cannot be aborted there).
fn abort_unwatched(config: &Config, instance: &str) -> Result<ExitCode> {
    let timeout = config.call_timeout();
    let key = DomainKey::Name(instance.to_string());
    let mut holders = Vec::new();
    for host in &config.hosts {
        let reading = ferry::runtime::wait(async {
            let connection = HostConnection::connect(&host.uri, timeout).await.ok()?;
            let answer = connection.domain_standing(&key, timeout).await;
            Some((connection, answer))
        });
        if let Some((connection, HostAnswer::Holds(standing))) = reading {
            holders.push((host, connection, standing));
        }
    }
    let Some((host, connection, standing)) = holders
        .iter()
        .find(|(_, _, standing)| standing.job == Some(RunningJob::MigrationOut))
    else {
        if holders.is_empty() {
            bail!("{instance}: not found on any reachable host in the config");
        }
        bail!("{instance}: no job runs on it on any reachable host (nothing to abort)");
    };
    if standing.paused_for_post_copy || standing.post_copy_failed {
        eprintln!(
            "ferry: {instance} on {}: abort refused: the migration is in post-copy; it can \
             only finish (`ferry recover {instance}` resumes a broken one)",
            host.name
        );
        return Ok(ExitCode::FAILURE);
    }
    ferry::runtime::wait(connection.abort_migration_job(&key, timeout))
        .map_err(|error| error_with_host(error, host.name.as_str()))?;
    println!(
        "{instance}: abort sent to libvirt on {}; the guest stays there. No ferry was watching: \
         `ferry resume` records the outcome.",
        host.name
    );
    Ok(ExitCode::SUCCESS)
}

fn error_with_host(error: LibvirtError, host: &str) -> anyhow::Error {
    anyhow::anyhow!("{host}: {error}")
}
