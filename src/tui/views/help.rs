//! The `?` overlay: every key ferry understands (`tui::keymap`), the section of the screen in
//! use first. Taller than the screen, it scrolls (j/k).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::keymap::sections;
use crate::tui::theme::Theme;

use super::centred;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut lines: Vec<Line> = Vec::new();
    for (index, section) in sections(app).iter().enumerate() {
        if index > 0 {
            lines.push(Line::raw(""));
        }
        lines.push(Line::from(Span::styled(
            format!(" {}", section.title),
            theme.header,
        )));
        for (key, what) in section.keys {
            lines.push(Line::from(vec![
                Span::styled(format!(" {key:<15}"), theme.footer_key),
                Span::styled(*what, theme.base),
            ]));
        }
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
