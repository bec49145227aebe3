//! One migration in detail (Enter on the list): phase and verdict, how much was sent, what is
//! left with the pass and its low mark, charts of remaining memory and of transfer against
//! dirty rate, the downtime ladder, the phase timeline, the policy's decisions and the last
//! answer to an operator command.
//!
//! Nothing here runs backwards: the gauges show bytes sent (which only grow); what remains,
//! which jumps up at every new pass, is a number beside its pass and low mark, and a chart.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use crate::model::units::{format_bytes, format_duration_ms, MIB};
use crate::policy::{DowntimeStep, StepTrigger};
use crate::progress::{ConvergenceVerdict, MigrationPhase, MigrationProgress};
use crate::tui::app::App;
use crate::tui::state::migrations::{ChartSeries, Stage, TrackedMigration};
use crate::tui::state::operator_messages::OperatorMessageKind;
use crate::tui::theme::Theme;

use super::migrations::{outcome_text, phase_label};
use super::{age, byte_gauge, detail_frame, field_label as label, wrap_words};

/// Rows the charts get at least, when the screen has them: a title, four rows of plot, the
/// axis and its labels.
const CHART_ROWS_MIN: u16 = 6;
/// The verdict wraps onto at most this many rows: the charts matter more than its tail.
const VERDICT_ROWS_MAX: usize = 3;
const OPERATOR_ROWS_MAX: usize = 2;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(migration) = app.selected_migration() else {
        frame.render_widget(
            Paragraph::new(" No migration selected.").block(
                Block::new()
                    .borders(Borders::ALL)
                    .border_style(theme.border_focused),
            ),
            area,
        );
        return;
    };
    let block = detail_frame(
        format!(
            " #{} {} {} → {} · {} · {} ",
            migration.id,
            migration.instance_name(),
            migration.source(),
            migration.destination(),
            migration.kind.as_str(),
            migration.policy_name
        ),
        theme,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;

    let mut head = vec![phase_line(app, migration, theme)];
    head.extend(verdict_lines(migration, width, theme));
    let progress = migration.progress.as_ref();
    let show_disk = !migration.plan.block_migration_disks.is_empty()
        || progress
            .and_then(|p| p.disk_total_bytes)
            .is_some_and(|b| b > 0);
    let gauge_rows: u16 = if show_disk { 2 } else { 1 };
    let ladder = ladder_lines(migration, theme);
    let operator = operator_lines(app, migration, width, theme);
    let fixed_rows =
        head.len() as u16 + gauge_rows + 1 + ladder.len() as u16 + 1 + operator.len() as u16;
    let flexible = inner.height.saturating_sub(fixed_rows);
    // The charts take three fifths of what is left, the event log the rest.
    let chart_rows = (flexible * 3 / 5).max(CHART_ROWS_MIN.min(flexible));
    let event_rows = flexible - chart_rows;
    let [head_area, gauges_area, remaining_area, charts_area, ladder_area, timeline_area, events_area, operator_area] =
        Layout::vertical([
            Constraint::Length(head.len() as u16),
            Constraint::Length(gauge_rows),
            Constraint::Length(1),
            Constraint::Length(chart_rows),
            Constraint::Length(ladder.len() as u16),
            Constraint::Length(1),
            Constraint::Length(event_rows),
            Constraint::Length(operator.len() as u16),
        ])
        .areas(inner);

    frame.render_widget(Paragraph::new(head), head_area);
    draw_gauges(frame, gauges_area, migration, show_disk, theme);
    frame.render_widget(
        Paragraph::new(remaining_line(migration, theme)),
        remaining_area,
    );
    let memory_total_bytes = migration
        .progress
        .as_ref()
        .and_then(|p| p.memory_total_bytes);
    draw_charts(
        frame,
        charts_area,
        &migration.series,
        memory_total_bytes,
        theme,
    );
    frame.render_widget(Paragraph::new(ladder), ladder_area);
    frame.render_widget(
        Paragraph::new(timeline_line(migration, theme)),
        timeline_area,
    );
    frame.render_widget(
        Paragraph::new(event_lines(migration, width, event_rows as usize, theme)),
        events_area,
    );
    frame.render_widget(Paragraph::new(operator), operator_area);
}

