//! What the TUI knows of one migration Nova carries out: Nova's record of it (the source of
//! truth: where the server is, how it ended) beside ferry's own read-only reading of the
//! source's libvirt job (pass, dirty rate, downtime, convergence: what Nova does not show).
//! The two are kept apart so every view can say which figure came from where. Pure: folded
//! from the engine's [`NovaEvent`]s.

use std::time::SystemTime;

use crate::engine::nova::live::{NovaLiveOutcome, NovaLiveUpdate, NovaRecordReading};
use crate::engine::nova::NovaMigrationPlan;
use crate::engine::service::nova::{NovaEvent, NovaServerRef};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::progress::{MigrationPhase, MigrationProgress};

use super::migrations::{ChartPoint, ChartSeries, CHART_POINTS_KEPT};
use super::prompt::{OperatorKey, OperatorPrompt};

/// Lines of what happened kept per migration (the history keeps all of them).
const LOG_LINES_KEPT: usize = 40;

#[derive(Debug, Clone, PartialEq)]
pub enum NovaStage {
    /// Nova is moving it.
    Running,
    /// Cold: in VERIFY_RESIZE on the destination; the operator confirms or reverts.
    AwaitingConfirm,
    /// A confirm (`keep`) or revert was asked of Nova.
    Settling {
        keep: bool,
    },
    Finished(NovaEnd),
}

#[derive(Debug, Clone, PartialEq)]
pub enum NovaEnd {
    /// Live: Nova reports it ACTIVE on `host`.
    Completed {
        host: String,
    },
    /// Cold: confirmed on (or reverted to) `host`.
    Settled {
        keep: bool,
        host: String,
    },
    Cancelled {
        detail: String,
    },
    Failed {
        detail: String,
    },
    /// The cloud stopped answering, or ferry's bound ran out: the history keeps it for
    /// `ferry resume`; nothing is decided on silence.
    Unsettled {
        detail: String,
    },
}

/// One Nova migration as the TUI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedNova {
    pub id: MigrationId,
    pub kind: MigrationKind,
    pub plan: NovaMigrationPlan,
    pub source: String,
    /// Where Nova sends it: the request's host, or the scheduler's choice once known.
    pub destination: Option<String>,
    pub stage: NovaStage,
    pub started_at: SystemTime,
    pub finished_at: Option<SystemTime>,
    /// Taken over from the history by this ferry at start.
    pub found: bool,
    /// Nova's record as last read (live).
    pub nova_record: Option<NovaRecordReading>,
    /// The server as Nova last showed it (cold): status, task, host, migration status.
    pub server_line: Option<String>,
    /// ferry's reading of the source's libvirt job (live, read-only).
    pub libvirt: Option<MigrationProgress>,
    pub series: ChartSeries,
    /// Why there are no libvirt figures, when there are none.
    pub libvirt_unavailable: Option<String>,
    /// The cloud did not answer the last poll (the watch goes on).
    pub silent: Option<String>,
    /// What happened, oldest first: Nova's answers to the operator among them.
    pub log: Vec<String>,
}

impl TrackedNova {
    pub fn started(
        id: MigrationId,
        plan: NovaMigrationPlan,
        kind: MigrationKind,
        source: String,
        destination: Option<String>,
        started_at: SystemTime,
        found: bool,
    ) -> TrackedNova {
        let destination = destination.or_else(|| plan.requested_host.clone());
        let mut tracked = TrackedNova {
            id,
            kind,
            source,
            destination,
            stage: NovaStage::Running,
            started_at,
            finished_at: None,
            found,
            nova_record: None,
            server_line: None,
            libvirt: None,
            series: ChartSeries::with_capacity(CHART_POINTS_KEPT),
            libvirt_unavailable: None,
            silent: None,
            log: Vec::new(),
            plan,
        };
        tracked.note(match (found, tracked.plan.nova_migration_id) {
            (true, _) => "taken over from ferry's history".to_string(),
            (false, Some(nova_id)) => format!("Nova accepted it: migration {nova_id}"),
            (false, None) => "Nova accepted it".to_string(),
        });
        tracked
    }

