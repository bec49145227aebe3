//! A migration Nova carries out: its row in the list and its detail (Enter). Every figure says
//! where it came from: `nova` for Nova's record (the source of truth, saved every ~5 s),
//! `libvirt` for ferry's own read-only reading of the source's job (every 0.5 s), which is
//! where the pass, the dirty rate, the expected downtime and the convergence verdict come
//! from: Nova shows none of them.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row};
use ratatui::Frame;

use crate::model::units::{format_bytes, format_duration_ms, format_rate};
use crate::progress::{ConvergenceVerdict, MigrationProgress};
use crate::tui::app::App;
use crate::tui::state::migrations::Listed;
use crate::tui::state::nova::{NovaEnd, NovaStage, TrackedNova};
use crate::tui::theme::Theme;

use super::migration_detail::draw_charts;
use super::migrations::list_row;
use super::{age, detail_frame, field_label as label, wrap_words};

/// The status column: an alert first, then what libvirt's reading says of convergence, then
/// the last thing that happened.
fn status_text(migration: &TrackedNova, theme: &Theme) -> (String, Style) {
    if let Some(detail) = &migration.silent {
        return (format!("cloud silent: {detail}"), theme.warning);
    }
    match &migration.stage {
        NovaStage::Running => match &migration.libvirt {
            Some(progress) => (libvirt_words(progress), verdict_style(progress, theme)),
            None => (
                migration
                    .server_line
                    .clone()
                    .or_else(|| migration.last_log().map(str::to_string))
                    .unwrap_or_default(),
                theme.base,
            ),
        },
        NovaStage::AwaitingConfirm => (
            format!(
                "nova: VERIFY_RESIZE on {}: C confirm · R revert",
                migration.destination()
            ),
            theme.warning,
        ),
        NovaStage::Settling { .. } => (
            migration.last_log().unwrap_or_default().to_string(),
            theme.base,
        ),
        NovaStage::Finished(end) => (
            migration.last_log().unwrap_or_default().to_string(),
            match end {
                NovaEnd::Completed { .. } | NovaEnd::Settled { .. } => theme.success,
                NovaEnd::Cancelled { .. } | NovaEnd::Unsettled { .. } => theme.warning,
                NovaEnd::Failed { .. } => theme.error,
            },
        ),
    }
}

fn verdict_style(progress: &MigrationProgress, theme: &Theme) -> Style {
    match progress.verdict {
        ConvergenceVerdict::NotConverging { .. } => theme.warning,
        _ => theme.base,
    }
}

/// "libvirt: pass 3 · dirty 12.0 MiB/s · converging, ETA 5 s".
fn libvirt_words(progress: &MigrationProgress) -> String {
    let pass = progress
        .iteration
        .map_or(String::new(), |i| format!("pass {i} · "));
    let dirty = progress
        .dirty_rate_bytes_per_second
        .map_or(String::new(), |r| format!("dirty {} · ", format_rate(r)));
    let verdict = match &progress.verdict {
        ConvergenceVerdict::TooEarly => "too early to tell".to_string(),
        ConvergenceVerdict::Converging { eta_ms } => {
            format!("converging, ETA {}", format_duration_ms(*eta_ms))
        }
        ConvergenceVerdict::NotConverging { reason } => format!("NOT converging: {reason}"),
    };
    format!("libvirt: {pass}{dirty}{verdict}")
}

/// The row of the migrations list; the phase column carries Nova's status words.
pub fn nova_row<'a>(
    migration: &'a TrackedNova,
    highlight: Option<Style>,
    theme: &Theme,
) -> Row<'a> {
    let rate = migration
        .libvirt
        .as_ref()
        .filter(|_| migration.stage == NovaStage::Running)
        .and_then(|p| p.transfer_rate_bytes_per_second)
        .map_or("-".to_string(), format_rate);
    let phase_style = match migration.stage {
        NovaStage::AwaitingConfirm => theme.warning,
        _ => theme.base,
    };
    list_row(
        Listed::Nova(migration),
        (format!("nova {}", migration.phase_label()), phase_style),
        migration
            .percent()
            .map_or("-".to_string(), |p| format!("{p}%")),
        rate,
        status_text(migration, theme),
        highlight,
        theme,
    )
}

fn optional_bytes(bytes: Option<u64>) -> String {
    bytes.map_or("-".to_string(), format_bytes)
}

/// Nova's own record: what Nova says, and how old its last save of it was.
fn nova_lines<'a>(
    app: &App,
    migration: &TrackedNova,
    width: usize,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let mut lines = vec![Line::from(vec![
        label("nova", theme),
        Span::styled(
            format!(
                "{} · cloud {} · server {} · Nova migration {}",
                migration.phase_label(),
                migration.cloud(),
                migration.plan.server_id,
                migration
                    .plan
                    .nova_migration_id
                    .map_or("not known yet".to_string(), |id| id.to_string())
            ),
            theme.base,
        ),
    ])];
    if let Some(record) = &migration.nova_record {
        lines.push(Line::from(vec![
            label("", theme),
            Span::raw(format!(
                "memory remaining {} of {} · disk remaining {} of {} · saved by Nova {}",
                optional_bytes(record.memory_remaining_bytes),
                optional_bytes(record.memory_total_bytes),
                optional_bytes(record.disk_remaining_bytes),
                optional_bytes(record.disk_total_bytes),
                record.updated_at.as_deref().unwrap_or("-"),
            )),
        ]));
    }
    if let Some(server_line) = &migration.server_line {
        for row in wrap_words(server_line, width.saturating_sub(11)) {
            lines.push(Line::from(vec![label("", theme), Span::raw(row)]));
        }
    }
    if let Some(detail) = &migration.silent {
        lines.push(Line::from(vec![
            label("", theme),
            Span::styled(
                format!("the cloud did not answer the last poll: {detail} (still watching)"),
                theme.warning,
            ),
        ]));
    }
    lines.push(Line::from(vec![
        label("started", theme),
        Span::raw(format!(
            "{} ago{}",
            age(app.now, migration.started_at),
            if migration.found {
                " · taken over from ferry's history"
            } else {
                ""
            }
        )),
    ]));
    lines
}