fn phase_line<'a>(app: &App, migration: &TrackedMigration, theme: &Theme) -> Line<'a> {
    let mut spans = vec![
        label("phase", theme),
        Span::styled(
            phase_label(migration),
            if migration.in_post_copy() {
                theme.warning
            } else {
                theme.base
            },
        ),
    ];
    let mut detail = Vec::new();
    match &migration.stage {
        Stage::Queued { .. } => detail.push(app.migrations.waiting_for(migration)),
        Stage::Starting => detail.push(format!("connecting to {}", migration.source())),
        // Once finished, the verdict line says how long it took.
        Stage::Finished(_) => {}
        Stage::Running => {
            if let Some(progress) = &migration.progress {
                detail.push(format!("{} in", format_duration_ms(progress.elapsed_ms)));
            }
        }
    }
    detail.push(match migration.plan.bandwidth_mib_per_second {
        Some(mib) => format!("≤{mib} MiB/s at launch"),
        None => "no bandwidth limit at launch".to_string(),
    });
    detail.push(if migration.plan.post_copy_permitted {
        "post-copy permitted".to_string()
    } else {
        "no post-copy".to_string()
    });
    spans.push(Span::raw(format!(" · {}", detail.join(" · "))));
    Line::from(spans)
}

/// How it goes or how it ended, wrapped onto at most [`VERDICT_ROWS_MAX`] rows.
fn verdict_lines<'a>(migration: &TrackedMigration, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    let progress = migration.progress.as_ref();
    let (text, style) = match &migration.stage {
        Stage::Finished(outcome) => {
            let style = match migration.phase() {
                Some(MigrationPhase::Completed) => theme.success,
                Some(MigrationPhase::Cancelled) => theme.warning,
                _ => theme.error,
            };
            (outcome_text(outcome), style)
        }
        Stage::Queued { .. } | Stage::Starting => ("not started".to_string(), theme.disabled),
        Stage::Running if migration.alert.is_some() => {
            super::migrations::alert_text(migration, theme)
        }
        Stage::Running if migration.is_ending() => {
            (super::migrations::ENDING_TEXT.to_string(), theme.base)
        }
        Stage::Running => match progress.map(|p| &p.verdict) {
            Some(ConvergenceVerdict::Converging { eta_ms }) => (
                format!("converging, ETA {}", format_duration_ms(*eta_ms)),
                theme.success,
            ),
            Some(ConvergenceVerdict::NotConverging { reason }) => {
                (format!("NOT CONVERGING: {reason}"), theme.warning)
            }
            _ => (
                "too early to tell whether it converges".to_string(),
                theme.base,
            ),
        },
    };
    let text_width = width.saturating_sub(12);
    let mut wrapped = wrap_words(&text, text_width);
    if wrapped.len() > VERDICT_ROWS_MAX {
        wrapped.truncate(VERDICT_ROWS_MAX);
        if let Some(last) = wrapped.last_mut() {
            let keep = text_width.saturating_sub(1).min(last.chars().count());
            *last = last.chars().take(keep).collect::<String>() + "…";
        }
    }
    wrapped
        .into_iter()
        .enumerate()
        .map(|(index, row)| {
            Line::from(vec![
                if index == 0 {
                    label("verdict", theme)
                } else {
                    Span::raw(" ".repeat(11))
                },
                Span::styled(row, style),
            ])
        })
        .collect()
}

