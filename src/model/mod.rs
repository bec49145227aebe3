//! Plain data shared by every part of ferry: no I/O here.

pub mod domain;
pub mod host_name;
pub mod job;
pub mod migration;
pub mod standing;
pub mod storage;
pub mod trace;
pub mod units;

pub use host_name::HostName;
pub use job::{JobOperation, JobSample, JobType};
