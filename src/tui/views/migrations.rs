//! The migrations list (`2`): every queued, running and recent migration, one row each.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::engine::cold::resize::size_words;
use crate::engine::cold::{ColdOutcome, ColdPhase};
use crate::engine::live::LiveOutcome;
use crate::model::units::{format_bytes, format_duration_ms, format_rate};
use crate::progress::{ConvergenceVerdict, MigrationPhase};
use crate::tui::app::App;
use crate::tui::state::cold_detail::{ColdEnd, ColdStage, TrackedCold};
use crate::tui::state::migrations::{Listed, MigrationStore, Stage, TrackedMigration};
use crate::tui::theme::Theme;

use super::{on_row, scroll_offset};

/// "copy pass 3", "post-copy", "queued": the phase in a few words.
pub fn phase_label(migration: &TrackedMigration) -> String {
    match (&migration.stage, migration.phase()) {
        (Stage::Queued { .. }, _) => "queued".to_string(),
        (Stage::Starting, _) => "starting".to_string(),
        // The job statistics said cancelled or failed; the migration ends when the engine says.
        _ if migration.is_ending() => "ending".to_string(),
        (_, Some(MigrationPhase::CopyingMemory { iteration })) => format!("copy pass {iteration}"),
        (_, Some(MigrationPhase::SwitchingOver)) => "switch-over".to_string(),
        (_, Some(phase)) => phase.name().to_string(),
        (_, None) => "-".to_string(),
    }
}

/// The status while the job has stopped and the engine's outcome is on its way: the list's
/// status and the detail's verdict.
pub const ENDING_TEXT: &str = "job stopped; waiting for the engine's outcome";

/// How it ended, in one line: "completed in 9.5 s, downtime 38 ms".
pub fn outcome_text(outcome: &LiveOutcome) -> String {
    match outcome {
        LiveOutcome::Completed {
            downtime_ms,
            total_time_ms,
            ..
        } => format!(
            "completed in {}, {}",
            format_duration_ms(*total_time_ms),
            downtime_ms.map_or("downtime not reported".to_string(), |ms| format!(
                "downtime {ms} ms"
            ))
        ),
        LiveOutcome::Cancelled { detail } => format!("cancelled: {detail}"),
        LiveOutcome::Failed { detail } => format!("failed: {detail}"),
        LiveOutcome::Unsettled { detail } => format!("unsettled: {detail}"),
    }
}

/// A running migration's alert, in the error colour when post-copy broke.
pub fn alert_text(migration: &TrackedMigration, theme: &Theme) -> (String, Style) {
    match &migration.alert {
        Some(alert) if alert.is_severe() => (alert.text.clone(), theme.error),
        Some(alert) => (alert.text.clone(), theme.warning),
        None => (String::new(), theme.base),
    }
}

/// The last column: what a queued one waits for, how a running one goes, how it ended.
pub fn status_text(
    store: &MigrationStore,
    migration: &TrackedMigration,
    theme: &Theme,
) -> (String, Style) {
    match &migration.stage {
        Stage::Queued { .. } => (store.waiting_for(migration), theme.base),
        Stage::Starting => (format!("connecting to {}", migration.source()), theme.base),
        Stage::Finished(outcome) => {
            let style = match outcome {
                LiveOutcome::Completed { .. } => theme.success,
                LiveOutcome::Cancelled { .. } => theme.warning,
                LiveOutcome::Failed { .. } | LiveOutcome::Unsettled { .. } => theme.error,
            };
            (outcome_text(outcome), style)
        }
        Stage::Running if migration.alert.is_some() => alert_text(migration, theme),
        Stage::Running if migration.is_ending() => (ENDING_TEXT.to_string(), theme.base),
        Stage::Running => match migration.progress.as_ref().map(|p| &p.verdict) {
            Some(ConvergenceVerdict::Converging { eta_ms }) => (
                format!("converging, ETA {}", format_duration_ms(*eta_ms)),
                theme.base,
            ),
            Some(ConvergenceVerdict::NotConverging { .. }) => {
                ("not converging".to_string(), theme.warning)
            }
            _ => ("-".to_string(), theme.base),
        },
    }
}