    pub fn instance_name(&self) -> &str {
        &self.plan.server_name
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// "auto" until the scheduler's choice is known.
    pub fn destination(&self) -> &str {
        self.destination.as_deref().unwrap_or("auto")
    }

    pub fn cloud(&self) -> &str {
        &self.plan.cloud
    }

    pub fn server(&self) -> NovaServerRef {
        NovaServerRef {
            cloud: self.plan.cloud.clone(),
            server_id: self.plan.server_id.clone(),
            server_name: self.plan.server_name.clone(),
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.stage, NovaStage::Finished(_))
    }

    /// "live", "cold" or "resize to ferry.medium".
    pub fn what(&self) -> String {
        match (self.kind, self.plan.migration_type.as_str()) {
            (MigrationKind::Live, _) => "live".to_string(),
            (_, "resize") => format!(
                "resize to {}",
                self.plan.flavor.as_deref().unwrap_or("a new flavor")
            ),
            _ => "cold".to_string(),
        }
    }

    /// The phase column: Nova's own status words while it runs.
    pub fn phase_label(&self) -> String {
        match &self.stage {
            NovaStage::Running => self
                .nova_record
                .as_ref()
                .map(|r| r.status.clone())
                .or_else(|| self.server_line.as_ref().map(|_| "migrating".to_string()))
                .unwrap_or_else(|| "accepted".to_string()),
            NovaStage::AwaitingConfirm => "confirm?".to_string(),
            NovaStage::Settling { keep: true } => "confirming".to_string(),
            NovaStage::Settling { keep: false } => "reverting".to_string(),
            NovaStage::Finished(end) => match end {
                NovaEnd::Completed { .. } => "completed".to_string(),
                NovaEnd::Settled { keep: true, .. } => "confirmed".to_string(),
                NovaEnd::Settled { keep: false, .. } => "reverted".to_string(),
                NovaEnd::Cancelled { .. } => "cancelled".to_string(),
                NovaEnd::Failed { .. } => "failed".to_string(),
                NovaEnd::Unsettled { .. } => "unsettled".to_string(),
            },
        }
    }

    /// Percent done: libvirt's reading when there is one (fresh every 0.5 s), else Nova's
    /// record (saved every ~5 s).
    pub fn percent(&self) -> Option<u8> {
        if matches!(
            self.stage,
            NovaStage::Finished(NovaEnd::Completed { .. } | NovaEnd::Settled { keep: true, .. })
                | NovaStage::AwaitingConfirm
        ) {
            return Some(100);
        }
        if !matches!(self.stage, NovaStage::Running) {
            return None;
        }
        self.libvirt
            .as_ref()
            .and_then(|p| p.percent_complete())
            .or_else(|| {
                let record = self.nova_record.as_ref()?;
                let total = record.memory_total_bytes.filter(|t| *t > 0)?;
                let remaining = record.memory_remaining_bytes?.min(total);
                Some((100 - remaining * 100 / total) as u8)
            })
    }

    pub fn last_log(&self) -> Option<&str> {
        self.log.last().map(String::as_str)
    }

    fn note(&mut self, line: String) {
        if self.log.last() != Some(&line) {
            self.log.push(line);
        }
        if self.log.len() > LOG_LINES_KEPT {
            self.log.remove(0);
        }
    }

    fn finish(&mut self, at: SystemTime, end: NovaEnd) {
        self.note(match &end {
            NovaEnd::Completed { host } => format!("completed: Nova reports it on {host}"),
            NovaEnd::Settled { keep: true, host } => format!("confirmed on {host}"),
            NovaEnd::Settled { keep: false, host } => format!("reverted to {host}"),
            NovaEnd::Cancelled { detail } => format!("cancelled: {detail}"),
            NovaEnd::Failed { detail } => format!("failed: {detail}"),
            NovaEnd::Unsettled { detail } => format!("unsettled: {detail}"),
        });
        self.stage = NovaStage::Finished(end);
        self.finished_at = Some(at);
    }

    /// Folds one event in; true if anything visible changed.
    pub fn apply(&mut self, at: SystemTime, event: NovaEvent) -> bool {
        match event {
            // A second start for the same row (the take-over and a watch both announce it).
            NovaEvent::Started { destination, .. } => {
                if self.destination.is_none() && destination.is_some() {
                    self.destination = destination;
                    return true;
                }
                return false;
            }
            NovaEvent::Live(update) => return self.apply_live(at, update),
            NovaEvent::ColdWatch(line) => {
                if let (None, Some(host)) = (&self.destination, &line.host) {
                    if host != &self.source {
                        self.destination = Some(host.clone());
                    }
                }
                self.server_line = Some(line.text());
            }
            NovaEvent::AwaitingConfirm { host } => {
                self.destination = Some(host.clone());
                self.stage = NovaStage::AwaitingConfirm;
                self.note(format!(
                    "in VERIFY_RESIZE on {host}: C confirms it there, R reverts it to {}",
                    self.source
                ));
            }
            NovaEvent::ColdFailed { detail, unsettled } => {
                let end = if unsettled {
                    NovaEnd::Unsettled { detail }
                } else {
                    NovaEnd::Failed { detail }
                };
                self.finish(at, end);
            }
            NovaEvent::Settling { keep } => {
                self.stage = NovaStage::Settling { keep };
                self.note(format!(
                    "asked Nova to {}",
                    if keep { "confirm" } else { "revert" }
                ));
            }
            NovaEvent::Settled { keep, result } => match result {
                Ok(host) => self.finish(at, NovaEnd::Settled { keep, host }),
                Err(reason) => {
                    // Nova still has it in VERIFY_RESIZE: the question stands.
                    self.stage = NovaStage::AwaitingConfirm;
                    self.note(format!(
                        "{} failed: {reason}",
                        if keep { "confirm" } else { "revert" }
                    ));
                }
            },
            NovaEvent::Answer { said } => self.note(match said {
                Ok(said) => said,
                Err(reason) => format!("Nova refused: {reason}"),
            }),
        }
        true
    }

    fn apply_live(&mut self, at: SystemTime, update: NovaLiveUpdate) -> bool {
        match update {
            NovaLiveUpdate::Launched { destination, .. } => {
                if destination.is_some() {
                    self.destination = destination;
                }
            }
            NovaLiveUpdate::Attached { .. } => return false,
            NovaLiveUpdate::Nova(reading) => {
                self.silent = None;
                if self.nova_record.as_ref().map(|r| &r.status) != Some(&reading.status) {
                    self.note(format!("Nova: {}", reading.status));
                }
                self.nova_record = Some(reading);
            }
            NovaLiveUpdate::Libvirt(progress) => {
                self.libvirt_unavailable = None;
                // An ended job's statistics are empty: drawn, nothing left would read as
                // success. The last picture of the running job stays; Nova says how it ended.
                if matches!(
                    progress.phase,
                    MigrationPhase::Cancelled | MigrationPhase::Failed
                ) && self.libvirt.is_some()
                {
                    return false;
                }
                if let Some(remaining) = progress.memory_remaining_bytes {
                    self.series.push(ChartPoint {
                        at_ms: progress.elapsed_ms,
                        memory_remaining_bytes: remaining,
                        transfer_rate_bytes_per_second: progress.transfer_rate_bytes_per_second,
                        dirty_rate_bytes_per_second: progress.dirty_rate_bytes_per_second,
                    });
                }
                self.libvirt = Some(*progress);
            }
            NovaLiveUpdate::LibvirtUnavailable { reason } => {
                if self.libvirt_unavailable.as_ref() == Some(&reason) {
                    return false;
                }
                self.libvirt_unavailable = Some(reason);
            }
            NovaLiveUpdate::Silent { detail } => self.silent = Some(detail),
            NovaLiveUpdate::Finished(outcome) => {
                let end = match outcome {
                    NovaLiveOutcome::Completed { host, .. } => {
                        self.destination = Some(host.clone());
                        NovaEnd::Completed { host }
                    }
                    NovaLiveOutcome::Cancelled { detail } => NovaEnd::Cancelled { detail },
                    NovaLiveOutcome::Failed { detail } => NovaEnd::Failed { detail },
                    NovaLiveOutcome::Unsettled { detail } => NovaEnd::Unsettled { detail },
                };
                self.finish(at, end);
            }
        }
        true
    }
}

/// The questions a key asks about a Nova migration; each answer is asked of Nova.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NovaQuestion {
    Abort,
    ForceComplete,
    Confirm,
    Revert,
}