/// ferry's own reading of the source's libvirt job, labelled as such.
fn libvirt_lines<'a>(migration: &TrackedNova, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    let heading = format!("libvirt on {}, read-only by ferry", migration.source());
    let Some(progress) = &migration.libvirt else {
        let why = migration.libvirt_unavailable.clone().unwrap_or_else(|| {
            if migration.kind == crate::model::migration::MigrationKind::Cold {
                "a cold move has no live job: Nova copies the disk".to_string()
            } else {
                "no job statistics yet".to_string()
            }
        });
        let mut lines = vec![Line::from(vec![
            label("libvirt", theme),
            Span::raw(heading),
        ])];
        for row in wrap_words(&why, width.saturating_sub(11)) {
            lines.push(Line::from(vec![
                label("", theme),
                Span::styled(row, theme.disabled),
            ]));
        }
        return lines;
    };
    vec![
        Line::from(vec![
            label("libvirt", theme),
            Span::raw(format!("{heading} · phase {}", progress.phase.name())),
        ]),
        Line::from(vec![
            label("", theme),
            Span::raw(format!(
                "pass {} · remaining {} of {} · transfer {} · dirty {} · expected downtime {}",
                progress
                    .iteration
                    .map_or("-".to_string(), |i| i.to_string()),
                optional_bytes(progress.memory_remaining_bytes),
                optional_bytes(progress.memory_total_bytes),
                progress
                    .transfer_rate_bytes_per_second
                    .map_or("-".to_string(), format_rate),
                progress
                    .dirty_rate_bytes_per_second
                    .map_or("-".to_string(), format_rate),
                progress
                    .expected_downtime_ms
                    .map_or("-".to_string(), |ms| format!("{ms} ms")),
            )),
        ]),
        Line::from(vec![
            label("verdict", theme),
            Span::styled(
                libvirt_words(progress)
                    .trim_start_matches("libvirt: ")
                    .to_string(),
                verdict_style(progress, theme),
            ),
        ]),
    ]
}

/// What the operator can do now, in words.
fn next_line<'a>(migration: &TrackedNova, theme: &Theme) -> Line<'a> {
    let text = match (&migration.stage, migration.kind) {
        (NovaStage::Running, crate::model::migration::MigrationKind::Live) => {
            "a asks Nova to abort · f asks Nova to force-complete".to_string()
        }
        (NovaStage::Running, _) => {
            "Nova is moving it; C or R once it waits in VERIFY_RESIZE".to_string()
        }
        (NovaStage::AwaitingConfirm, _) => format!(
            "C asks Nova to confirm it on {} · R to revert it to {}",
            migration.destination(),
            migration.source()
        ),
        (NovaStage::Settling { .. }, _) => "waiting for Nova's answer".to_string(),
        (NovaStage::Finished(NovaEnd::Unsettled { .. }), _) => {
            "ferry resume watches it again and settles it from Nova's answers".to_string()
        }
        (NovaStage::Finished(_), _) => "ended: ferry history shows it".to_string(),
    };
    Line::from(vec![label("next", theme), Span::styled(text, theme.base)])
}

pub fn draw_detail(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    migration: &TrackedNova,
    theme: &Theme,
) {
    let block = detail_frame(
        format!(
            " #{} {} {} → {} · {} · through Nova ",
            migration.id,
            migration.instance_name(),
            migration.source(),
            migration.destination(),
            migration.what(),
        ),
        theme,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let mut head = nova_lines(app, migration, width, theme);
    head.extend(libvirt_lines(migration, width, theme));
    head.push(next_line(migration, theme));
    let log: Vec<Line> = migration
        .log
        .iter()
        .map(|line| Line::from(vec![label("", theme), Span::raw(line.clone())]))
        .collect();
    let log_rows = (log.len() as u16 + 1).min(8);
    let [head_area, charts_area, log_area] = Layout::vertical([
        Constraint::Length(head.len() as u16),
        Constraint::Min(0),
        Constraint::Length(log_rows),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(head), head_area);
    let memory_total_bytes = migration
        .libvirt
        .as_ref()
        .and_then(|p| p.memory_total_bytes);
    if migration.kind == crate::model::migration::MigrationKind::Live {
        draw_charts(
            frame,
            charts_area,
            &migration.series,
            memory_total_bytes,
            theme,
        );
    }
    let skip = log.len().saturating_sub(log_rows as usize - 1);
    let mut lines = vec![Line::from(vec![label("log", theme)])];
    lines.extend(log.into_iter().skip(skip));
    frame.render_widget(Paragraph::new(lines), log_area);
}
