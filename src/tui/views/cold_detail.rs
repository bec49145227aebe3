//! One cold migration in detail (Enter on its row): the phase, how the guest is powered off,
//! gauges for the copy and its verification with rate and ETA, each disk with what happens to
//! it and its checksum once verified, the phase timeline, what the operator can do next (or
//! how it ended), and the log of warnings, rollback steps and confirm or revert steps.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};
use ratatui::Frame;

use crate::engine::cold::resize::size_words;
use crate::engine::cold::{ColdOutcome, ColdPhase, DiskAction};
use crate::model::units::{format_bytes, format_duration_ms, format_rate};
use crate::tui::app::App;
use crate::tui::state::cold_detail::{ColdEnd, ColdStage, TrackedCold};
use crate::tui::state::operator_messages::OperatorMessageKind;
use crate::tui::theme::Theme;

use super::migrations::cold_phase_label;
use super::{age, byte_gauge, detail_frame, field_label as label, wrap_words};

/// What a resize in place does next (or how it ended): its host keeps one definition, so the
/// words are of sizes, not of copies. None where it reads as for any cold migration.
fn in_place_next(
    migration: &TrackedCold,
    figures_text: &str,
    theme: &Theme,
) -> Option<(&'static str, String, Style)> {
    let resize = migration.plan.resizes_in_place()?;
    let host = migration.source();
    let (old, new) = (size_words(resize.from), size_words(resize.to));
    Some(match &migration.stage {
        ColdStage::Running if migration.rolling_back() => (
            "next",
            format!("rolling back: the old definition ({old}) defined again on {host}"),
            theme.warning,
        ),
        ColdStage::Running => (
            "next",
            format!(
                "once defined at {new} and started again, it awaits C confirm or R revert; a \
                 aborts and puts back {old}"
            ),
            theme.footer_text,
        ),
        ColdStage::AwaitingConfirm => (
            "next",
            format!(
                "runs on {host} at {new}; the old definition ({old}) is kept in the history. C \
                 confirm keeps the new size · R revert stops it and defines the old one again. \
                 {figures_text}"
            ),
            theme.warning,
        ),
        ColdStage::Settling { keep: true } => {
            ("next", format!("confirming: keeping {new}"), theme.base)
        }
        ColdStage::Settling { keep: false } => (
            "next",
            format!("reverting: defining {old} again on {host}"),
            theme.base,
        ),
        ColdStage::Finished(ColdEnd::Confirmed) => (
            "outcome",
            format!("confirmed: {new} on {host}. {figures_text}"),
            theme.success,
        ),
        ColdStage::Finished(ColdEnd::Reverted) => (
            "outcome",
            format!("reverted: {old} on {host}, as before the resize"),
            theme.success,
        ),
        _ => return None,
    })
}

/// The sha256 shown per disk: enough to compare with `sha256sum` by eye.
const SHA256_SHOWN_CHARS: usize = 16;
/// The "next" (or outcome) text wraps onto at most this many rows.
const NEXT_ROWS_MAX: usize = 3;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, migration: &TrackedCold, theme: &Theme) {
    let block = detail_frame(
        format!(
            " #{} {} {} → {} · {} ",
            migration.id,
            migration.instance_name(),
            migration.source(),
            migration.destination(),
            if migration.plan.resize.is_some() {
                "cold resize"
            } else {
                "cold"
            },
        ),
        theme,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;

    let mut head = vec![phase_line(app, migration, theme)];
    head.extend(guest_lines(migration, width, theme));
    let disks = disk_lines(migration, theme);
    let timeline = timeline_lines(migration, width, theme);
    let next = next_lines(migration, width, theme);
    let fixed_rows = head.len() + 2 + disks.len() + timeline.len() + next.len() + 1;
    let log_rows = (inner.height as usize).saturating_sub(fixed_rows);
    let [head_area, copy_area, verify_area, disks_area, timeline_area, next_area, _, log_area] =
        Layout::vertical([
            Constraint::Length(head.len() as u16),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(disks.len() as u16),
            Constraint::Length(timeline.len() as u16),
            Constraint::Length(next.len() as u16),
            Constraint::Length(1),
            Constraint::Length(log_rows as u16),
        ])
        .areas(inner);
    frame.render_widget(Paragraph::new(head), head_area);
    frame.render_widget(gauge(migration, false, theme), copy_area);
    frame.render_widget(gauge(migration, true, theme), verify_area);
    frame.render_widget(Paragraph::new(disks), disks_area);
    frame.render_widget(Paragraph::new(timeline), timeline_area);
    frame.render_widget(Paragraph::new(next), next_area);
    frame.render_widget(
        Paragraph::new(log_lines(app, migration, width, log_rows, theme)),
        log_area,
    );
}

/// Width of the label column, " timeline ".
const LABEL_WIDTH: usize = 11;

/// `text` under `heading`, wrapped to the width, at most `max_rows` rows.
fn labelled_rows<'a>(
    heading: &str,
    text: &str,
    style: Style,
    width: usize,
    max_rows: usize,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let mut rows = wrap_words(text, width.saturating_sub(LABEL_WIDTH));
    rows.truncate(max_rows);
    rows.into_iter()
        .enumerate()
        .map(|(index, row)| {
            Line::from(vec![
                if index == 0 {
                    label(heading, theme)
                } else {
                    Span::raw(" ".repeat(LABEL_WIDTH))
                },
                Span::styled(row, style),
            ])
        })
        .collect()
}

