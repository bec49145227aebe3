//! How a live migration ends: the outcome settled from both hosts' answers (asking again
//! with backoff while one is silent), a broken post-copy resumed, then completion (what the
//! move leaves behind) or rollback (only what this attempt made).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::monitor::Monitor;
use super::{
    Inbox, LiveMigrationPlan, LiveOutcome, MigrationUpdate, POST_COPY_RECOVERY_ATTEMPTS,
    SETTLE_BOUND,
};
use crate::engine::settle::{backoff_seconds, settle, Settlement};
use crate::libvirt::LibvirtError;
use crate::model::standing::HostAnswer;
use crate::progress::EngineEvent;

/// What the outcome check leads to: an outcome, or back to watching a job still running.
pub(super) enum SettleStep {
    Outcome(LiveOutcome),
    WatchAgain { waiting_for_call: bool },
}

/// Settles the outcome from both hosts' answers, asking again with backoff while one is
/// silent, up to the settle bound; resumes a broken post-copy when both answer.
pub(super) async fn settle_outcome(
    monitor: &mut Monitor<'_>,
    inbox: &mut mpsc::UnboundedReceiver<Inbox>,
    migrate_result: Result<(), LibvirtError>,
) -> SettleStep {
    let plan = monitor.plan;
    let deadline = Instant::now() + SETTLE_BOUND;
    let mut attempt = 0;
    let mut broken_reported = false;
    let mut recover_now = false;
    loop {
        let on_source = monitor.standing_on(true).await;
        let on_destination = monitor.standing_on(false).await;
        let verdict = settle(
            &plan.source.name,
            &on_source,
            &plan.destination.name,
            &on_destination,
            monitor.in_post_copy,
        );
        let left = deadline.saturating_duration_since(Instant::now());
        match verdict {
            Settlement::Unsettled { waiting_for } => {
                let observed = [&on_source, &on_destination]
                    .into_iter()
                    .filter_map(|answer| match answer {
                        HostAnswer::Silent { why } => Some(why.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if left.is_zero() {
                    return SettleStep::Outcome(LiveOutcome::Unsettled {
                        detail: format!(
                            "still waiting for {waiting_for} after {} s{}",
                            SETTLE_BOUND.as_secs(),
                            if observed.is_empty() {
                                String::new()
                            } else {
                                format!(" ({observed})")
                            }
                        ),
                    });
                }
                monitor.send(MigrationUpdate::Unsettled {
                    waiting_for: format!("waiting for {waiting_for} to settle the outcome"),
                    gives_up_in_ms: left.as_millis() as u64,
                });
            }
            Settlement::StillMigrating => {
                monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "the migration job still runs on {}: watching it to its end",
                        plan.source.name
                    ),
                });
                return SettleStep::WatchAgain {
                    waiting_for_call: false,
                };
            }
            Settlement::PostCopyBroken => {
                monitor.in_post_copy = true;
                let both_answer = !on_source.is_silent() && !on_destination.is_silent();
                let detail = broken_post_copy_words(plan, &on_source, &on_destination);
                if !broken_reported {
                    monitor.send(MigrationUpdate::PostCopyBroken {
                        detail: detail.clone(),
                    });
                    broken_reported = true;
                }
                let may_try = recover_now || monitor.recoveries < POST_COPY_RECOVERY_ATTEMPTS;
                if both_answer && may_try {
                    recover_now = false;
                    monitor.recoveries += 1;
                    let attempt_number = monitor.recoveries;
                    match start_post_copy_recovery(monitor).await {
                        Ok(Recovery::StreamAlive(words)) => {
                            // Not an attempt: nothing was broken to resume.
                            monitor.recoveries -= 1;
                            monitor.send(MigrationUpdate::Warning { message: words });
                            return SettleStep::WatchAgain {
                                waiting_for_call: false,
                            };
                        }
                        Ok(Recovery::Resumed(words)) => {
                            monitor.send(MigrationUpdate::PostCopyRecovery {
                                attempt: attempt_number,
                                result: Ok(words),
                            });
                            // No call blocks for a resumed stream: the job's end is watched.
                            return SettleStep::WatchAgain {
                                waiting_for_call: false,
                            };
                        }
                        Err(error) => monitor.send(MigrationUpdate::PostCopyRecovery {
                            attempt: attempt_number,
                            result: Err(error.to_string()),
                        }),
                    }
                }
                if left.is_zero() || (!may_try && both_answer) {
                    return SettleStep::Outcome(LiveOutcome::Unsettled {
                        detail: format!(
                            "{detail}; not resumed after {} attempts: `ferry recover {}` tries \
                             again (nothing was rolled back or removed)",
                            monitor.recoveries, plan.instance_name
                        ),
                    });
                }
            }
            Settlement::Moved {
                source_kept_definition,
            } => return SettleStep::Outcome(complete(monitor, source_kept_definition).await),
            Settlement::StayedOnSource => {
                return SettleStep::Outcome(
                    roll_back(monitor, migrate_result, &on_destination).await,
                )
            }
            Settlement::Contradiction { detail } => {
                return SettleStep::Outcome(LiveOutcome::Failed {
                    detail: format!(
                        "{}: {detail}; nothing was touched: check both hosts",
                        describe_result(&migrate_result, &monitor.abort_requested)
                    ),
                })
            }
        }
        let wait = Duration::from_secs(backoff_seconds(attempt)).min(left);
        attempt += 1;
        recover_now |= monitor.wait_settling(inbox, wait).await;
    }
}