fn draw_gauges(
    frame: &mut Frame,
    area: Rect,
    migration: &TrackedMigration,
    show_disk: bool,
    theme: &Theme,
) {
    let progress = migration.progress.as_ref();
    let completed = migration.phase() == Some(MigrationPhase::Completed);
    let gauge = |name: &str, sent: Option<u64>, total: Option<u64>| {
        let (ratio, text) = match (sent, total) {
            (Some(sent), Some(total)) if total > 0 => {
                let ratio = if completed {
                    1.0
                } else {
                    (sent as f64 / total as f64).min(1.0)
                };
                // Sent grows past the total as dirtied pages are sent again; the bar stops
                // at full and the words say how much more went.
                let text = if sent > total {
                    format!(
                        "{} sent, {:.1}× its {}",
                        format_bytes(sent),
                        sent as f64 / total as f64,
                        format_bytes(total)
                    )
                } else {
                    format!("{} sent of {}", format_bytes(sent), format_bytes(total))
                };
                (ratio, text)
            }
            _ => (0.0, "nothing sent yet".to_string()),
        };
        byte_gauge(name, text, 36, ratio, theme)
    };
    let [memory_area, disk_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    frame.render_widget(
        gauge(
            "memory",
            progress.and_then(|p| p.memory_processed_bytes),
            progress
                .and_then(|p| p.memory_total_bytes)
                .or(Some(migration.plan.instance_memory_bytes)),
        ),
        memory_area,
    );
    if show_disk {
        frame.render_widget(
            gauge(
                "disk",
                progress.and_then(|p| p.disk_processed_bytes),
                progress.and_then(|p| p.disk_total_bytes),
            ),
            disk_area,
        );
    }
}

fn remaining_line<'a>(migration: &TrackedMigration, theme: &Theme) -> Line<'a> {
    if migration.phase() == Some(MigrationPhase::Completed) {
        return Line::from(vec![
            label("remaining", theme),
            Span::styled(
                format!(
                    "nothing: {} runs on {}",
                    migration.instance_name(),
                    migration.destination()
                ),
                theme.success,
            ),
        ]);
    }
    let Some(progress) = migration.progress.as_ref() else {
        return Line::from(vec![
            label("remaining", theme),
            Span::styled("no job statistics yet", theme.disabled),
        ]);
    };
    let bytes = |b: Option<u64>| b.map_or("-".to_string(), format_bytes);
    let mut spans = vec![
        label("remaining", theme),
        Span::styled(bytes(progress.memory_remaining_bytes), theme.title),
    ];
    if let Some(iteration) = progress.iteration.filter(|i| *i > 0) {
        spans.push(Span::raw(format!(" · pass {iteration}")));
    }
    if let Some(low) = progress.current_iteration_low_mark_bytes {
        spans.push(Span::raw(format!(" · low mark {}", format_bytes(low))));
    }
    if let Some(best) = progress.best_low_mark_bytes {
        spans.push(Span::raw(format!(" · best {}", format_bytes(best))));
    }
    // How many in a row is the verdict's to say; here only the count, to fit 80 columns.
    if progress.stalled_iterations_total > 0 {
        spans.push(Span::styled(
            format!(" · {} stalled", progress.stalled_iterations_total),
            if progress.stalled_iterations_in_a_row > 0 {
                theme.warning
            } else {
                theme.base
            },
        ));
    }
    Line::from(spans)
}

/// The memory-remaining and rate charts of a job's statistics (also a Nova migration's, read
/// from its source's libvirt).
pub(super) fn draw_charts(
    frame: &mut Frame,
    area: Rect,
    series: &ChartSeries,
    memory_total_bytes: Option<u64>,
    theme: &Theme,
) {
    if area.height == 0 {
        return;
    }
    let points = series.points();
    if points.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                label("charts", theme),
                Span::styled("appear with the first job statistics", theme.disabled),
            ])),
            area,
        );
        return;
    }
    let seconds = |ms: u64| ms as f64 / 1000.0;
    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    let end_ms = points.last().map_or(0, |p| p.at_ms).max(1000);
    let remaining: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (seconds(p.at_ms), mib(p.memory_remaining_bytes)))
        .collect();
    let transfer: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((seconds(p.at_ms), mib(p.transfer_rate_bytes_per_second?))))
        .collect();
    let dirty: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((seconds(p.at_ms), mib(p.dirty_rate_bytes_per_second?))))
        .collect();
    let memory_top_mib = memory_total_bytes
        .map_or(0.0, mib)
        .max(remaining.iter().map(|(_, y)| *y).fold(0.0, f64::max))
        .max(1.0);
    let rate_top_mib = transfer
        .iter()
        .chain(&dirty)
        .map(|(_, y)| *y)
        .fold(0.0, f64::max)
        .max(1.0)
        .ceil();
    let x_axis = || {
        Axis::default()
            .bounds([0.0, seconds(end_ms)])
            .labels(["0 s".to_string(), format_duration_ms(end_ms)])
            .style(theme.footer_text)
    };
    let y_axis = |top: f64| {
        Axis::default()
            .bounds([0.0, top])
            .labels(["0".to_string(), format!("{top:.0}")])
            .style(theme.footer_text)
    };
    let [left, right] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
        .spacing(1)
        .areas(area);

    let remaining_chart = Chart::new(vec![Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(theme.chart_remaining)
        .data(&remaining)])
    .block(Block::new().title(Line::from(vec![
        Span::styled(" remaining MiB ", theme.header),
        Span::styled("━", theme.chart_remaining),
    ])))
    .x_axis(x_axis())
    .y_axis(y_axis(memory_top_mib.ceil()))
    .legend_position(None);
    frame.render_widget(remaining_chart, left);

    let latest = points.last();
    let dirty_keeps_up = latest.is_some_and(|p| {
        matches!(
            (p.dirty_rate_bytes_per_second, p.transfer_rate_bytes_per_second),
            (Some(dirty), Some(transfer)) if dirty > 0 && dirty >= transfer
        )
    });
    let mut title = vec![
        Span::styled(" MiB/s ", theme.header),
        Span::styled("━ transfer ", theme.chart_transfer),
        Span::styled("━ dirty ", theme.chart_dirty),
    ];
    if dirty_keeps_up {
        title.push(Span::styled("dirty ≥ transfer", theme.warning));
    }
    let rates_chart = Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.chart_transfer)
            .data(&transfer),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.chart_dirty)
            .data(&dirty),
    ])
    .block(Block::new().title(Line::from(title)))
    .x_axis(x_axis())
    .y_axis(y_axis(rate_top_mib))
    .legend_position(None);
    frame.render_widget(rates_chart, right);
}

