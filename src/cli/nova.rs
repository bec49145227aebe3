//! `ferry migrate --cloud`, `ferry abort|force-complete --cloud` and the Nova half of
//! `ferry resume`: live migrations Nova carries out, watched and recorded by ferry, and the
//! cold migrations and resizes a killed ferry left unfinished, settled from Nova's answers.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use tokio::sync::mpsc;

use ferry::config::Config;
use ferry::engine::live::OperatorCommand;
use ferry::engine::nova::cold;
use ferry::engine::nova::live::{self, NovaLiveOutcome, NovaLiveUpdate};
use ferry::engine::nova::CloudSession;
use ferry::runtime;

use super::migrate::Output;
use super::nova_cold;

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!("{:.0} MiB", b as f64 / MIB))
        .unwrap_or_else(|| "-".into())
}

fn rate(bytes_per_second: Option<u64>) -> String {
    bytes_per_second
        .map(|b| format!("{:.1} MiB/s", b as f64 / MIB))
        .unwrap_or_else(|| "-".into())
}

/// One update as a line: libvirt's figures marked as ferry's own read-only reading, Nova's
/// record with how old Nova's last save of it was.
fn describe(server: &str, update: &NovaLiveUpdate) -> String {
    match update {
        NovaLiveUpdate::Launched {
            nova_migration_id,
            source,
            destination,
            requested_destination,
            history_id,
            ..
        } => format!(
            "{server}: Nova migration {nova_migration_id}: {source} → {} (ferry history #{})",
            destination
                .clone()
                .or_else(|| requested_destination.clone())
                .unwrap_or_else(|| "the scheduler's choice".into()),
            history_id.0
        ),
        NovaLiveUpdate::Attached {
            nova_migration_id, ..
        } => format!("{server}: watching Nova migration {nova_migration_id} again"),
        NovaLiveUpdate::Nova(reading) => format!(
            "{server}: nova     {:<10} memory remaining {} of {}, disk remaining {} \
             (Nova's record, saved {})",
            reading.status,
            mib(reading.memory_remaining_bytes),
            mib(reading.memory_total_bytes),
            mib(reading.disk_remaining_bytes),
            reading.updated_at.as_deref().unwrap_or("-")
        ),
        NovaLiveUpdate::Libvirt(progress) => format!(
            "{server}: libvirt  pass {} remaining {} transfer {} dirty {} expected downtime {} \
             {}",
            progress
                .iteration
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            mib(progress.memory_remaining_bytes),
            rate(progress.transfer_rate_bytes_per_second),
            rate(progress.dirty_rate_bytes_per_second),
            progress
                .expected_downtime_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "-".into()),
            match &progress.verdict {
                ferry::progress::ConvergenceVerdict::NotConverging { reason } => {
                    format!("NOT CONVERGING: {reason}")
                }
                verdict => verdict.name().to_string(),
            }
        ),
        NovaLiveUpdate::LibvirtUnavailable { reason } => {
            format!("{server}: no libvirt figures: {reason}")
        }
        NovaLiveUpdate::Silent { detail } => {
            format!("{server}: the cloud did not answer: {detail}")
        }
        NovaLiveUpdate::Finished(outcome) => match outcome {
            NovaLiveOutcome::Completed {
                host,
                total_time_ms,
            } => format!(
                "{server}: completed: Nova reports it on {host} after {:.1} s",
                *total_time_ms as f64 / 1000.0
            ),
            NovaLiveOutcome::Cancelled { detail } => format!("{server}: cancelled: {detail}"),
            NovaLiveOutcome::Failed { detail } => format!("{server}: failed: {detail}"),
            NovaLiveOutcome::Unsettled { detail } => format!("{server}: unsettled: {detail}"),
        },
    }
}

#[derive(Serialize)]
struct UpdateLine<'a> {
    server: &'a str,
    #[serde(flatten)]
    update: &'a NovaLiveUpdate,
}

fn print(output: Output, server: &str, update: &NovaLiveUpdate) {
    output.line(
        "nova",
        &describe(server, update),
        &UpdateLine { server, update },
    );
}

