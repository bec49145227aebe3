//! The TUI: app state, update, views, dialogs, theme loading (ratatui + crossterm).