/// "after 2 stalled passes", "at 2 min 30 s", "at start".
fn trigger_words(step: &DowntimeStep) -> String {
    match step.trigger {
        StepTrigger::AtStart => "at start".to_string(),
        StepTrigger::AfterElapsed { elapsed_ms } => {
            format!("at {}", format_duration_ms(elapsed_ms))
        }
        StepTrigger::AfterStalledIterations { stalled_iterations } => format!(
            "after {stalled_iterations} stalled pass{}",
            if stalled_iterations == 1 { "" } else { "es" }
        ),
    }
}

/// Every rung, the one in force highlighted, expected downtime against it; then what comes
/// next.
fn ladder_lines<'a>(migration: &TrackedMigration, theme: &Theme) -> Vec<Line<'a>> {
    let progress: Option<&MigrationProgress> = migration.progress.as_ref();
    let mut rungs = vec![label("downtime", theme)];
    for (index, step) in migration.downtime_ladder.iter().enumerate() {
        // Brackets as well as the style: the rung in force must show without colour too.
        let (text, style) = match migration.downtime_step {
            Some(current) if current == index => {
                (format!("[{}]", step.max_downtime_ms), theme.current)
            }
            Some(current) if index < current => (step.max_downtime_ms.to_string(), theme.base),
            _ => (step.max_downtime_ms.to_string(), theme.disabled),
        };
        rungs.push(Span::styled(text, style));
        rungs.push(Span::raw(" "));
    }
    rungs.push(Span::raw("ms"));
    let in_force = migration.downtime_rung().map(|r| r.max_downtime_ms);
    // Expected downtime is QEMU's guess at the final pause; after the end, or in post-copy
    // (no final pause), there is nothing to compare.
    let expected = progress
        .and_then(|p| p.expected_downtime_ms)
        .filter(|_| !migration.is_finished() && !migration.in_post_copy());
    if let Some(expected) = expected {
        let (relation, style) = match in_force {
            Some(max) if expected > max => (format!(" > {max} ms allowed"), theme.warning),
            Some(max) => (format!(" ≤ {max} ms allowed"), theme.success),
            None => (String::new(), theme.base),
        };
        rungs.push(Span::raw(format!(" · expected {expected} ms")));
        rungs.push(Span::styled(relation, style));
    }
    let next = match migration.downtime_step {
        _ if migration.is_finished() => "the ladder ended with the migration".to_string(),
        _ if migration.in_post_copy() => {
            "post-copy has no final pause: the ladder no longer applies".to_string()
        }
        None => match migration.downtime_ladder.first() {
            Some(first) => format!(
                "first rung {} ms {}",
                first.max_downtime_ms,
                trigger_words(first)
            ),
            None => "this policy has no downtime ladder".to_string(),
        },
        Some(current) => match migration.downtime_ladder.get(current + 1) {
            Some(next) => {
                let so_far = progress.map_or(0, |p| p.stalled_iterations_total);
                let count = match next.trigger {
                    StepTrigger::AfterStalledIterations { .. } => format!(" ({so_far} so far)"),
                    _ => String::new(),
                };
                format!(
                    "next {} ms {}{count}",
                    next.max_downtime_ms,
                    trigger_words(next)
                )
            }
            None => "top rung reached: the policy's ceiling".to_string(),
        },
    };
    vec![
        Line::from(rungs),
        Line::from(vec![
            Span::raw(" ".repeat(11)),
            Span::styled(next, theme.footer_text),
        ]),
    ]
}