/// A cold migration's phase in a few words, for the list's phase column (12 wide).
pub fn cold_phase_label(migration: &TrackedCold) -> String {
    match &migration.stage {
        ColdStage::AwaitingConfirm => return "awaiting".to_string(),
        ColdStage::Settling { keep: true } => return "confirming".to_string(),
        ColdStage::Settling { keep: false } => return "reverting".to_string(),
        ColdStage::Finished(ColdEnd::Confirmed) => return "confirmed".to_string(),
        ColdStage::Finished(ColdEnd::Reverted) => return "reverted".to_string(),
        ColdStage::Finished(ColdEnd::Engine(outcome)) => {
            return match outcome {
                ColdOutcome::Refused { .. } => "refused",
                ColdOutcome::RolledBack { .. } => "rolled back",
                ColdOutcome::Failed { .. } | ColdOutcome::AwaitingConfirm { .. } => "failed",
            }
            .to_string()
        }
        ColdStage::Running if migration.queued.is_some() => return "queued".to_string(),
        ColdStage::Running => {}
    }
    match migration.phase() {
        None | Some(ColdPhase::Prechecks) => "prechecks".to_string(),
        Some(ColdPhase::ShuttingDown { .. }) => "shutdown".to_string(),
        Some(ColdPhase::PoweringOffHard) => "hard off".to_string(),
        Some(ColdPhase::Copying {
            disk_number,
            disk_count,
            ..
        }) => format!("copy {disk_number}/{disk_count}"),
        Some(ColdPhase::Verifying {
            disk_number,
            disk_count,
            ..
        }) => format!("verify {disk_number}/{disk_count}"),
        Some(ColdPhase::Defining) => "defining".to_string(),
        Some(ColdPhase::Starting) => "starting".to_string(),
        Some(ColdPhase::RollingBack { .. }) => "rolling back".to_string(),
        Some(other) => crate::engine::cold_record::phase_words(other),
    }
}

/// A resize in place has no copies to keep or remove: its line speaks of the sizes. None for
/// what reads the same as for any cold migration.
fn in_place_status_text(migration: &TrackedCold, theme: &Theme) -> Option<(String, Style)> {
    let resize = migration.plan.resizes_in_place()?;
    let host = migration.source();
    let (old, new) = (size_words(resize.from), size_words(resize.to));
    Some(match &migration.stage {
        ColdStage::Running if migration.rolling_back() => {
            (format!("putting back {old} on {host}"), theme.warning)
        }
        ColdStage::AwaitingConfirm => (
            format!("on {host} at {new}: C confirm keeps it · R revert to {old}"),
            theme.warning,
        ),
        ColdStage::Settling { keep: true } => (format!("keeping {new}"), theme.base),
        ColdStage::Settling { keep: false } => (format!("putting back {old}"), theme.base),
        ColdStage::Finished(ColdEnd::Confirmed) => {
            (format!("confirmed: {new} on {host}"), theme.success)
        }
        ColdStage::Finished(ColdEnd::Reverted) => {
            (format!("reverted: {old} on {host}"), theme.success)
        }
        _ => return None,
    })
}

