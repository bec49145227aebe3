//! The history as an operator reads it: UTC times and the `ferry history` table.

use super::{MigrationRecord, OutcomeKind};
use crate::model::units::{format_bytes, format_duration_ms};

/// "2024-11-14 22:13:20Z": UTC, so two operators in different zones read the same time.
pub fn format_unix_ms_utc(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        (second_of_day % 3600) / 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
/// Howard Hinnant's `civil_from_days`, chrono-compatible date algorithms.
fn civil_from_days(days_since_epoch: i64) -> (i64, u32, u32) {
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Downtime is a few hundred milliseconds when things go well, so it keeps ms precision below
/// a second, where `format_duration_ms` would round "84 ms" to "0.1 s".
fn format_downtime_ms(downtime_ms: u64) -> String {
    if downtime_ms < 1000 {
        format!("{downtime_ms} ms")
    } else {
        format_duration_ms(downtime_ms)
    }
}

/// The `ferry history` table, newest first as given; "-" where a figure is not known.
pub fn render_table(records: &[MigrationRecord]) -> String {
    let mut lines = vec![format!(
        "{:<5} {:<21} {:<4} {:<24} {:<29} {:<9} {:<16} {:>9} {:>12} {:>10}",
        "ID",
        "STARTED (UTC)",
        "KIND",
        "INSTANCE",
        "SOURCE → DESTINATION",
        "POLICY",
        "OUTCOME",
        "DOWNTIME",
        "TOTAL TIME",
        "MOVED"
    )];
    for record in records {
        let dash = || "-".to_string();
        lines.push(format!(
            "{:<5} {:<21} {:<4} {:<24} {:<29} {:<9} {:<16} {:>9} {:>12} {:>10}",
            record.id,
            format_unix_ms_utc(record.started_at_unix_ms),
            record.kind.as_str(),
            record.instance_name,
            format!("{} → {}", record.source_host, record.destination_host),
            record.policy,
            // Not "running": the ferry that started it may have stopped before it ended.
            record.outcome.map_or("unfinished", OutcomeKind::as_str),
            record.downtime_ms.map_or_else(dash, format_downtime_ms),
            record.total_time_ms.map_or_else(dash, format_duration_ms),
            record.bytes_transferred.map_or_else(dash, format_bytes),
        ));
        if !record.outcome_detail.is_empty() {
            lines.push(format!("      {}", record.outcome_detail));
        }
    }
    lines.join("\n")
}
