//! Issue 13 on the lab: `ferry hosts` and `ferry instances` list the lab cloud's hypervisors
//! and servers beside the libvirt hosts, and a cloud that cannot be read (wrong password, a
//! user without admin, an endpoint nobody listens on) is an error on stderr and a non-zero
//! exit while the libvirt rows are still listed. What ferry prints is compared with Nova's
//! API read here with plain `curl`, outside ferry's code. Read-only: nothing in the cloud
//! changes, and the lab's nova-api is never stopped (an auth_url on a closed loopback port
//! stands in for a dead one).
//!
//! Run as root, one at a time, under the lab lock, with the Nova lab up (`ferry lab up --nova`):
//!   flock /tmp/ferry-lab.lock cargo test --test lab_nova_inventory -- --test-threads=1
//! With FERRY_REQUIRE_LAB set, a missing lab or cloud fails these tests; without it they skip
//! loudly.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::nova::PlainCloud;
use ferry::config::Config;
use serde_json::Value;

const LAB_CONFIG: &str = "/var/lib/ferry-lab/ferry.toml";
const LAB_CLOUDS_YAML: &str = "/var/lib/ferry-lab/clouds.yaml";
const CLOUD: &str = "ferry-lab";

/// The lab with its cloud (both brought up first if they are down), or None (after saying
/// why) when lab tests are skipped here. With FERRY_REQUIRE_LAB set it fails instead.
fn lab_with_cloud_or_skip(test: &str) -> Option<Config> {
    common::nova::nova_lab_or_skip(test)?;
    let config = Config::load(Path::new(LAB_CONFIG)).expect("the lab's ferry config parses");
    assert!(
        config.clouds.iter().any(|cloud| cloud.name == CLOUD),
        "{test}: {LAB_CONFIG} lists no [[clouds]] {CLOUD} although the cloud is up"
    );
    assert!(!config.hosts.is_empty(), "{test}: the lab has hosts");
    Some(config)
}

/// Runs ferry with `args`: (success, stdout, stderr).
fn ferry(args: &[&str]) -> (bool, String, String) {
    common::ferry(args)
}

fn json_rows(stdout: &str, what: &str) -> Vec<Value> {
    serde_json::from_str(stdout).unwrap_or_else(|error| panic!("{what}: {error}:\n{stdout}"))
}

fn is_nova_row(row: &Value) -> bool {
    row["backend"]["nova"]["cloud"] == CLOUD
}

