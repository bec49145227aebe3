//! The `?` overlay: every key ferry understands, read from the key table (`tui::keys`, with
//! the config's remapping), the section of the screen in use first. Taller than the screen,
//! it scrolls (j/k).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::app::{App, Screen};
use crate::tui::keys::{KeyPress, KeyScreen, EVERYWHERE};
use crate::tui::theme::Theme;

use super::centred;

/// The screens in the order the help shows them: the one in use first.
pub fn sections(app: &App) -> [KeyScreen; 7] {
    use KeyScreen::*;
    if app.launch.is_some() {
        [Launch, Inventory, Migrations, Prompt, Filter, Help, Details]
    } else if app.screen == Screen::Migrations {
        [Migrations, Prompt, Inventory, Launch, Filter, Help, Details]
    } else {
        [Inventory, Filter, Launch, Migrations, Prompt, Help, Details]
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut lines: Vec<Line> = Vec::new();
    let key_line = |key: String, what: &'static str| {
        Line::from(vec![
            Span::styled(format!(" {key:<15}"), theme.footer_key),
            Span::styled(what, theme.base),
        ])
    };
    let title = |text: &str| Line::from(Span::styled(format!(" {text}"), theme.header));
    for screen in sections(app) {
        let keys = app.keys.screen(screen);
        lines.push(title(screen.title()));
        for binding in &keys.bindings {
            let names: Vec<String> = binding.keys.iter().map(KeyPress::to_string).collect();
            let names = if names.is_empty() {
                "(unbound)".to_string()
            } else {
                names.join(" ")
            };
            lines.push(key_line(names, binding.help));
        }
        for (key, what) in keys.typed {
            lines.push(key_line(key.to_string(), what));
        }
        lines.push(Line::raw(""));
    }
    lines.push(title("Everywhere"));
    for (key, what) in EVERYWHERE {
        lines.push(key_line(key.to_string(), what));
    }
    let area = centred(area, 78, lines.len() as u16 + 2);
    let rows_on_screen = area.height.saturating_sub(2);
    let last_scroll = (lines.len() as u16).saturating_sub(rows_on_screen);
    let scroll = app.help_scroll.min(last_scroll);
    let title = if last_scroll > 0 {
        format!(
            " Help: keys (j/k scroll {}/{}, esc closes) ",
            scroll + 1,
            last_scroll + 1
        )
    } else {
        " Help: keys (esc closes) ".to_string()
    };
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .style(theme.base)
            .scroll((scroll, 0))
            .block(
                Block::new()
                    .borders(Borders::ALL)
                    .border_style(theme.border_focused)
                    .title(Span::styled(title, theme.title)),
            ),
        area,
    );
}
