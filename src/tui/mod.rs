//! The TUI: app state, update, views, dialogs, theme loading (ratatui + crossterm).
//!
//! Data flows one way: inventory workers and the terminal send events into `runtime`, which
//! folds them into [`app::App`]; `views::draw` renders a frame from the app alone. Keys that
//! ask for something (a launch, an abort) become [`action::Action`]s the runtime takes out of
//! the app; the engine's answers come back in as [`state::migrations::MigrationEvent`]s. Each screen's
//! state lives in `state/x.rs`, drawn by `views/x.rs`.

pub mod action;
pub mod app;
pub mod bench;
pub mod filter;
pub mod keys;
pub mod number_field;
pub mod runtime;
pub mod state;
pub mod theme;
pub mod views;

#[cfg(test)]
mod migration_key_tests;
#[cfg(test)]
mod resize_key_tests;
#[cfg(test)]
mod test_support;
