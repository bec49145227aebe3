//! The operator's prompt over a migration: confirm abort or force-complete (y/n), or type a
//! bandwidth or max downtime; on a cold one, confirm abort, confirm or revert (y/n).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::keys::KeyScreen;
use crate::tui::state::prompt::OperatorPrompt;
use crate::tui::theme::Theme;

use super::{centred, wrap_words};

const WIDTH: u16 = 72;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, prompt: &OperatorPrompt, theme: &Theme) {
    let Some(migration) = app.migrations.get_listed(prompt.id()) else {
        return;
    };
    let text_width = WIDTH.min(area.width).saturating_sub(4) as usize;
    let paragraphs = prompt.text_for(migration);
    let last = paragraphs.len().saturating_sub(1);
    // What cannot be undone stands out (post-copy's risk, a confirm or revert that deletes
    // a copy), and so does the number being typed.
    let post_copy_warning = prompt.ends_with_warning();
    let mut lines: Vec<Line> = Vec::new();
    for (index, paragraph) in paragraphs.iter().enumerate() {
        let style = match prompt {
            _ if post_copy_warning && index == last => theme.warning,
            OperatorPrompt::Bandwidth { .. } | OperatorPrompt::MaxDowntime { .. }
                if index == last =>
            {
                theme.filter
            }
            _ => theme.base,
        };
        for row in wrap_words(paragraph, text_width) {
            lines.push(Line::from(Span::styled(format!(" {row}"), style)));
        }
    }
    lines.push(Line::raw(""));
    match &app.flash {
        Some(flash) => lines.push(Line::from(Span::styled(format!(" {flash}"), theme.warning))),
        None => {
            let mut keys = Vec::new();
            for (actions, what) in prompt.keys() {
                // Typed keys have no action: the digits of a number.
                let key = match actions {
                    [] => Some("0-9".to_string()),
                    _ => app.keys.footer_label(KeyScreen::Prompt, actions),
                };
                let Some(key) = key else {
                    continue;
                };
                keys.push(Span::styled(format!(" <{key}>"), theme.footer_key));
                keys.push(Span::styled(format!(" {what}"), theme.footer_text));
            }
            lines.push(Line::from(keys));
        }
    }
    let area = centred(area, WIDTH, lines.len() as u16 + 2);
    let border = if prompt.is_confirmation() {
        theme.warning
    } else {
        theme.border_focused
    };
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).style(theme.base).block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(border)
                .title(Span::styled(prompt.title_for(migration), theme.title)),
        ),
        area,
    );
}
