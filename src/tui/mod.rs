//! The TUI: app state, update, views, dialogs, theme loading (ratatui + crossterm).
//!
//! Data flows one way: inventory workers and the terminal send events into `runtime`, which
//! folds them into [`app::App`]; `views::draw` renders a frame from the app alone.

pub mod app;
pub mod bench;
pub mod filter;
pub mod runtime;
pub mod theme;
pub mod views;
