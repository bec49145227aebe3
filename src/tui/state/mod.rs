//! The state of each screen and dialog, plain data with its own update, one file per view of
//! the same name in `views/` (as bottom keeps `widgets/x.rs` beside `canvas/widgets/x.rs`).
//! The app ([`super::app::App`]) holds them and routes keys and events to them; nothing here
//! imports the app.

pub mod cold_detail;
pub mod hosts;
pub mod instances;
pub mod launch;
pub mod migrations;
pub mod nova;
pub mod nova_launch;
pub mod operator_messages;
pub mod prompt;
