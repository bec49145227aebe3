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

/// Runs `work` on ferry's history off the async scheduler: SQLite blocks, and the watches run
/// as tasks on the runtime's workers (as the supervisor's history writes do).
pub(crate) fn with_history<T>(
    work: impl FnOnce(&mut crate::engine::history::History) -> Result<T>,
) -> Result<T> {
    tokio::task::block_in_place(|| work(&mut open_history()?))
}

/// The history with a Nova migration's record opened, or a clear error.
pub(crate) fn open_history() -> Result<crate::engine::history::History> {
    let path = crate::engine::history::default_path();
    crate::engine::history::History::open(&path)
        .with_context(|| format!("opening ferry's history at {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nova::types::ServerFlavor;

    fn server(id: &str, name: &str) -> Server {
        Server {
            id: id.into(),
            name: name.into(),
            status: "ACTIVE".into(),
            task_state: None,
            vm_state: None,
            power_state: None,
            host: Some("hv1".into()),
            hypervisor_hostname: None,
            instance_name: None,
            flavor: ServerFlavor::default(),
            tenant_id: None,
            fault: None,
            updated: None,
        }
    }

    fn config_with(clouds: &[&str]) -> Config {
        Config {
            clouds: clouds
                .iter()
                .map(|name| CloudEntry {
                    name: name.to_string(),
                    clouds_yaml: None,
                    compute_libvirt_uris: Default::default(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_server_is_found_by_id_or_by_a_name_only_it_has() {
        let servers = vec![server("a1", "web"), server("b2", "db"), server("c3", "db")];
        assert_eq!(
            pick_server(servers.clone(), "a1", "lab").unwrap().name,
            "web"
        );
        assert_eq!(pick_server(servers.clone(), "web", "lab").unwrap().id, "a1");
        let twice = pick_server(servers.clone(), "db", "lab")
            .unwrap_err()
            .to_string();
        assert!(
            twice.contains("2 servers are named \"db\" (b2, c3)"),
            "{twice}"
        );
        let none = pick_server(servers, "mail", "lab").unwrap_err().to_string();
        assert!(none.contains("cloud lab: no server is named"), "{none}");
    }

    #[test]
    fn the_cloud_is_the_one_named_or_the_only_one() {
        assert_eq!(
            choose_cloud(&config_with(&["lab"]), None).unwrap().name,
            "lab"
        );
        assert_eq!(
            choose_cloud(&config_with(&["a", "b"]), Some("b"))
                .unwrap()
                .name,
            "b"
        );
        let several = choose_cloud(&config_with(&["a", "b"]), None)
            .unwrap_err()
            .to_string();
        assert!(
            several.contains("several clouds (a, b); give --cloud NAME"),
            "{several}"
        );
        let unknown = choose_cloud(&config_with(&["a"]), Some("x"))
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("its clouds are: a"), "{unknown}");
        let none = choose_cloud(&config_with(&[]), None)
            .unwrap_err()
            .to_string();
        assert!(none.contains("no [[clouds]] entry"), "{none}");
        assert!(looks_like_uuid("255036e1-07ec-40cc-ba7c-5d1b6ea78cbc"));
        assert!(!looks_like_uuid("nova-idle"));
    }

    #[test]
    fn nova_records_are_told_from_libvirt_plans() {
        let plan = NovaMigrationPlan {
            backend: NOVA_BACKEND.into(),
            cloud: "lab".into(),
            server_id: "a1".into(),
            server_name: "web".into(),
            nova_migration_id: Some(7),
            migration_type: "live-migration".into(),
            requested_host: None,
            flavor: None,
        };
        let stored = serde_json::to_value(&plan).unwrap();
        assert!(NovaMigrationPlan::is_nova_record(&stored));
        assert_eq!(NovaMigrationPlan::from_history(&stored), Some(plan));
        let libvirt = serde_json::json!({"instance_name": "busy", "source": {}});
        assert!(!NovaMigrationPlan::is_nova_record(&libvirt));
        assert_eq!(NovaMigrationPlan::from_history(&libvirt), None);
    }
}
