//! ferry: a terminal console for live and cold migration of VMs between libvirt hypervisors.
//! The binary (`main.rs`) is a thin CLI over these modules; integration tests use them too.

pub mod config;
pub mod engine;
pub mod inventory;
pub mod lab;
pub mod libvirt;
pub mod logging;
pub mod model;
pub mod nova;
pub mod policy;
pub mod precheck;
pub mod progress;
pub mod runtime;
pub mod tui;