fn phase_line<'a>(app: &App, migration: &TrackedCold, theme: &Theme) -> Line<'a> {
    let style = match migration.stage {
        ColdStage::AwaitingConfirm => theme.warning,
        ColdStage::Finished(ColdEnd::Confirmed | ColdEnd::Reverted) => theme.success,
        ColdStage::Finished(ColdEnd::Engine(ColdOutcome::Failed { .. })) => theme.error,
        ColdStage::Finished(_) => theme.warning,
        _ => theme.base,
    };
    let mut detail = Vec::new();
    if let (ColdStage::Running, Some(phase)) = (&migration.stage, migration.phase()) {
        detail.push(crate::engine::cold_record::phase_words(phase));
    }
    detail.push(if migration.from_history {
        format!(
            "launched {} ago (found in the history)",
            age(app.now, migration.started_at)
        )
    } else {
        format!("launched {} ago", age(app.now, migration.started_at))
    });
    Line::from(vec![
        label("phase", theme),
        Span::styled(cold_phase_label(migration), style),
        Span::raw(format!(" · {}", detail.join(" · "))),
    ])
}

/// How the guest's power is handled: what the plan allows and what happened.
fn guest_lines<'a>(migration: &TrackedCold, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    let plan = &migration.plan;
    let text = if plan.instance_was_running {
        let reached =
            |wanted: fn(&ColdPhase) -> bool| migration.phase_marks.iter().any(|m| wanted(&m.phase));
        let hard = reached(|p| *p == ColdPhase::PoweringOffHard);
        let start = if reached(|p| *p == ColdPhase::Starting) {
            "started on {} after the verification"
        } else if migration.is_finished() {
            "never started on {}"
        } else {
            "it starts on {} once verified"
        }
        .replace("{}", migration.destination());
        format!(
            "was running: ACPI shutdown, up to {}{}; {start}{}",
            format_duration_ms(plan.options.shutdown_timeout.as_millis() as u64),
            if plan.options.hard_power_off_allowed {
                ", then a hard power off"
            } else {
                ", no hard power off"
            },
            if hard {
                " · it ignored the shutdown: powered off hard"
            } else {
                ""
            }
        )
    } else {
        "was shut off: stays shut off on the destination".to_string()
    };
    let mut lines = labelled_rows("guest", &text, theme.base, width, 2, theme);
    // A resize says what it changes: old → new size, and whether the guest stays on its host.
    if let Some(words) = crate::engine::cold_record::resize_words(plan) {
        lines.extend(labelled_rows("size", &words, theme.base, width, 1, theme));
    }
    lines
}

/// The copy (or, with `verifying`, the read-back) of every copied disk, as one gauge.
fn gauge<'a>(migration: &TrackedCold, verifying: bool, theme: &Theme) -> LineGauge<'a> {
    let total = migration.bytes_to_copy();
    let verify_started = migration
        .phase_marks
        .iter()
        .any(|m| matches!(m.phase, ColdPhase::Verifying { .. }));
    let all_done = matches!(
        migration.stage,
        ColdStage::AwaitingConfirm
            | ColdStage::Settling { .. }
            | ColdStage::Finished(ColdEnd::Confirmed | ColdEnd::Reverted)
    );
    let sample = migration
        .copy
        .as_ref()
        .filter(|c| c.verifying == verifying && migration.streaming());
    // This pass is behind the one that runs now (the copy once verification began).
    let pass_over = all_done || (!verifying && verify_started);
    let done_bytes = if pass_over {
        Some(total)
    } else {
        sample.and_then(|_| migration.pass_bytes_done())
    };
    let name = if verifying { "verify" } else { "copy" };
    let text = match done_bytes {
        _ if total == 0 => "no local disk: nothing to copy".to_string(),
        Some(done) => {
            let mut words = format!(
                "{} of {} ({}%)",
                format_bytes(done),
                format_bytes(total),
                done.min(total) * 100 / total
            );
            if let Some(sample) = sample {
                if let Some(rate) = sample.rate_bytes_per_second {
                    words.push_str(&format!(" · {}", format_rate(rate)));
                }
                if let Some(eta_ms) = sample.eta_ms {
                    words.push_str(&format!(" · ETA {}", format_duration_ms(eta_ms)));
                }
            }
            words
        }
        None if migration.is_finished() => "not done".to_string(),
        None => "not started".to_string(),
    };
    let ratio = match done_bytes {
        Some(done) if total > 0 => (done as f64 / total as f64).min(1.0),
        _ => 0.0,
    };
    byte_gauge(name, text, 44, ratio, theme)
}

