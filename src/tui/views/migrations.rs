//! The migrations list (`2`): every queued, running and recent migration, one row each.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::engine::live::LiveOutcome;
use crate::model::units::{format_duration_ms, format_rate};
use crate::progress::{ConvergenceVerdict, MigrationPhase};
use crate::tui::app::App;
use crate::tui::migrations::{MigrationStore, Stage, TrackedMigration};
use crate::tui::theme::Theme;

use super::scroll_offset;

/// "copy pass 3", "post-copy", "queued": the phase in a few words.
pub fn phase_label(migration: &TrackedMigration) -> String {
    match (&migration.stage, migration.phase()) {
        (Stage::Queued { .. }, _) => "queued".to_string(),
        (Stage::Starting, _) => "starting".to_string(),
        (_, Some(MigrationPhase::CopyingMemory { iteration })) => format!("copy pass {iteration}"),
        (_, Some(MigrationPhase::SwitchingOver)) => "switch-over".to_string(),
        (_, Some(phase)) => phase.name().to_string(),
        (_, None) => "-".to_string(),
    }
}

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
        LiveOutcome::Unknown { detail } => format!("outcome unknown: {detail}"),
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
                LiveOutcome::Failed { .. } | LiveOutcome::Unknown { .. } => theme.error,
            };
            (outcome_text(outcome), style)
        }
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

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let store = &app.migrations;
    let listed = store.listed();
    let title = Line::from(vec![
        Span::styled(" Migrations ", theme.title),
        Span::styled(
            format!(
                "{} running {} queued {} recent ",
                store.running_count(),
                store.queued_count(),
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
                    " On the inventory (1), select an instance and press m to live-migrate it.",
                ),
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
            let row = migration_row(store, migration, theme);
            if index == app.migration_cursor() {
                row.style(theme.selected)
            } else {
                row
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

fn migration_row<'a>(
    store: &MigrationStore,
    migration: &'a TrackedMigration,
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
    let (status, status_style) = status_text(store, migration, theme);
    let phase_style = match migration.phase() {
        Some(MigrationPhase::PostCopy) => theme.warning,
        _ => theme.base,
    };
    Row::new(vec![
        Cell::from(migration.id.to_string()),
        Cell::from(migration.instance_name()),
        Cell::from(format!(
            "{} → {}",
            migration.source(),
            migration.destination()
        )),
        Cell::from(phase_label(migration)).style(phase_style),
        Cell::from(percent),
        Cell::from(rate),
        Cell::from(status).style(status_style),
    ])
}