/// How a cold migration ended, or what it waits for, in one line.
pub fn cold_status_text(migration: &TrackedCold, theme: &Theme) -> (String, Style) {
    let (source, destination) = (migration.source(), migration.destination());
    if let Some(status) = in_place_status_text(migration, theme) {
        return status;
    }
    match &migration.stage {
        ColdStage::Running if migration.rolling_back() => {
            (format!("putting it back on {source}"), theme.warning)
        }
        ColdStage::Running if migration.queued.is_some() => {
            (migration.queued.clone().unwrap_or_default(), theme.base)
        }
        ColdStage::Running => match (&migration.copy, migration.phase()) {
            (Some(copy), Some(ColdPhase::Copying { .. } | ColdPhase::Verifying { .. })) => (
                copy.eta_ms.map_or("ETA -".to_string(), |ms| {
                    format!("ETA {}", format_duration_ms(ms))
                }),
                theme.base,
            ),
            (_, Some(ColdPhase::ShuttingDown { timeout_ms, .. })) => (
                format!("waiting ≤{} for the guest", format_duration_ms(*timeout_ms)),
                theme.base,
            ),
            _ => ("-".to_string(), theme.base),
        },
        ColdStage::AwaitingConfirm => (
            format!("on {destination}, {source} keeps a copy: C confirm · R revert"),
            theme.warning,
        ),
        ColdStage::Settling { keep: true } => {
            (format!("removing the copy on {source}"), theme.base)
        }
        ColdStage::Settling { keep: false } => {
            (format!("removing the copy on {destination}"), theme.base)
        }
        ColdStage::Finished(ColdEnd::Confirmed) => (
            format!(
                "confirmed: on {destination} only{}",
                migration
                    .figures
                    .bytes_copied
                    .map_or(String::new(), |b| format!(", {} copied", format_bytes(b)))
            ),
            theme.success,
        ),
        ColdStage::Finished(ColdEnd::Reverted) => {
            (format!("reverted: on {source} only"), theme.success)
        }
        ColdStage::Finished(ColdEnd::Engine(outcome)) => match outcome {
            ColdOutcome::RolledBack { detail, leftovers } if leftovers.is_empty() => {
                (format!("rolled back: {detail}"), theme.warning)
            }
            ColdOutcome::RolledBack { detail, leftovers } => (
                format!("rolled back: {detail}; left: {}", leftovers.join(", ")),
                theme.error,
            ),
            ColdOutcome::Refused { detail } => (format!("refused: {detail}"), theme.warning),
            ColdOutcome::Failed { detail } => (format!("failed: {detail}"), theme.error),
            ColdOutcome::AwaitingConfirm { .. } => ("-".to_string(), theme.base),
        },
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let store = &app.migrations;
    let listed = store.listed();
    let title = Line::from(vec![
        Span::styled(" Migrations ", theme.title),
        Span::styled(
            format!(
                "{} running {} queued {}{} recent ",
                store.running_count(),
                store.queued_count(),
                match store.awaiting_confirm_count() {
                    0 => String::new(),
                    awaiting => format!("{awaiting} awaiting confirm "),
                },
                store.finished_count()
            ),
            theme.footer_text,
        ),
    ]);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border_focused)
        .title(title);
    if listed.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![
                Line::raw(""),
                Line::raw(" No migrations yet."),
                Line::raw(
                    " On the inventory (1), select an instance and press m to live-migrate it",
                ),
                Line::raw(" or c to cold-migrate it."),
            ])
            .wrap(Wrap { trim: false })
            .style(theme.base)
            .block(block),
            area,
        );
        return;
    }
    let inner_rows = area.height.saturating_sub(3) as usize;
    let offset = scroll_offset(app.migration_cursor(), inner_rows);
    let name_width = listed
        .iter()
        .map(|m| m.instance_name().chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 24) as u16;
    let route_width = listed
        .iter()
        .map(|m| m.source().len() + m.destination().len() + 3)
        .max()
        .unwrap_or(9)
        .clamp(9, 25) as u16;
    let rows = listed
        .iter()
        .enumerate()
        .skip(offset)
        .take(inner_rows)
        .map(|(index, migration)| {
            let highlight = (index == app.migration_cursor()).then_some(theme.selected);
            let row = match migration {
                Listed::Live(live) => migration_row(store, live, highlight, theme),
                Listed::Cold(cold) => cold_row(cold, highlight, theme),
                Listed::Nova(nova) => super::nova::nova_row(nova, highlight, theme),
            };
            match highlight {
                Some(highlight) => row.style(highlight),
                None => row,
            }
        });
    let header =
        Row::new(["#", "INSTANCE", "ROUTE", "PHASE", "DONE", "RATE", "STATUS"]).style(theme.header);
    let table = Table::new(
        rows,
        [
            Constraint::Length(3),
            Constraint::Length(name_width),
            Constraint::Length(route_width),
            // "copy pass 12", "switch-over"
            Constraint::Length(12),
            Constraint::Length(4),
            // "100 MiB/s"
            Constraint::Length(9),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .block(block);
    frame.render_widget(table, area);
}

fn cold_row<'a>(migration: &'a TrackedCold, highlight: Option<Style>, theme: &Theme) -> Row<'a> {
    let streaming = migration.stage == ColdStage::Running && migration.streaming();
    let percent = match &migration.stage {
        ColdStage::AwaitingConfirm
        | ColdStage::Settling { .. }
        | ColdStage::Finished(ColdEnd::Confirmed) => "100%".to_string(),
        _ if streaming => migration
            .percent()
            .map_or("-".to_string(), |p| format!("{p}%")),
        _ => "-".to_string(),
    };
    let rate = migration
        .copy
        .as_ref()
        .filter(|_| streaming)
        .and_then(|c| c.rate_bytes_per_second)
        .map_or("-".to_string(), format_rate);
    let phase_style = match migration.stage {
        ColdStage::AwaitingConfirm => theme.warning,
        _ => theme.base,
    };
    list_row(
        Listed::Cold(migration),
        (cold_phase_label(migration), phase_style),
        percent,
        rate,
        cold_status_text(migration, theme),
        highlight,
        theme,
    )
}

/// One row of the list, live, cold or Nova's: id, instance, route, then what the kind says.
pub(super) fn list_row<'a>(
    migration: Listed<'a>,
    (phase, phase_style): (String, Style),
    percent: String,
    rate: String,
    (status, status_style): (String, Style),
    highlight: Option<Style>,
    theme: &Theme,
) -> Row<'a> {
    Row::new(vec![
        Cell::from(migration.id().to_string()),
        Cell::from(migration.instance_name()),
        Cell::from(format!(
            "{} → {}",
            migration.source(),
            migration.destination()
        )),
        Cell::from(phase).style(on_row(phase_style, highlight, theme)),
        Cell::from(percent),
        Cell::from(rate),
        Cell::from(status).style(on_row(status_style, highlight, theme)),
    ])
}

fn migration_row<'a>(
    store: &MigrationStore,
    migration: &'a TrackedMigration,
    highlight: Option<Style>,
    theme: &Theme,
) -> Row<'a> {
    let running = matches!(migration.stage, Stage::Running);
    let progress = migration.progress.as_ref();
    let percent = match migration.phase() {
        Some(MigrationPhase::Completed) => "100%".to_string(),
        _ if !running => "-".to_string(),
        _ => progress
            .and_then(|p| p.percent_complete())
            .map_or("-".to_string(), |p| format!("{p}%")),
    };
    let rate = progress
        .filter(|_| running)
        .and_then(|p| p.transfer_rate_bytes_per_second)
        .map_or("-".to_string(), format_rate);
    let phase_style = match migration.phase() {
        Some(MigrationPhase::PostCopy) => theme.warning,
        _ => theme.base,
    };
    list_row(
        Listed::Live(migration),
        (phase_label(migration), phase_style),
        percent,
        rate,
        status_text(store, migration, theme),
        highlight,
        theme,
    )
}