impl NovaQuestion {
    pub fn key(self) -> OperatorKey {
        match self {
            NovaQuestion::Abort => OperatorKey::Abort,
            NovaQuestion::ForceComplete => OperatorKey::ForceComplete,
            NovaQuestion::Confirm => OperatorKey::Confirm,
            NovaQuestion::Revert => OperatorKey::Revert,
        }
    }
}

/// `a`, `f` on a live Nova migration, `C`, `R` on a cold one awaiting confirm; or why the
/// key cannot act. Nova has the last word: its refusal shows in the row's log.
pub fn nova_prompt_for(
    key: OperatorKey,
    migration: &TrackedNova,
) -> Result<OperatorPrompt, String> {
    let id = migration.id;
    let name = format!("#{id} {}", migration.instance_name());
    let verb = key.verb().trim_end_matches(" of");
    let question = match (key, migration.kind) {
        (OperatorKey::Abort, MigrationKind::Live) => NovaQuestion::Abort,
        (OperatorKey::ForceComplete, MigrationKind::Live) => NovaQuestion::ForceComplete,
        (OperatorKey::Confirm, MigrationKind::Cold) => NovaQuestion::Confirm,
        (OperatorKey::Revert, MigrationKind::Cold) => NovaQuestion::Revert,
        (OperatorKey::Abort, MigrationKind::Cold) => {
            return Err(format!(
                "{name}: Nova cannot abort a cold migration or resize; once it waits for                  confirm, R reverts it to {}",
                migration.source()
            ))
        }
        (OperatorKey::Bandwidth | OperatorKey::MaxDowntime | OperatorKey::Recover, _) => {
            return Err(format!(
                "{name} is carried out by Nova: ferry only reads its libvirt job, so {verb}                  goes through Nova's own settings"
            ))
        }
        (_, MigrationKind::Live) => {
            return Err(format!(
                "{name} is a live migration: {verb} applies to a cold one awaiting confirm"
            ))
        }
        (_, MigrationKind::Cold) => {
            return Err(format!(
                "{name} is a cold migration: {verb} applies to live migrations only"
            ))
        }
    };
    match (&migration.stage, question) {
        (NovaStage::Finished(_), _) => Err(format!(
            "{name} has ended ({}): nothing to {verb}",
            migration.phase_label()
        )),
        (NovaStage::Settling { .. }, _) => Err(format!(
            "{name} is being {} right now",
            migration.phase_label()
        )),
        (NovaStage::Running, NovaQuestion::Abort | NovaQuestion::ForceComplete) => {
            Ok(OperatorPrompt::Nova { id, question })
        }
        (NovaStage::Running, _) => Err(format!(
            "{name} is still moving: {verb} once Nova has it in VERIFY_RESIZE"
        )),
        (NovaStage::AwaitingConfirm, NovaQuestion::Confirm | NovaQuestion::Revert) => {
            Ok(OperatorPrompt::Nova { id, question })
        }
        (NovaStage::AwaitingConfirm, _) => Err(format!("{name} awaits confirm: C or R")),
    }
}