/// Nova's API as curl sees it: a token from Keystone, then the compute endpoint.
/// The named fields of each item, as text (null and absent are "").
fn fields(items: &[&Value], pointers: &[&str]) -> BTreeSet<Vec<String>> {
    items
        .iter()
        .map(|item| {
            pointers
                .iter()
                .map(|pointer| match item.pointer(pointer) {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn instances_json_lists_the_servers_novas_api_lists() {
    let Some(config) = lab_with_cloud_or_skip("instances_json_lists_the_servers_novas_api_lists")
    else {
        return;
    };
    let nova = PlainCloud::log_in(CLOUD);
    let (ok, stdout, stderr) = ferry(&["--config", LAB_CONFIG, "instances", "--json"]);
    assert!(ok, "ferry instances --json failed: {stderr}\n{stdout}");
    let listed = json_rows(&stdout, "ferry instances --json");
    // 2.47, as the door asks: the flavor embedded, the same fields otherwise.
    let api = nova.compute_at("/servers/detail?all_tenants=1", "2.47");
    let api_servers: Vec<&Value> = api["servers"].as_array().unwrap().iter().collect();
    assert!(
        !api_servers.is_empty(),
        "the lab's cloud runs nova-idle: Nova lists no server at all"
    );
    let ferry_servers: Vec<&Value> = listed.iter().filter(|row| is_nova_row(row)).collect();
    assert_eq!(
        fields(
            &ferry_servers,
            &["/server_id", "/name", "/host", "/status", "/instance_name"]
        ),
        fields(
            &api_servers,
            &[
                "/id",
                "/name",
                "/OS-EXT-SRV-ATTR:host",
                "/status",
                "/OS-EXT-SRV-ATTR:instance_name"
            ]
        ),
        "Nova rows of ferry instances --json versus GET /servers/detail?all_tenants=1"
    );
    assert_eq!(
        fields(
            &ferry_servers,
            &["/server_id", "/project_id", "/flavor/name"]
        ),
        fields(
            &api_servers,
            &["/id", "/tenant_id", "/flavor/original_name"]
        ),
    );
    // Each Nova server's libvirt domain is also listed, as libvirt's row of the same host.
    for server in &ferry_servers {
        let host = server["host"].as_str().unwrap();
        if config.hosts.iter().any(|h| h.name.as_str() == host) {
            assert!(
                listed.iter().any(|row| row["backend"] == "libvirt"
                    && row["host"] == host
                    && row["name"] == server["instance_name"]),
                "libvirt row of {server} on {host}:\n{stdout}"
            );
        }
    }
}

#[test]
fn hosts_json_lists_the_hypervisors_novas_api_lists() {
    let Some(config) = lab_with_cloud_or_skip("hosts_json_lists_the_hypervisors_novas_api_lists")
    else {
        return;
    };
    let nova = PlainCloud::log_in(CLOUD);
    let (ok, stdout, stderr) = ferry(&["--config", LAB_CONFIG, "hosts", "--json"]);
    assert!(ok, "ferry hosts --json failed: {stderr}\n{stdout}");
    let rows = json_rows(&stdout, "ferry hosts --json");
    // 2.88, as the door asks: the hypervisors' ids are their compute nodes' UUIDs.
    let api = nova.compute_at("/os-hypervisors/detail", "2.88");
    let api_hypervisors: Vec<&Value> = api["hypervisors"].as_array().unwrap().iter().collect();
    assert!(
        !api_hypervisors.is_empty(),
        "the lab's cloud has hypervisors"
    );
    let ferry_hypervisors: Vec<&Value> = rows
        .iter()
        .filter(|row| is_nova_row(row) && row.get("nova").is_some())
        .collect();
    assert_eq!(
        fields(
            &ferry_hypervisors,
            &[
                "/name",
                "/nova/hypervisor_id",
                "/nova/state",
                "/nova/status"
            ]
        ),
        fields(
            &api_hypervisors,
            &["/hypervisor_hostname", "/id", "/state", "/status"]
        ),
        "Nova rows of ferry hosts --json versus GET /os-hypervisors/detail"
    );
    for row in &ferry_hypervisors {
        let expected = if row["nova"]["state"] == "up" {
            "up"
        } else {
            "unreachable"
        };
        assert_eq!(row["state"], expected, "{row}");
    }
    // The same machines are listed as libvirt hosts too, each row with its own backend.
    for host in &config.hosts {
        assert!(
            rows.iter()
                .any(|row| row["backend"] == "libvirt" && row["name"] == host.name.as_str()),
            "libvirt row of {}:\n{stdout}",
            host.name
        );
    }
}

/// A directory of this test's own files, removed when it ends (pass or fail).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferry-lab-nova-inventory-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config of the lab's libvirt hosts and one cloud: `cloud` of `clouds_yaml`.
fn config_with_cloud(dir: &Path, lab: &Config, cloud: &str, clouds_yaml: &Path) -> PathBuf {
    let mut text = String::new();
    for host in &lab.hosts {
        text.push_str(&format!(
            "[[hosts]]\nname = \"{}\"\nuri = \"{}\"\n\n",
            host.name, host.uri
        ));
    }
    text.push_str(&format!(
        "[[clouds]]\nname = \"{cloud}\"\nclouds_yaml = \"{}\"\n",
        clouds_yaml.display()
    ));
    let path = dir.join("ferry.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The lab's clouds.yaml with `edit` applied, written into `dir`.
fn edited_clouds_yaml(dir: &Path, edit: impl Fn(&mut serde_yaml::Value)) -> PathBuf {
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(LAB_CLOUDS_YAML).unwrap()).unwrap();
    edit(&mut yaml);
    let path = dir.join("clouds.yaml");
    std::fs::write(&path, serde_yaml::to_string(&yaml).unwrap()).unwrap();
    path
}

/// Both commands under `config` fail with every piece of `expected_error` on stderr, and
/// still list every libvirt host (and its instances) of the lab.
fn assert_cloud_error_keeps_libvirt_rows(
    config: &Path,
    lab: &Config,
    cloud: &str,
    expected_error: &[&str],
) {
    let of_cloud = |row: &Value| row["backend"]["nova"]["cloud"] == cloud;
    let config = config.to_str().unwrap();
    let (ok, stdout, stderr) = ferry(&["--config", config, "hosts", "--json"]);
    assert!(!ok, "ferry hosts must exit non-zero:\n{stdout}\n{stderr}");
    for piece in expected_error {
        assert!(
            stderr.contains(piece),
            "ferry hosts: stderr lacks {piece:?}:\n{stderr}"
        );
    }
    let rows = json_rows(&stdout, "ferry hosts --json");
    for host in &lab.hosts {
        assert!(
            rows.iter().any(|row| row["backend"] == "libvirt"
                && row["name"] == host.name.as_str()
                && row["state"] == "up"),
            "libvirt host {} still listed, up:\n{stdout}",
            host.name
        );
    }
    let cloud_row = rows
        .iter()
        .find(|row| of_cloud(row) && row.get("nova").is_none())
        .unwrap_or_else(|| panic!("the cloud's own row:\n{stdout}"));
    assert_eq!(cloud_row["state"], "unreachable", "{cloud_row}");
    assert!(
        cloud_row["last_error"]
            .as_str()
            .is_some_and(|error| expected_error.iter().all(|piece| error.contains(piece))),
        "the cloud's row carries the error: {cloud_row}"
    );

    let (ok, stdout, stderr) = ferry(&["--config", config, "instances", "--json"]);
    assert!(
        !ok,
        "ferry instances must exit non-zero:\n{stdout}\n{stderr}"
    );
    for piece in expected_error {
        assert!(
            stderr.contains(piece),
            "ferry instances: stderr lacks {piece:?}:\n{stderr}"
        );
    }
    let instances = json_rows(&stdout, "ferry instances --json");
    assert!(
        instances
            .iter()
            .any(|row| row["backend"] == "libvirt" && row["name"] == "idle"),
        "the libvirt guests are still listed:\n{stdout}"
    );
    assert!(
        !instances.iter().any(of_cloud),
        "no Nova row from a cloud that was not read:\n{stdout}"
    );
}

fn set_cloud_field(yaml: &mut serde_yaml::Value, cloud: &str, key: &str, value: String) {
    yaml["clouds"][cloud]["auth"][key] = serde_yaml::Value::String(value);
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_libvirt_hosts_are_still_listed() {
    let Some(lab) = lab_with_cloud_or_skip(
        "a_wrong_password_is_a_clear_error_and_the_libvirt_hosts_are_still_listed",
    ) else {
        return;
    };
    let dir = TempDir::new();
    let clouds_yaml = edited_clouds_yaml(dir.path(), |yaml| {
        set_cloud_field(yaml, CLOUD, "password", "not-the-password".into())
    });
    let config = config_with_cloud(dir.path(), &lab, CLOUD, &clouds_yaml);
    assert_cloud_error_keeps_libvirt_rows(
        &config,
        &lab,
        CLOUD,
        &[
            "cloud ferry-lab",
            "credentials refused",
            "check the password",
            clouds_yaml.to_str().unwrap(),
        ],
    );
}

#[test]
fn a_user_without_admin_is_a_clear_error_and_the_libvirt_hosts_are_still_listed() {
    let Some(lab) = lab_with_cloud_or_skip(
        "a_user_without_admin_is_a_clear_error_and_the_libvirt_hosts_are_still_listed",
    ) else {
        return;
    };
    let dir = TempDir::new();
    let config = config_with_cloud(
        dir.path(),
        &lab,
        "ferry-lab-member",
        Path::new(LAB_CLOUDS_YAML),
    );
    assert_cloud_error_keeps_libvirt_rows(
        &config,
        &lab,
        "ferry-lab-member",
        &[
            "cloud ferry-lab-member",
            "forbidden",
            "needs the admin role",
        ],
    );
}

#[test]
fn an_endpoint_nobody_listens_on_is_unreachable_and_the_libvirt_hosts_are_still_listed() {
    let Some(lab) = lab_with_cloud_or_skip(
        "an_endpoint_nobody_listens_on_is_unreachable_and_the_libvirt_hosts_are_still_listed",
    ) else {
        return;
    };
    // A port just freed on loopback: nothing listens there, as after nova-api (or keystone)
    // stopped, without stopping the lab's own.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new();
    let auth_url = format!("http://127.0.0.1:{closed_port}/v3");
    let clouds_yaml = edited_clouds_yaml(dir.path(), |yaml| {
        set_cloud_field(yaml, CLOUD, "auth_url", auth_url.clone())
    });
    let config = config_with_cloud(dir.path(), &lab, CLOUD, &clouds_yaml);
    assert_cloud_error_keeps_libvirt_rows(
        &config,
        &lab,
        CLOUD,
        &[
            "cloud ferry-lab",
            &format!("127.0.0.1:{closed_port}"),
            "unreachable",
            "running and reachable from here",
        ],
    );
}

/// The TUI's tasks: a cloud that accepts connections and never answers is shown unreachable
/// with its own error, while every libvirt host keeps refreshing on its interval meanwhile.
#[test]
fn a_silent_cloud_never_holds_up_the_libvirt_hosts_refreshing() {
    use ferry::inventory::{spawn_workers, InventoryEvent};
    use std::time::{Duration, Instant};
    let Some(lab) =
        lab_with_cloud_or_skip("a_silent_cloud_never_holds_up_the_libvirt_hosts_refreshing")
    else {
        return;
    };
    // Listening, so connections open, but never accepting nor answering: a hung keystone.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let dir = TempDir::new();
    let clouds_yaml = edited_clouds_yaml(dir.path(), |yaml| {
        set_cloud_field(
            yaml,
            CLOUD,
            "auth_url",
            format!("http://127.0.0.1:{silent_port}/v3"),
        )
    });
    let path = config_with_cloud(dir.path(), &lab, CLOUD, &clouds_yaml);
    let mut config = Config::load(&path).unwrap();
    config.refresh_interval_seconds = 1;
    config.call_timeout_seconds = 4;
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_workers(&config, move |event| tx.send(event).is_ok());
    let started = Instant::now();
    let mut refreshes_before_cloud_error = std::collections::BTreeMap::<String, u32>::new();
    let cloud_error = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no word from the silent cloud within 60 s"
        );
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(InventoryEvent::Refreshed { host, .. }) => {
                *refreshes_before_cloud_error
                    .entry(host.to_string())
                    .or_default() += 1;
            }
            Ok(InventoryEvent::CloudUnreachable { cloud, error, .. }) => {
                assert_eq!(cloud, CLOUD);
                break error;
            }
            Ok(InventoryEvent::CloudRefreshed { .. }) => panic!("a silent cloud was read"),
            Ok(_) | Err(_) => {}
        }
    };
    assert!(
        cloud_error.contains("cloud ferry-lab") && cloud_error.contains("no answer within"),
        "{cloud_error}"
    );
    // The cloud took its 4 s call timeout; every host refreshed (each second) meanwhile.
    for host in &lab.hosts {
        let refreshes = refreshes_before_cloud_error
            .get(host.name.as_str())
            .copied()
            .unwrap_or(0);
        assert!(
            refreshes >= 2,
            "{} refreshed {refreshes} times while the cloud hung: {refreshes_before_cloud_error:?}",
            host.name
        );
    }
    drop(silent);
}