/// "post-copy broken: busy paused on hv2, memory split with hv3; resuming when both answer".
fn broken_post_copy_words(
    plan: &LiveMigrationPlan,
    on_source: &HostAnswer,
    on_destination: &HostAnswer,
) -> String {
    let where_paused = if on_source.standing().is_some_and(|s| s.paused) {
        format!("paused on {}", plan.source.name)
    } else if on_destination.standing().is_some_and(|s| s.paused) {
        format!("paused on {}", plan.destination.name)
    } else {
        format!("running on {}", plan.destination.name)
    };
    let waiting = match (on_source.is_silent(), on_destination.is_silent()) {
        (false, false) => "resuming it".to_string(),
        (true, false) => format!("resuming when {} answers", plan.source.name),
        (false, true) => format!("resuming when {} answers", plan.destination.name),
        (true, true) => "resuming when both answer".to_string(),
    };
    format!(
        "post-copy broken: {} {where_paused}, memory split between {} and {}; {waiting}",
        plan.instance_name, plan.source.name, plan.destination.name
    )
}

fn describe_result(
    migrate_result: &Result<(), LibvirtError>,
    abort_requested: &Option<String>,
) -> String {
    match (migrate_result, abort_requested) {
        (_, Some(reason)) => reason.clone(),
        (Err(error), None) => error.to_string(),
        (Ok(()), None) => "libvirt reported success".to_string(),
    }
}

/// Resumes the broken post-copy: the same migration, picked up where its stream broke, by
/// the source's QEMU reconnecting to the destination's listener (see
/// `HostConnection::resume_post_copy_stream` for why not libvirt's POSTCOPY_RESUME). The call
/// returns at once; libvirt finishes both jobs, which the watch follows.
async fn start_post_copy_recovery(monitor: &mut Monitor<'_>) -> Result<Recovery, LibvirtError> {
    let plan = monitor.plan;
    let source = monitor
        .source
        .connection(plan.call_timeout, "resuming post-copy")
        .await?;
    let port = monitor.stream.port_in_use();
    let qemu_uri = monitor.stream.qemu_uri(port);
    monitor.recovery_sent_at = Some(Instant::now());
    let reply = source
        .resume_post_copy_stream(&plan.instance_name, &qemu_uri, plan.call_timeout)
        .await?;
    // Seen on the lab with a 60 s link cut: libvirt's own connection between the hosts timed
    // out, so libvirt says "post-copy failed", while QEMU's stream survived the cut and went on.
    // QEMU then has nothing to resume: the migration is alive and is watched to its end.
    if reply.contains(QEMU_STREAM_ALIVE) {
        return Ok(Recovery::StreamAlive(format!(
            "libvirt reports the post-copy failed, but QEMU's stream to {qemu_uri} is alive (\
             no paused migration to resume): watching it finish"
        )));
    }
    if reply.contains("\"error\"") {
        return Err(LibvirtError::Call {
            context: format!("resuming post-copy to {qemu_uri}"),
            message: format!("QEMU refused: {reply}"),
        });
    }
    Ok(Recovery::Resumed(format!(
        "post-copy resumed: {}'s QEMU reconnected to {qemu_uri}; {} fetches its remaining \
         memory again",
        plan.source.name, plan.destination.name
    )))
}