pub fn nova_prompt_title(prompt: &OperatorPrompt, migration: &TrackedNova) -> String {
    let name = format!("#{} {}", migration.id, migration.instance_name());
    match prompt {
        OperatorPrompt::Nova { question, .. } => match question {
            NovaQuestion::Abort => format!(" Abort {name} (through Nova)? "),
            NovaQuestion::ForceComplete => format!(" Force-complete {name} (through Nova)? "),
            NovaQuestion::Confirm => {
                format!(
                    " Confirm {name} on {} (through Nova)? ",
                    migration.destination()
                )
            }
            NovaQuestion::Revert => {
                format!(" Revert {name} to {} (through Nova)? ", migration.source())
            }
        },
        _ => format!(" {name} "),
    }
}

/// What answering yes asks of Nova, and what Nova then does.
pub fn nova_prompt_text(question: NovaQuestion, migration: &TrackedNova) -> Vec<String> {
    let (source, destination) = (migration.source(), migration.destination());
    let name = migration.instance_name();
    let cloud = migration.cloud();
    match question {
        NovaQuestion::Abort => vec![
            format!("Ask cloud {cloud} to abort the live migration of {name} {source} → {destination}."),
            format!("Nova cancels the job; the server keeps running on {source}. Nova refuses once the migration has switched over."),
        ],
        NovaQuestion::ForceComplete => vec![
            format!("Ask cloud {cloud} to force-complete the live migration of {name}."),
            format!("Nova pauses the guest on {source} so the copy can finish (that pause is downtime), unless the cloud permits post-copy: then the guest switches to {destination} at once, and post-copy cannot be aborted."),
        ],
        NovaQuestion::Confirm => vec![
            format!("Ask cloud {cloud} to confirm {name} on {destination}."),
            format!("Nova deletes the copy it kept on {source}: a revert is no longer possible."),
        ],
        NovaQuestion::Revert => vec![
            format!("Ask cloud {cloud} to revert {name} to {source}."),
            format!("Nova starts it on {source} again and deletes what it made on {destination}."),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nova::cold::WatchLine;

    fn plan(kind: &str) -> NovaMigrationPlan {
        NovaMigrationPlan {
            backend: "nova".into(),
            cloud: "lab".into(),
            server_id: "a1".into(),
            server_name: "web".into(),
            nova_migration_id: Some(7),
            migration_type: kind.into(),
            requested_host: None,
            flavor: Some("ferry.medium".into()),
        }
    }

    fn reading(status: &str, total: u64, remaining: u64) -> NovaRecordReading {
        NovaRecordReading {
            status: status.into(),
            updated_at: None,
            memory_total_bytes: Some(total),
            memory_remaining_bytes: Some(remaining),
            disk_total_bytes: None,
            disk_remaining_bytes: None,
            read_at_ms: 0,
        }
    }

    #[test]
    fn a_live_row_shows_novas_status_and_figures_until_nova_says_where_it_is() {
        let now = SystemTime::UNIX_EPOCH;
        let mut row = TrackedNova::started(
            MigrationId(3),
            plan("live-migration"),
            MigrationKind::Live,
            "hv1".into(),
            None,
            now,
            false,
        );
        assert_eq!(row.destination(), "auto");
        assert_eq!(row.phase_label(), "accepted");
        row.apply(
            now,
            NovaEvent::Live(NovaLiveUpdate::Nova(reading("running", 400, 100))),
        );
        assert_eq!(row.phase_label(), "running");
        assert_eq!(row.percent(), Some(75));
        // A silent poll does not end it; the next answer clears the alert.
        row.apply(
            now,
            NovaEvent::Live(NovaLiveUpdate::Silent {
                detail: "timed out".into(),
            }),
        );
        assert!(!row.is_finished());
        assert!(row.silent.is_some());
        row.apply(
            now,
            NovaEvent::Live(NovaLiveUpdate::Nova(reading("running", 400, 40))),
        );
        assert!(row.silent.is_none());
        row.apply(
            now,
            NovaEvent::Live(NovaLiveUpdate::Finished(NovaLiveOutcome::Completed {
                host: "hv2".into(),
                total_time_ms: 9_000,
            })),
        );
        assert_eq!(row.destination(), "hv2");
        assert_eq!(row.phase_label(), "completed");
        assert_eq!(row.percent(), Some(100));
        assert_eq!(row.last_log(), Some("completed: Nova reports it on hv2"));
    }

    #[test]
    fn a_cold_row_waits_for_confirm_and_a_failed_revert_leaves_the_question_open() {
        let now = SystemTime::UNIX_EPOCH;
        let mut row = TrackedNova::started(
            MigrationId(4),
            plan("resize"),
            MigrationKind::Cold,
            "hv1".into(),
            None,
            now,
            false,
        );
        assert_eq!(row.what(), "resize to ferry.medium");
        row.apply(
            now,
            NovaEvent::ColdWatch(WatchLine {
                server: "web".into(),
                status: "RESIZE".into(),
                task_state: Some("resize_migrating".into()),
                host: Some("hv3".into()),
                migration_status: Some("migrating".into()),
                elapsed_s: 4,
            }),
        );
        assert_eq!(row.destination(), "hv3");
        row.apply(now, NovaEvent::AwaitingConfirm { host: "hv3".into() });
        assert_eq!(row.stage, NovaStage::AwaitingConfirm);
        row.apply(now, NovaEvent::Settling { keep: false });
        row.apply(
            now,
            NovaEvent::Settled {
                keep: false,
                result: Err("no answer".into()),
            },
        );
        assert_eq!(row.stage, NovaStage::AwaitingConfirm);
        row.apply(
            now,
            NovaEvent::Settled {
                keep: false,
                result: Ok("hv1".into()),
            },
        );
        assert_eq!(
            row.stage,
            NovaStage::Finished(NovaEnd::Settled {
                keep: false,
                host: "hv1".into()
            })
        );
        assert_eq!(row.phase_label(), "reverted");
    }

    #[test]
    fn a_cold_watch_that_ran_out_is_unsettled_not_failed() {
        let now = SystemTime::UNIX_EPOCH;
        let mut row = TrackedNova::started(
            MigrationId(5),
            plan("migration"),
            MigrationKind::Cold,
            "hv1".into(),
            Some("hv2".into()),
            now,
            false,
        );
        row.apply(
            now,
            NovaEvent::ColdFailed {
                detail: "waited 600 s".into(),
                unsettled: true,
            },
        );
        assert_eq!(row.phase_label(), "unsettled");
    }
}
