//! Migrations through OpenStack Nova: Nova stays the source of truth and carries out every
//! move; ferry checks before it asks, watches what Nova does (and, where it may read the
//! compute hosts' libvirt, what QEMU does), and records it in its own history.
//!
//! `preflight` is pure and unit-tested on facts recorded from the lab's cloud; `live` and
//! `cold` drive one migration each through the Nova door (`crate::nova`).

pub mod cold;
pub mod live;
pub mod preflight;

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{CloudEntry, Config};
use crate::nova::types::Server;
use crate::nova::{load_cloud, CloudSelection, NovaClient};

/// One cloud of the config, connected.
#[derive(Clone)]
pub struct CloudSession {
    pub entry: CloudEntry,
    pub client: NovaClient,
    /// Read-only libvirt URIs of the cloud's compute hosts (`Config::compute_libvirt_uri`).
    pub config: Config,
}

impl CloudSession {
    /// The cloud named `wanted`, or the config's only cloud.
    pub async fn connect(config: &Config, wanted: Option<&str>) -> Result<CloudSession> {
        let entry = choose_cloud(config, wanted)?;
        let profile = load_cloud(&CloudSelection::for_entry(&entry))?;
        let client = NovaClient::connect(profile).await?;
        Ok(CloudSession {
            entry,
            client,
            config: config.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// The libvirt URI ferry may read `compute_host` through, if the config gives one.
    pub fn libvirt_uri(&self, compute_host: &str) -> Option<String> {
        self.config.compute_libvirt_uri(&self.entry, compute_host)
    }

    pub fn call_timeout(&self) -> Duration {
        self.config.call_timeout()
    }

    /// The server named or identified by `name_or_id`, across all projects.
    pub async fn find_server(&self, name_or_id: &str) -> Result<Server> {
        if looks_like_uuid(name_or_id) {
            match self.client.server(name_or_id).await {
                Ok(server) => return Ok(server),
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(error.into()),
            }
        }
        let servers = self.client.servers_all_projects().await?;
        pick_server(servers, name_or_id, self.name())
    }
}

/// The cloud a command means: the one named (it must be in the config), or the only one.
pub fn choose_cloud(config: &Config, wanted: Option<&str>) -> Result<CloudEntry> {
    let names = || {
        config
            .clouds
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(name) => config
            .clouds
            .iter()
            .find(|cloud| cloud.name == name)
            .cloned()
            .ok_or_else(|| {
                if config.clouds.is_empty() {
                    anyhow!(
                        "cloud {name:?} is not in the config: add a [[clouds]] entry with \
                         name = {name:?} (its name in clouds.yaml)"
                    )
                } else {
                    anyhow!(
                        "cloud {name:?} is not in the config; its clouds are: {}",
                        names()
                    )
                }
            }),
        None => match config.clouds.as_slice() {
            [only] => Ok(only.clone()),
            [] => {
                bail!("the config has no [[clouds]] entry: add one naming a cloud of clouds.yaml")
            }
            _ => bail!(
                "the config has several clouds ({}); give --cloud NAME",
                names()
            ),
        },
    }
}

fn looks_like_uuid(text: &str) -> bool {
    text.len() == 36 && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The one server called `name_or_id` (by id, then by name); several of one name are refused
/// with their ids, so the operator can say which.
pub fn pick_server(servers: Vec<Server>, name_or_id: &str, cloud: &str) -> Result<Server> {
    if let Some(server) = servers.iter().find(|s| s.id == name_or_id) {
        return Ok(server.clone());
    }
    let mut named: Vec<Server> = servers
        .into_iter()
        .filter(|s| s.name == name_or_id)
        .collect();
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => bail!("cloud {cloud}: no server is named or identified {name_or_id:?}"),
        _ => bail!(
            "cloud {cloud}: {} servers are named {name_or_id:?} ({}); give the server's id",
            named.len(),
            named
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What ferry keeps in its history's plan for a migration Nova carries out: enough for a
/// restarted ferry to find it in Nova again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NovaMigrationPlan {
    /// Always "nova": tells these records from libvirt plans in the history.
    pub backend: String,
    pub cloud: String,
    pub server_id: String,
    pub server_name: String,
    /// Nova's own id for the migration, once Nova has made it.
    pub nova_migration_id: Option<u64>,
    /// "live-migration", "migration" (cold) or "resize".
    pub migration_type: String,
    /// The destination asked for; None when the scheduler chooses.
    pub requested_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
}

pub const NOVA_BACKEND: &str = "nova";

impl NovaMigrationPlan {
    /// Whether a history record's plan is a Nova migration's (libvirt recovery leaves it).
    pub fn is_nova_record(plan: &serde_json::Value) -> bool {
        plan.get("backend").and_then(|b| b.as_str()) == Some(NOVA_BACKEND)
    }

    /// The plan of a history record, when the record is a Nova one.
    pub fn from_history(plan: &serde_json::Value) -> Option<NovaMigrationPlan> {
        if plan.get("backend").and_then(|b| b.as_str()) != Some(NOVA_BACKEND) {
            return None;
        }
        serde_json::from_value(plan.clone()).ok()
    }
}

/// The history with a Nova migration's record opened, or a clear error.
pub(crate) fn open_history() -> Result<crate::engine::history::History> {
    let path = crate::engine::history::default_path();
    crate::engine::history::History::open(&path)
        .with_context(|| format!("opening ferry's history at {}", path.display()))
}