/// QEMU's answer to `migrate resume` when its migration is not paused (the stream never broke).
const QEMU_STREAM_ALIVE: &str = "Cannot resume if there is no paused migration";

/// What a resume found.
enum Recovery {
    /// The stream broke and is resumed.
    Resumed(String),
    /// libvirt said failed, QEMU's stream never broke: nothing to resume.
    StreamAlive(String),
}

/// The guest runs on the destination alone: finish what the migration leaves behind.
async fn complete(monitor: &mut Monitor<'_>, source_kept_definition: bool) -> LiveOutcome {
    let plan = monitor.plan;
    let total_time_ms = monitor.elapsed_ms();
    let instance = monitor.by_name();
    let timeout = plan.call_timeout;
    if source_kept_definition {
        // UNDEFINE_SOURCE is carried out by the migrate call's own confirm step; when its
        // caller died mid-way, libvirt leaves the inactive source definition behind.
        let key = instance.clone();
        let undefined = monitor
            .on_source(
                move |source| async move { source.undefine_if_inactive(&key, timeout).await },
            )
            .await;
        monitor.send(MigrationUpdate::Warning {
            message: match undefined {
                Ok(true) => "the source kept an inactive definition (libvirt did not carry \
                             out UNDEFINE_SOURCE: its migrate call lost its caller, or the \
                             post-copy was resumed); removed, as UNDEFINE_SOURCE asks"
                    .to_string(),
                Ok(false) => "the source's copy became active again; left alone".to_string(),
                Err(error) => format!("the source's inactive definition stays: {error}"),
            },
        });
    }
    // Nova's force-complete without post-copy pauses the guest: it resumes where it ends.
    let final_job = match monitor.destination.get(timeout).await {
        Some(destination) => {
            if !plan.guest_was_paused {
                let _ = destination.resume_if_paused(&instance, timeout).await;
            }
            destination
                .completed_job_stats(&instance, timeout)
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    // The move is verified (runs on the destination, gone from the source): the source's
    // copies of the block-migrated disks are stale now, as Nova removes them after a
    // block migration. Only the disks this migration copied, never shared ones.
    if !monitor.copied_disk_paths.is_empty() {
        let paths = monitor.copied_disk_paths.clone();
        let left = match monitor.source.get(timeout).await {
            Some(source) => source.delete_volumes(&paths, timeout).await,
            None => Err(LibvirtError::Call {
                context: "removing the source's copies of the migrated disks".into(),
                message: monitor.source.silence(),
            }),
        };
        match left {
            Ok(left) if left.is_empty() => {}
            Ok(left) => monitor.send(MigrationUpdate::Warning {
                message: format!(
                    "the stale source copies could not all be removed: {}",
                    left.join("; ")
                ),
            }),
            Err(error) => monitor.send(MigrationUpdate::Warning {
                message: format!("the stale source copies were not removed: {error}"),
            }),
        }
    }
    monitor.progress.on_event(EngineEvent::Completed);
    if let Some(mut sample) = final_job.clone() {
        sample.sampled_at_ms = total_time_ms;
        let snapshot = monitor.progress.on_sample(sample);
        monitor.send(MigrationUpdate::Progress(Box::new(snapshot)));
    }
    LiveOutcome::Completed {
        downtime_ms: final_job.as_ref().and_then(|j| j.real_downtime_ms),
        total_time_ms,
        data_transferred_bytes: final_job.and_then(|j| j.data_processed_bytes),
    }
}

/// The guest still runs on the source: resume it if ferry paused it, and remove from the
/// destination only what this attempt made.
async fn roll_back(
    monitor: &mut Monitor<'_>,
    migrate_result: Result<(), LibvirtError>,
    on_destination: &HostAnswer,
) -> LiveOutcome {
    let plan = monitor.plan;
    let mut detail = match (&migrate_result, &monitor.abort_requested) {
        (Ok(()), None) => {
            "libvirt reported success but the guest still runs on the source".to_string()
        }
        (Err(error), None) => format!("libvirt ended the migration ({error})"),
        _ => describe_result(&migrate_result, &monitor.abort_requested),
    };
    // What was observed around it, beside libvirt's words.
    for silence in [
        monitor.source.silence_observed(),
        monitor.destination.silence_observed(),
    ]
    .into_iter()
    .flatten()
    {
        detail.push_str(&format!("; {silence} during the migration"));
    }
    if !plan.guest_was_paused {
        let (key, timeout) = (monitor.by_name(), plan.call_timeout);
        let _ = monitor
            .on_source(move |source| async move { source.resume_if_paused(&key, timeout).await })
            .await;
    }
    if on_destination.standing().is_some() {
        if monitor.ownership.owns_destination_copy() {
            let removed = match monitor.destination.get(plan.call_timeout).await {
                Some(destination) => Some(
                    destination
                        .remove_copy(&monitor.key, plan.call_timeout)
                        .await,
                ),
                None => None,
            };
            match removed {
                Some(Ok(done)) if done.is_empty() => {}
                Some(Ok(done)) => monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "rollback: this attempt's copy on {}: {}",
                        plan.destination.name,
                        done.join(", ")
                    ),
                }),
                Some(Err(error)) => monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "rollback: the copy on {} stays: {error}",
                        plan.destination.name
                    ),
                }),
                None => monitor.send(MigrationUpdate::Warning {
                    message: format!(
                        "rollback: the copy on {} stays: {}",
                        plan.destination.name,
                        monitor.destination.silence()
                    ),
                }),
            }
        } else {
            monitor.send(MigrationUpdate::Warning {
                message: format!(
                    "{} {}: left alone, since {}",
                    plan.destination.name,
                    on_destination.describe(),
                    monitor.ownership.why_not_ours()
                ),
            });
        }
    }
    remove_precreated_volumes(monitor).await;
    if monitor.abort_requested.is_some() {
        monitor.progress.on_event(EngineEvent::Cancelled);
        LiveOutcome::Cancelled { detail }
    } else {
        monitor.progress.on_event(EngineEvent::Failed {
            message: detail.clone(),
        });
        LiveOutcome::Failed { detail }
    }
}

/// The volumes this attempt created on the destination for a block migration: its own, so a
/// rollback removes them (never a volume that was there before: those were not created).
pub(super) async fn remove_precreated_volumes(monitor: &mut Monitor<'_>) {
    if monitor.precreated_on_destination.is_empty() {
        return;
    }
    let plan = monitor.plan;
    let paths = std::mem::take(&mut monitor.precreated_on_destination);
    let left = match monitor.destination.get(plan.call_timeout).await {
        Some(destination) => destination
            .delete_volumes(&paths, plan.call_timeout)
            .await
            .unwrap_or_else(|error| vec![error.to_string()]),
        None => vec![monitor.destination.silence()],
    };
    if !left.is_empty() {
        monitor.send(MigrationUpdate::Warning {
            message: format!(
                "rollback: volumes left on {}: {}",
                plan.destination.name,
                left.join("; ")
            ),
        });
    }
}
