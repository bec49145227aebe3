//! What the operator asked of one live migration, after prechecks, and the libvirt request it
//! becomes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::HostTarget;
use crate::libvirt::migrate::{LiveMigrationRequest, MigrationStream};
use crate::policy::{MigrationPolicy, PolicyChoice};

/// What the operator asked for, after prechecks. Kept in the history as JSON, so that a
/// restarted ferry can resume monitoring the migration under the same policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveMigrationPlan {
    pub instance_name: String,
    pub source: HostTarget,
    pub destination: HostTarget,
    pub policy: PolicyChoice,
    /// Memory of the guest, for Nova's data_gb scaling of steps and timeouts.
    pub instance_memory_bytes: u64,
    pub bandwidth_mib_per_second: Option<u64>,
    /// Start with `VIR_MIGRATE_POSTCOPY` so that force-complete or the policy may switch to
    /// post-copy. Off by default: a network failure in post-copy loses the guest.
    pub post_copy_permitted: bool,
    /// Copy these local disks (target names such as `vdb`) with `NON_SHARED_INC`.
    pub block_migration_disks: Vec<String>,
    pub block_migration_disk_sizes_bytes: Vec<u64>,
    /// The guest was paused before the migration: it stays paused wherever it ends. Otherwise
    /// ferry resumes it at the end, in case a force-complete paused it.
    #[serde(default)]
    pub guest_was_paused: bool,
    #[serde(rename = "poll_interval_ms", with = "duration_ms")]
    pub poll_interval: Duration,
    /// Bound on each monitoring call; a host that stops answering fails that poll, not the UI.
    #[serde(rename = "call_timeout_ms", with = "duration_ms")]
    pub call_timeout: Duration,
}

/// Durations in the stored plan are whole milliseconds, readable in `ferry history --json`.
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

impl LiveMigrationPlan {
    /// The libvirt request this plan launches under `policy`, its stream sent to `stream`.
    pub fn request(
        &self,
        policy: &dyn MigrationPolicy,
        stream: Option<MigrationStream>,
    ) -> LiveMigrationRequest {
        LiveMigrationRequest {
            domain_name: self.instance_name.clone(),
            destination_uri: self.destination.uri.clone(),
            bandwidth_mib_per_second: self.bandwidth_mib_per_second,
            auto_converge: policy.migration_features().auto_converge,
            post_copy_permitted: self.post_copy_permitted,
            copied_disks: self.block_migration_disks.clone(),
            stream,
        }
    }
}
