//! Plain data shared by every part of ferry: no I/O here.

pub mod host_name;

pub use host_name::HostName;