fn timeline_line<'a>(migration: &TrackedMigration, theme: &Theme) -> Line<'a> {
    let mut spans = vec![label("timeline", theme)];
    if migration.phase_marks.is_empty() {
        spans.push(Span::styled("not started", theme.disabled));
        return Line::from(spans);
    }
    let last = migration.phase_marks.len() - 1;
    for (index, mark) in migration.phase_marks.iter().enumerate() {
        if index > 0 {
            spans.push(Span::styled(" → ", theme.footer_text));
        }
        let name = match mark.phase {
            MigrationPhase::CopyingMemory { .. } => "copying",
            phase => phase.name(),
        };
        let style = if index == last && !migration.is_finished() {
            theme.current
        } else {
            theme.base
        };
        spans.push(Span::styled(name.to_string(), style));
        spans.push(Span::styled(
            format!(" {}", format_duration_ms(mark.at_ms)),
            theme.footer_text,
        ));
    }
    Line::from(spans)
}

/// The policy's decisions with their reasons, newest last; as many of the newest as fit.
fn event_lines<'a>(
    migration: &TrackedMigration,
    width: usize,
    rows: usize,
    theme: &Theme,
) -> Vec<Line<'a>> {
    if rows == 0 {
        return Vec::new();
    }
    let heading = Line::from(vec![
        label("policy", theme),
        Span::styled(
            match migration.policy_events.len() {
                1 => "1 decision".to_string(),
                count => format!("{count} decisions"),
            },
            theme.footer_text,
        ),
    ]);
    if migration.policy_events.is_empty() {
        return vec![Line::from(vec![
            label("policy", theme),
            Span::styled("no decision yet", theme.disabled),
        ])];
    }
    let time_width = 9;
    let text_width = width.saturating_sub(time_width + 2);
    let mut blocks: Vec<Vec<Line>> = Vec::new();
    let mut used = 1;
    for event in migration.policy_events.iter().rev() {
        let wrapped = wrap_words(&event.reason, text_width);
        if used + wrapped.len() > rows {
            break;
        }
        used += wrapped.len();
        let lines = wrapped
            .into_iter()
            .enumerate()
            .map(|(index, text)| {
                let time = if index == 0 {
                    format!(
                        " {:>width$} ",
                        format_duration_ms(event.at_ms),
                        width = time_width
                    )
                } else {
                    " ".repeat(time_width + 2)
                };
                Line::from(vec![
                    Span::styled(time, theme.footer_text),
                    Span::styled(text, theme.base),
                ])
            })
            .collect();
        blocks.push(lines);
    }
    let mut lines = vec![heading];
    lines.extend(blocks.into_iter().rev().flatten());
    lines
}

/// The engine's last answer to a command (libvirt's errors can be long): at most
/// [`OPERATOR_ROWS_MAX`] rows.
fn operator_lines<'a>(
    app: &App,
    migration: &TrackedMigration,
    width: usize,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let Some(message) = migration.last_operator_message() else {
        return vec![Line::from(vec![
            label("operator", theme),
            Span::styled("no command sent (a f b d)", theme.disabled),
        ])];
    };
    let style: Style = match message.kind {
        OperatorMessageKind::Done => theme.success,
        OperatorMessageKind::Refused => theme.error,
        OperatorMessageKind::Warning => theme.warning,
    };
    let text = format!("{} ({} ago)", message.text, age(app.now, message.at));
    let mut rows = wrap_words(&text, width.saturating_sub(11));
    rows.truncate(OPERATOR_ROWS_MAX);
    rows.into_iter()
        .enumerate()
        .map(|(index, row)| {
            Line::from(vec![
                if index == 0 {
                    label("operator", theme)
                } else {
                    Span::raw(" ".repeat(11))
                },
                Span::styled(row, style),
            ])
        })
        .collect()
}
