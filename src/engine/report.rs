//! What `ferry migrate` and `ferry resume` print: one line per sample and a final summary, as
//! text for a terminal or JSON lines for scripts. Pure formatting of the engine's updates.

use serde::Serialize;

use super::live::LiveOutcome;
use crate::model::units::{format_bytes, format_duration_ms, format_rate};
use crate::progress::{ConvergenceVerdict, MigrationPhase, MigrationProgress};

/// One sample, compact: the chart history and closed passes stay out of the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressLine {
    pub instance: String,
    pub elapsed_ms: u64,
    pub phase: &'static str,
    pub iteration: Option<u64>,
    pub percent_complete: Option<u8>,
    pub memory_total_bytes: Option<u64>,
    pub memory_remaining_bytes: Option<u64>,
    pub disk_remaining_bytes: Option<u64>,
    pub transfer_rate_bytes_per_second: Option<u64>,
    pub dirty_rate_bytes_per_second: Option<u64>,
    pub expected_downtime_ms: Option<u64>,
    pub auto_converge_throttle_percent: Option<u32>,
    pub verdict: &'static str,
    pub eta_ms: Option<u64>,
}

impl ProgressLine {
    pub fn new(instance: &str, progress: &MigrationProgress) -> ProgressLine {
        ProgressLine {
            instance: instance.to_string(),
            elapsed_ms: progress.elapsed_ms,
            phase: progress.phase.name(),
            iteration: progress.iteration,
            percent_complete: progress.percent_complete(),
            memory_total_bytes: progress.memory_total_bytes,
            memory_remaining_bytes: progress.memory_remaining_bytes,
            disk_remaining_bytes: progress.disk_remaining_bytes,
            transfer_rate_bytes_per_second: progress.transfer_rate_bytes_per_second,
            dirty_rate_bytes_per_second: progress.dirty_rate_bytes_per_second,
            expected_downtime_ms: progress.expected_downtime_ms,
            auto_converge_throttle_percent: progress.auto_converge_throttle_percent,
            verdict: progress.verdict.name(),
            eta_ms: progress.eta_ms,
        }
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_string())
}

/// "  12.5s busy  copying memory, pass 3  41%  302 MiB left of 512 MiB  97.7 MiB/s  dirty 190
/// MiB/s  downtime ≈ 1200 ms  throttle 20%  NOT CONVERGING"
pub fn progress_text(instance: &str, progress: &MigrationProgress) -> String {
    let phase = match progress.phase {
        MigrationPhase::CopyingMemory { iteration } => format!("copying memory, pass {iteration}"),
        phase => phase.name().replace('-', " "),
    };
    let mut line = format!(
        "{:>7} {instance}  {phase}  {}%  {} left of {}  {}  dirty {}",
        format_duration_ms(progress.elapsed_ms),
        or_dash(progress.percent_complete().map(|p| p.to_string())),
        or_dash(progress.memory_remaining_bytes.map(format_bytes)),
        or_dash(progress.memory_total_bytes.map(format_bytes)),
        or_dash(progress.transfer_rate_bytes_per_second.map(format_rate)),
        or_dash(progress.dirty_rate_bytes_per_second.map(format_rate)),
    );
    if let Some(disk) = progress.disk_remaining_bytes.filter(|b| *b > 0) {
        line.push_str(&format!("  disk {} left", format_bytes(disk)));
    }
    if let Some(ms) = progress.expected_downtime_ms {
        line.push_str(&format!("  downtime ≈ {ms} ms"));
    }
    if let Some(percent) = progress.auto_converge_throttle_percent.filter(|p| *p > 0) {
        line.push_str(&format!("  throttle {percent}%"));
    }
    match &progress.verdict {
        ConvergenceVerdict::Converging { eta_ms } => {
            line.push_str(&format!("  ETA {}", format_duration_ms(*eta_ms)))
        }
        ConvergenceVerdict::NotConverging { .. } => line.push_str("  NOT CONVERGING"),
        ConvergenceVerdict::TooEarly => {}
    }
    line
}