/// One row per disk: copied (where to, and its checksum once verified) or left in place.
fn disk_lines<'a>(migration: &TrackedCold, theme: &Theme) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    for (index, disk) in migration.plan.disks.iter().enumerate() {
        let heading = if index == 0 {
            label("disks", theme)
        } else {
            Span::raw(" ".repeat(11))
        };
        let mut spans = vec![heading, Span::raw(format!("{:<5} ", disk.target))];
        match &disk.action {
            DiskAction::Shared => spans.push(Span::styled(
                "shared storage: left in place",
                theme.footer_text,
            )),
            DiskAction::Copy(copy) => {
                spans.push(Span::raw(format!(
                    "{} → {} ",
                    format_bytes(copy.stream_bytes),
                    copy.destination_path
                )));
                let copy_removed = matches!(
                    migration.stage,
                    ColdStage::Finished(ColdEnd::Reverted | ColdEnd::Engine(_))
                );
                match migration.verified.iter().find(|v| v.target == disk.target) {
                    Some(_) if copy_removed => {
                        spans.push(Span::styled("verified, since removed", theme.footer_text))
                    }
                    Some(verified) => spans.push(Span::styled(
                        format!(
                            "✓ sha256 {}…",
                            &verified.sha256[..SHA256_SHOWN_CHARS.min(verified.sha256.len())]
                        ),
                        theme.success,
                    )),
                    None if copy_removed => spans.push(Span::styled("removed", theme.footer_text)),
                    None => spans.push(Span::styled("not verified yet", theme.footer_text)),
                }
            }
        }
        lines.push(Line::from(spans));
    }
    if lines.is_empty() {
        lines.push(Line::from(vec![
            label("disks", theme),
            Span::styled("none", theme.disabled),
        ]));
    }
    lines
}

/// The phases with when each began, packed onto as many rows as the width needs (at most
/// three; a run that rolled back has the most).
fn timeline_lines<'a>(migration: &TrackedCold, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    if migration.phase_marks.is_empty() {
        return vec![Line::from(vec![
            label("timeline", theme),
            Span::styled("not started", theme.disabled),
        ])];
    }
    let room = width.saturating_sub(LABEL_WIDTH).max(1);
    let last = migration.phase_marks.len() - 1;
    let mut rows: Vec<Vec<Span>> = vec![Vec::new()];
    let mut used = 0;
    for (index, mark) in migration.phase_marks.iter().enumerate() {
        let name = match &mark.phase {
            ColdPhase::Prechecks => "prechecks".to_string(),
            ColdPhase::ShuttingDown { .. } => "shutdown".to_string(),
            ColdPhase::PoweringOffHard => "hard off".to_string(),
            ColdPhase::Copying { target, .. } => format!("copy {target}"),
            ColdPhase::Verifying { target, .. } => format!("verify {target}"),
            ColdPhase::Defining => "define".to_string(),
            ColdPhase::Starting => "start".to_string(),
            ColdPhase::AwaitingConfirm => "awaiting".to_string(),
            ColdPhase::Confirmed => "confirmed".to_string(),
            ColdPhase::Reverted => "reverted".to_string(),
            ColdPhase::RollingBack { .. } => "rollback".to_string(),
            ColdPhase::RolledBack => "rolled back".to_string(),
            ColdPhase::Failed => "failed".to_string(),
        };
        let time = format!(" {}", format_duration_ms(mark.at_ms));
        let arrow = if index < last { " → " } else { "" };
        let entry_width = name.chars().count() + time.chars().count() + arrow.chars().count();
        if used > 0 && used + entry_width > room {
            rows.push(Vec::new());
            used = 0;
        }
        used += entry_width;
        let style = if index == last && !migration.is_finished() {
            theme.current
        } else {
            theme.base
        };
        let row = rows.last_mut().expect("one row at least");
        row.push(Span::styled(name, style));
        row.push(Span::styled(time, theme.footer_text));
        row.push(Span::styled(arrow, theme.footer_text));
    }
    rows.truncate(3);
    rows.into_iter()
        .enumerate()
        .map(|(index, mut spans)| {
            spans.insert(
                0,
                if index == 0 {
                    label("timeline", theme)
                } else {
                    Span::raw(" ".repeat(LABEL_WIDTH))
                },
            );
            Line::from(spans)
        })
        .collect()
}

