//! Views: each panel is a function of the app state and the theme, drawn once per frame.

pub mod cold_detail;
pub mod details;
pub mod help;
pub mod hosts;
pub mod instances;
pub mod launch;
pub mod migration_detail;
pub mod migrations;
pub mod nova;
pub mod nova_launch;
pub mod prompt;
pub mod status;

#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod nova_tests;
#[cfg(test)]
mod tests;

use std::time::SystemTime;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::app::{App, Overlay, Screen};
use super::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    frame.render_widget(ratatui::widgets::Block::new().style(theme.base), area);
    let [main_area, status_area, footer_area] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    match app.screen {
        Screen::Inventory => {
            // Hosts get up to a third of the screen (at least 3 rows of hosts), instances the
            // rest.
            let host_rows =
                (app.inventory.all_hosts().count() as u16 + 1 + 3).min((area.height / 3).max(6));
            let [hosts_area, instances_area] =
                Layout::vertical([Constraint::Length(host_rows), Constraint::Min(4)])
                    .areas(main_area);
            hosts::draw(frame, hosts_area, app, theme);
            instances::draw(frame, instances_area, app, theme);
        }
        Screen::Migrations if app.migration_detail => match app.selected_listed() {
            Some(crate::tui::state::migrations::Listed::Cold(cold)) => {
                cold_detail::draw(frame, main_area, app, cold, theme)
            }
            Some(crate::tui::state::migrations::Listed::Nova(migration)) => {
                nova::draw_detail(frame, main_area, app, migration, theme)
            }
            _ => migration_detail::draw(frame, main_area, app, theme),
        },
        Screen::Migrations => migrations::draw(frame, main_area, app, theme),
    }
    status::draw_status(frame, status_area, app, theme);
    status::draw_footer(frame, footer_area, app, theme);
    if let Some(dialog) = &app.launch {
        launch::draw(frame, area, app, dialog, theme);
    }
    if let Some(dialog) = &app.nova_launch {
        nova_launch::draw(frame, area, app, dialog, theme);
    }
    if let Some(prompt) = &app.prompt {
        prompt::draw(frame, area, app, prompt, theme);
    }
    // The dialog and the prompt show the answer to a key themselves, where the eyes are.
    if let (Some(flash), None, None, None) =
        (&app.flash, &app.launch, &app.nova_launch, &app.prompt)
    {
        draw_flash(frame, main_area, flash, theme);
    }
    match app.overlay {
        Some(Overlay::Help) => help::draw(frame, area, app, theme),
        Some(Overlay::Details) => details::draw(frame, area, app, theme),
        None => {}
    }
}

/// The answer to the last key (a refusal and its reason, what was sent), in full: a box at
/// the bottom of the screen, above the status bar, gone at the next key.
fn draw_flash(frame: &mut Frame, area: Rect, flash: &str, theme: &Theme) {
    let text_width = area.width.saturating_sub(4) as usize;
    let rows = wrap_words(flash, text_width);
    let height = (rows.len() as u16 + 2).min(area.height);
    let box_area = Rect {
        x: area.x,
        y: area.y + area.height - height,
        width: area.width,
        height,
    };
    let lines: Vec<Line> = rows
        .into_iter()
        .map(|row| Line::from(Span::styled(format!(" {row}"), theme.warning)))
        .collect();
    frame.render_widget(ratatui::widgets::Clear, box_area);
    frame.render_widget(
        Paragraph::new(lines).style(theme.base).block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(theme.warning),
        ),
        box_area,
    );
}

/// A cell's own style on a row the cursor may highlight: on that row the highlight's colours
/// win over the cell's (a warning's yellow or a pass's green on the highlight's background was
/// hard to read), and the cell keeps only its modifiers (bold). An error stays loud: it keeps
/// its colour on the theme's own background, cut out of the highlight, so a broken post-copy
/// or an unreachable host under the cursor still reads as one.
pub fn on_row(own: Style, highlight: Option<Style>, theme: &Theme) -> Style {
    match highlight {
        Some(_) if own == theme.error => {
            own.bg(theme.base.bg.unwrap_or(ratatui::style::Color::Reset))
        }
        Some(highlight) => own.patch(highlight),
        None => own,
    }
}

/// The frame of a migration's detail, titled.
pub fn detail_frame<'a>(title: String, theme: &Theme) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border_focused)
        .title(Span::styled(title, theme.title))
}

/// The label column of a detail view: " phase     ", " timeline  ".
pub fn field_label<'a>(text: &str, theme: &Theme) -> Span<'a> {
    Span::styled(format!(" {text:<10}"), theme.header)
}

/// A one-line gauge of bytes done, `name` and `text` on its left (`text` padded to
/// `text_width`): thick for what is done, thin for the rest, readable without colour too.
pub fn byte_gauge<'a>(
    name: &str,
    text: String,
    text_width: usize,
    ratio: f64,
    theme: &Theme,
) -> ratatui::widgets::LineGauge<'a> {
    ratatui::widgets::LineGauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(Line::from(vec![
            Span::styled(format!(" {name:<10}"), theme.header),
            Span::raw(format!("{text:<text_width$}")),
        ]))
        .filled_symbol("━")
        .unfilled_symbol("─")
        .filled_style(theme.gauge)
        .unfilled_style(theme.border)
}

/// A centred rectangle of at most `width` x `height` inside `area`.
pub fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// Binary units, the way free(1) -h prints them: 512M, 7.8G.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 && unit > 0 && value.fract() > 0.05 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// "12s", "5m", "3h", "2d" since `then`.
pub fn age(now: SystemTime, then: SystemTime) -> String {
    let seconds = now.duration_since(then).map_or(0, |d| d.as_secs());
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m", seconds / 60),
        3600..=86_399 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// First row to show so that `cursor` is visible in `rows` rows (keeps the cursor near the
/// bottom while scrolling down, like k9s).
pub fn scroll_offset(cursor: usize, rows: usize) -> usize {
    if rows == 0 {
        0
    } else {
        cursor.saturating_sub(rows - 1)
    }
}

/// Greedy word wrap to `width` columns (one column per char: ferry's texts are ASCII plus
/// arrows and symbols that are one column wide). A word longer than a line is cut, so the
/// number of lines is exact and a view can keep the newest lines on screen.
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_width = 0;
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let gap = usize::from(line_width > 0);
            if line_width + gap + word.len() <= width {
                if gap == 1 {
                    line.push(' ');
                }
                line.extend(word.iter());
                line_width += gap + word.len();
                break;
            }
            if line_width > 0 {
                lines.push(std::mem::take(&mut line));
                line_width = 0;
                continue;
            }
            let rest = word.split_off(width);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if line_width > 0 || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod helper_tests {
    use super::wrap_words;

    #[test]
    fn wrap_words_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap_words("abc def ghi", 7), ["abc def", "ghi"]);
        assert_eq!(wrap_words("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap_words("", 4), [""]);
        assert_eq!(wrap_words("a → b", 5), ["a → b"]);
    }
}