/// The final word on one migration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub instance: String,
    pub source: String,
    pub destination: String,
    /// Where the guest runs now.
    pub runs_on: String,
    #[serde(flatten)]
    pub outcome: LiveOutcome,
    /// Memory passes QEMU made (the last iteration seen).
    pub iterations: Option<u64>,
}

impl Summary {
    pub fn completed(&self) -> bool {
        matches!(self.outcome, LiveOutcome::Completed { .. })
    }

    pub fn text(&self) -> String {
        let passes = self
            .iterations
            .map_or(String::new(), |n| format!(", {n} memory passes"));
        match &self.outcome {
            LiveOutcome::Completed {
                downtime_ms,
                total_time_ms,
                data_transferred_bytes,
            } => format!(
                "{}: completed, {} → {} in {}, downtime {}, {} moved{passes}; runs on {}",
                self.instance,
                self.source,
                self.destination,
                format_duration_ms(*total_time_ms),
                downtime_ms.map_or("unknown".to_string(), |ms| format!("{ms} ms")),
                data_transferred_bytes.map_or("unknown".to_string(), format_bytes),
                self.runs_on
            ),
            LiveOutcome::Cancelled { detail } => format!(
                "{}: cancelled ({detail}){passes}; runs on {}",
                self.instance, self.runs_on
            ),
            LiveOutcome::Failed { detail } => format!(
                "{}: failed: {detail}{passes}; runs on {}",
                self.instance, self.runs_on
            ),
            LiveOutcome::Unsettled { detail } => format!(
                "{}: unsettled ({detail}); nothing was rolled back or removed; `ferry resume` settles it",
                self.instance
            ),
        }
    }
}

/// Where the guest runs once the engine has checked (and rolled back if needed).
pub fn runs_on(outcome: &LiveOutcome, source: &str, destination: &str) -> String {
    match outcome {
        LiveOutcome::Completed { .. } => destination.to_string(),
        LiveOutcome::Cancelled { .. } | LiveOutcome::Failed { .. } => source.to_string(),
        LiveOutcome::Unsettled { .. } => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trace::{fixtures_dir, load_trace};
    use crate::progress::{replay, ProgressConfig};

    #[test]
    fn a_non_converging_trace_reads_as_such_on_one_line() {
        let samples =
            load_trace(fixtures_dir().join("synthetic-busy-512mib-not-converging.jsonl")).unwrap();
        let snapshots = replay(&samples, ProgressConfig::default());
        let last = snapshots
            .iter()
            .rev()
            .find(|s| matches!(s.phase, MigrationPhase::CopyingMemory { .. }))
            .unwrap();
        let text = progress_text("busy", last);
        assert!(text.contains("busy  copying memory, pass"), "{text}");
        assert!(text.contains("MiB left of 514 MiB"), "{text}");
        assert!(text.contains("NOT CONVERGING"), "{text}");
        let line = ProgressLine::new("busy", last);
        let json = serde_json::to_string(&line).unwrap();
        assert!(json.contains("\"phase\":\"copying-memory\""), "{json}");
        assert!(
            !json.contains("history"),
            "the chart history stays out: {json}"
        );
    }

    #[test]
    fn the_summary_says_where_the_guest_runs() {
        let summary = Summary {
            instance: "busy".into(),
            source: "hv1".into(),
            destination: "hv2".into(),
            runs_on: runs_on(
                &LiveOutcome::Cancelled {
                    detail: "aborted by the operator".into(),
                },
                "hv1",
                "hv2",
            ),
            outcome: LiveOutcome::Cancelled {
                detail: "aborted by the operator".into(),
            },
            iterations: Some(4),
        };
        assert_eq!(
            summary.text(),
            "busy: cancelled (aborted by the operator), 4 memory passes; runs on hv1"
        );
        assert!(!summary.completed());
    }
}