/// Launches each server's live migration through Nova and watches all of them to the end.
/// Exit 0 only when every one completed.
pub fn migrate(
    config: &Config,
    cloud: &str,
    instances: &[String],
    to: &str,
    output: Output,
) -> Result<ExitCode> {
    let destination = (to != "auto").then_some(to);
    runtime::wait(async {
        let session = CloudSession::connect(config, Some(cloud)).await?;
        let mut watches = Vec::new();
        let mut all_completed = true;
        for instance in instances {
            let (sender, receiver) = mpsc::unbounded_channel();
            match live::launch(&session, instance, destination, &sender).await {
                Ok(watched) => {
                    let session = session.clone();
                    let task =
                        tokio::spawn(async move { live::watch(&session, &watched, &sender).await });
                    watches.push((instance.clone(), receiver, task));
                }
                Err(error) => {
                    all_completed = false;
                    eprintln!("ferry: {instance}: {error:#}");
                    // What launch reported before it was refused (nothing, or the record).
                    drain(output, instance, receiver);
                }
            }
        }
        let printer = print_all(output, watches);
        all_completed &= printer.await;
        Ok(if all_completed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

fn drain(output: Output, server: &str, mut receiver: mpsc::UnboundedReceiver<NovaLiveUpdate>) {
    while let Ok(update) = receiver.try_recv() {
        print(output, server, &update);
    }
}

/// Prints every watch's updates as they come; true when every migration completed.
async fn print_all(
    output: Output,
    watches: Vec<(
        String,
        mpsc::UnboundedReceiver<NovaLiveUpdate>,
        tokio::task::JoinHandle<NovaLiveOutcome>,
    )>,
) -> bool {
    let printers = watches
        .into_iter()
        .map(|(server, mut receiver, task)| async move {
            while let Some(update) = receiver.recv().await {
                print(output, &server, &update);
            }
            matches!(task.await, Ok(NovaLiveOutcome::Completed { .. }))
        });
    futures_util::future::join_all(printers)
        .await
        .into_iter()
        .all(|completed| completed)
}

/// `ferry abort|force-complete X --cloud C`: always through Nova, whichever ferry watches.
pub fn operator_command(
    config: &Config,
    cloud: &str,
    instance: &str,
    command: OperatorCommand,
) -> Result<ExitCode> {
    let abort = match command {
        OperatorCommand::Abort => true,
        OperatorCommand::ForceComplete => false,
        other => {
            anyhow::bail!("{other:?} is not a Nova operation; Nova offers abort and force-complete")
        }
    };
    let said = runtime::wait(async {
        let session = CloudSession::connect(config, Some(cloud)).await?;
        live::operator_command(&session, instance, abort).await
    })?;
    println!("{said}");
    Ok(ExitCode::SUCCESS)
}

/// The Nova half of `ferry resume`: every cloud's unfinished live migrations in the history,
/// watched again to their end, and its cold migrations and resizes whose watch ended without a
/// verdict, settled from Nova's answers (those awaiting confirm are left as they are). Ok(None)
/// when there were none; Some(true) when every one completed (or, cold, reached confirm).
pub fn resume(config: &Config, output: Output) -> Result<Option<bool>> {
    runtime::wait(async {
        let mut watches = Vec::new();
        let mut cold_resumes = Vec::new();
        let mut all_completed = true;
        for cloud in &config.clouds {
            let unfinished = live::unfinished_in_history(&cloud.name)?;
            let unfinished_cold = cold::unfinished_in_history(&cloud.name)?;
            if unfinished.is_empty() && unfinished_cold.is_empty() {
                continue;
            }
            let session = match CloudSession::connect(config, Some(&cloud.name)).await {
                Ok(session) => session,
                Err(error) => {
                    eprintln!(
                        "ferry: {} Nova migration(s) of cloud {} left unwatched: {error:#}",
                        unfinished.len() + unfinished_cold.len(),
                        cloud.name
                    );
                    all_completed = false;
                    continue;
                }
            };
            for (history_id, plan, source) in unfinished {
                let (sender, receiver) = mpsc::unbounded_channel();
                match live::attach(&session, history_id, &plan, &source, &sender).await {
                    Ok(watched) => {
                        let session = session.clone();
                        let task =
                            tokio::spawn(
                                async move { live::watch(&session, &watched, &sender).await },
                            );
                        watches.push((plan.server_name.clone(), receiver, task));
                    }
                    Err(error) => {
                        all_completed = false;
                        eprintln!("ferry: {}: {error:#}", plan.server_name);
                    }
                }
            }
            for (history_id, plan, source) in unfinished_cold {
                let session = session.clone();
                cold_resumes.push(tokio::spawn(async move {
                    nova_cold::resume_one(&session, history_id, &plan, &source, output).await
                }));
            }
        }
        if watches.is_empty() && cold_resumes.is_empty() && all_completed {
            return Ok(None);
        }
        let cold_settled = async {
            let mut all_settled = true;
            for task in cold_resumes {
                all_settled &= task.await.unwrap_or(false);
            }
            all_settled
        };
        let (live_completed, cold_settled) = tokio::join!(print_all(output, watches), cold_settled);
        Ok(Some(all_completed && live_completed && cold_settled))
    })
}