/// What the operator can do now, or how it ended, with the figures.
fn next_lines<'a>(migration: &TrackedCold, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    let (source, destination) = (migration.source(), migration.destination());
    let figures = &migration.figures;
    let figures_text = {
        let mut parts = Vec::new();
        if let Some(bytes) = figures.bytes_copied {
            parts.push(format!("{} copied and verified", format_bytes(bytes)));
        }
        if let Some(ms) = figures.downtime_ms {
            parts.push(format!("guest off for {}", format_duration_ms(ms)));
        }
        if let Some(ms) = figures.total_time_ms {
            parts.push(format!("{} in all", format_duration_ms(ms)));
        }
        parts.join(", ")
    };
    let in_place = in_place_next(migration, &figures_text, theme);
    let (heading, text, style): (&str, String, Style) = match &migration.stage {
        _ if in_place.is_some() => in_place.unwrap_or_default(),
        ColdStage::Running if migration.rolling_back() => (
            "next",
            format!(
                "rolling back: the destination copy is removed, the guest put back on {source}"
            ),
            theme.warning,
        ),
        ColdStage::Running => (
            "next",
            format!(
                "once verified and started on {destination}, it awaits C confirm or R revert; \
                 a aborts and puts it back on {source}"
            ),
            theme.footer_text,
        ),
        ColdStage::AwaitingConfirm => (
            "next",
            format!(
                "runs on {destination}; {source} keeps its copy, inactive. C confirm removes it \
                 (no way back) · R revert returns to {source}. {figures_text}"
            ),
            theme.warning,
        ),
        ColdStage::Settling { keep: true } => (
            "next",
            format!("confirming: removing the copy on {source}"),
            theme.base,
        ),
        ColdStage::Settling { keep: false } => (
            "next",
            format!("reverting: removing the copy on {destination}, then back on {source}"),
            theme.base,
        ),
        ColdStage::Finished(ColdEnd::Confirmed) => (
            "outcome",
            format!("confirmed: on {destination} only. {figures_text}"),
            theme.success,
        ),
        ColdStage::Finished(ColdEnd::Reverted) => (
            "outcome",
            format!("reverted: on {source} only, as before the migration"),
            theme.success,
        ),
        ColdStage::Finished(ColdEnd::Engine(outcome)) => match outcome {
            ColdOutcome::Refused { detail } => (
                "outcome",
                format!("refused, nothing changed: {detail}"),
                theme.warning,
            ),
            ColdOutcome::RolledBack { detail, leftovers } if leftovers.is_empty() => (
                "outcome",
                format!("rolled back, on {source} as before: {detail}"),
                theme.warning,
            ),
            ColdOutcome::RolledBack { detail, leftovers } => (
                "outcome",
                format!(
                    "rolled back, on {source} as before: {detail}. Left on {destination}, \
                     remove by hand: {}",
                    leftovers.join(", ")
                ),
                theme.error,
            ),
            ColdOutcome::Failed { detail } => ("outcome", format!("failed: {detail}"), theme.error),
            ColdOutcome::AwaitingConfirm { .. } => ("outcome", String::new(), theme.base),
        },
    };
    labelled_rows(heading, text.trim_end(), style, width, NEXT_ROWS_MAX, theme)
}

/// Warnings, rollback steps and confirm/revert steps, newest last; as many as fit.
fn log_lines<'a>(
    app: &App,
    migration: &TrackedCold,
    width: usize,
    rows: usize,
    theme: &Theme,
) -> Vec<Line<'a>> {
    if rows == 0 {
        return Vec::new();
    }
    if migration.messages.is_empty() {
        return vec![Line::from(vec![
            label("log", theme),
            Span::styled("no warning, no rollback step", theme.disabled),
        ])];
    }
    let mut lines = vec![Line::from(label("log", theme))];
    let text_width = width.saturating_sub(LABEL_WIDTH);
    let mut blocks: Vec<Vec<Line>> = Vec::new();
    let mut used = 1;
    for message in migration.messages.iter().rev() {
        let style = match message.kind {
            OperatorMessageKind::Done => theme.success,
            OperatorMessageKind::Refused => theme.error,
            OperatorMessageKind::Warning => theme.warning,
        };
        let text = format!("{} ({} ago)", message.text, age(app.now, message.at));
        let wrapped = wrap_words(&text, text_width);
        if used + wrapped.len() > rows {
            break;
        }
        used += wrapped.len();
        blocks.push(
            wrapped
                .into_iter()
                .map(|row| {
                    Line::from(vec![
                        Span::raw(" ".repeat(LABEL_WIDTH)),
                        Span::styled(row, style),
                    ])
                })
                .collect(),
        );
    }
    lines.extend(blocks.into_iter().rev().flatten());
    lines
}
