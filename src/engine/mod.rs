//! Orchestration of migrations: what runs when, and the record of what ran.
//!
//! `queue` decides which requested migrations may start (pure, no I/O); `history` is the one
//! door to the on-disk SQLite history under the XDG state directory.

pub mod cold;
/// The cold migration's history record; its old path, kept for the front ends.
pub use cold::record as cold_record;
pub mod control;
pub mod history;
pub mod live;
pub mod nova;
pub mod options;
pub mod plan;
pub mod queue;
pub mod report;
pub mod service;
pub mod settle;
pub mod supervisor;
pub mod target;
pub mod unwatched;
