//! The launch dialog of a Nova server: `auto` (Nova's scheduler), then the cloud's other
//! compute hosts with ferry's pre-flight verdict (refused ones greyed with why), the move
//! (live, cold, resize) and the flavor of a resize, and the line that says what Enter asks
//! of Nova.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::keys::{KeyAction, KeyScreen};
use crate::tui::state::nova_launch::{NovaFocus, NovaLaunchDialog, NovaMoveChoice};
use crate::tui::theme::Theme;

use super::{centred, on_row, wrap_words};

const DIALOG_WIDTH: u16 = 80;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, dialog: &NovaLaunchDialog, theme: &Theme) {
    let text_width = DIALOG_WIDTH.min(area.width).saturating_sub(4) as usize;
    let (summary, summary_style) = match dialog.refusal() {
        None => (format!("→ {}", dialog.summary()), theme.base),
        Some(reason) => (format!("cannot launch: {reason}"), theme.warning),
    };
    let mut summary_rows = wrap_words(&summary, text_width);
    summary_rows.truncate(4);

    let destinations = destination_lines(dialog, text_width, theme);
    let options = option_lines(dialog, theme);
    let height = destinations.len() + 1 + options.len() + 1 + summary_rows.len() + 1 + 2;
    let area = centred(area, DIALOG_WIDTH, height as u16);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border_focused)
        .title(Span::styled(
            format!(
                " Move {} from {} · cloud {} · flavor {} ",
                dialog.server.server_name,
                dialog.source,
                dialog.server.cloud,
                dialog.flavor_now.as_deref().unwrap_or("?")
            ),
            theme.title,
        ));
    frame.render_widget(Clear, area);
    let inner = block.inner(area);
    frame.render_widget(block.style(theme.base), area);
    let [destinations_area, _, options_area, _, summary_area, keys_area] = Layout::vertical([
        Constraint::Length(destinations.len() as u16),
        Constraint::Length(1),
        Constraint::Length(options.len() as u16),
        Constraint::Length(1),
        Constraint::Length(summary_rows.len() as u16),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(destinations), destinations_area);
    frame.render_widget(Paragraph::new(options), options_area);
    super::launch::draw_summary_and_keys(
        frame,
        [summary_area, keys_area],
        (summary_rows, summary_style),
        app,
        keys_line(app),
        theme,
    );
}

/// `auto` and each other compute host, the highlighted one marked, refused ones greyed with
/// why (or, before the verdicts, what ferry is waiting for).
fn destination_lines<'a>(dialog: &NovaLaunchDialog, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    let focused = dialog.focus == NovaFocus::Destinations;
    let row = |index: usize, name: String, verdict: String, refused: bool| {
        let highlighted = index == dialog.cursor;
        let marker = if highlighted { "›" } else { " " };
        let own = if refused { theme.disabled } else { theme.base };
        let style = on_row(
            own,
            (highlighted && focused).then_some(theme.selected),
            theme,
        );
        let text = format!("{marker} {name:<14} {verdict}");
        let text: String = text.chars().take(width).collect();
        Line::from(Span::styled(text, style))
    };
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "  {:<14} {}",
            "DESTINATION", "FERRY'S PRE-FLIGHT (Nova checks again after it accepts)"
        ),
        theme.header,
    ))];
    let verdicts = match &dialog.verdicts {
        None => {
            lines.push(row(0, "auto".into(), "reading the cloud…".into(), false));
            return lines;
        }
        Some(Err(error)) => {
            lines.push(row(
                0,
                "auto".into(),
                format!("cannot check: {error}"),
                true,
            ));
            return lines;
        }
        Some(Ok(verdicts)) => verdicts,
    };
    if let Some(refusal) = &verdicts.server_refusal {
        lines.push(Line::from(Span::styled(
            format!("  {refusal}"),
            theme.warning,
        )));
    }
    let (auto_text, auto_refused) = match &verdicts.scheduler {
        Ok(()) => ("Nova's scheduler chooses".to_string(), false),
        Err(reason) => (reason.clone(), true),
    };
    lines.push(row(0, "auto".into(), auto_text, auto_refused));
    for (index, (host, refusal)) in verdicts.hosts.iter().enumerate() {
        let (verdict, refused) = match refusal {
            None => (
                "passes: enabled, up, room for the server".to_string(),
                false,
            ),
            Some(reason) => (reason.clone(), true),
        };
        lines.push(row(index + 1, host.clone(), verdict, refused));
    }
    lines
}

fn keys_line(app: &App) -> String {
    let key = |actions: &[KeyAction], joiner: &str| {
        app.keys
            .label_joined(KeyScreen::Launch, actions, joiner)
            .unwrap_or_else(|| "(unbound)".to_string())
    };
    format!(
        " {} launch · {} move/options · {} change · {} cancel",
        key(&[KeyAction::Launch], ""),
        key(&[KeyAction::SwitchFocus], ""),
        key(&[KeyAction::PreviousValue, KeyAction::NextValue], " "),
        key(&[KeyAction::Close], "")
    )
}

fn option_lines<'a>(dialog: &NovaLaunchDialog, theme: &Theme) -> Vec<Line<'a>> {
    let selected = |row: usize| dialog.focus == NovaFocus::Options { row };
    let style = |row: usize| on_row(theme.base, selected(row).then_some(theme.selected), theme);
    let mut lines = vec![Line::from(vec![
        Span::styled(" move      ", theme.header),
        Span::styled(format!("‹ {} ›", dialog.choice.name()), style(0)),
    ])];
    if dialog.choice == NovaMoveChoice::Resize {
        let flavor = dialog
            .chosen_flavor()
            .and_then(|name| {
                dialog
                    .flavors
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(n, mib, vcpus)| format!("{n} ({mib} MiB, {vcpus} vCPU)"))
            })
            .unwrap_or_else(|| "reading the cloud's flavors…".to_string());
        lines.push(Line::from(vec![
            Span::styled(" flavor    ", theme.header),
            Span::styled(format!("‹ {flavor} ›"), style(1)),
        ]));
    }
    lines
}
