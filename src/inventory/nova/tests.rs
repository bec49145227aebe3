//! Nova rows folded from the lab's recorded answers (src/nova/fixtures, Nova 26.2.2).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::config::{CloudEntry, Config, HostConfig};
use crate::inventory::{Backend, HostState, Inventory, InventoryEvent};
use crate::model::HostName;
use crate::nova::types::{ComputeService, Server, ServiceState, ServiceStatus};

use super::CloudReading;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
}

fn recorded_servers() -> Vec<Server> {
    #[derive(Deserialize)]
    struct Servers {
        servers: Vec<Server>,
    }
    let text = include_str!("../../nova/fixtures/servers_detail_2.47_lab.json");
    serde_json::from_str::<Servers>(text).unwrap().servers
}

fn recorded_services() -> Vec<ComputeService> {
    #[derive(Deserialize)]
    struct Services {
        services: Vec<ComputeService>,
    }
    let text = include_str!("../../nova/fixtures/os_services_2.53.json");
    serde_json::from_str::<Services>(text).unwrap().services
}

fn lab_config() -> Config {
    Config {
        hosts: (1..=3)
            .map(|n| HostConfig {
                name: HostName::parse(&format!("hv{n}")).unwrap(),
                uri: format!("qemu+ssh://root@hv{n}/system"),
                group: None,
                tags: Vec::new(),
            })
            .collect(),
        clouds: vec![CloudEntry {
            name: "ferry-lab".into(),
            clouds_yaml: Some("/var/lib/ferry-lab/clouds.yaml".into()),
            compute_libvirt_uris: Default::default(),
        }],
        ..Config::default()
    }
}

fn refreshed(reading: CloudReading, seconds: u64) -> InventoryEvent {
    InventoryEvent::CloudRefreshed {
        cloud: "ferry-lab".into(),
        reading,
        at: at(seconds),
        took: Duration::from_millis(120),
    }
}

fn lab_reading() -> CloudReading {
    CloudReading {
        // hv1..hv3 as os-hypervisors 2.88 lists them, capacity from Placement.
        hypervisors: super::sample::reading(3, &[]).hypervisors,
        services: recorded_services(),
        servers: recorded_servers(),
    }
}

#[test]
fn hypervisors_become_host_rows_beside_the_libvirt_rows_of_the_same_machines() {
    let mut inventory = Inventory::new(&lab_config(), at(0));
    assert!(inventory.apply(refreshed(lab_reading(), 1)));
    let nova = Backend::nova("ferry-lab");
    let hv2 = HostName::parse("hv2").unwrap();
    let libvirt_row = inventory.host_with(&Backend::Libvirt, &hv2).unwrap();
    let nova_row = inventory.host_with(&nova, &hv2).unwrap();
    assert_eq!(
        libvirt_row.state,
        HostState::Connecting,
        "untouched by Nova's reading"
    );
    assert_eq!(nova_row.state, HostState::Up);
    let facts = nova_row.nova.as_ref().unwrap();
    assert_eq!((facts.state, facts.status), ("up", "enabled"));
    let service = facts.service.as_ref().unwrap();
    assert_eq!((service.status, service.state), ("enabled", "up"));
    assert_eq!(service.forced_down, Some(false));
    assert_eq!(nova_row.memory_free_bytes(), Some((33157 - 768) << 20));
    // The libvirt hosts stay the only candidates of libvirt migrations.
    assert_eq!(inventory.hosts.len(), 3);
    let names: Vec<String> = inventory
        .all_hosts()
        .map(|h| format!("{} {}", h.backend.label(), h.name))
        .collect();
    assert_eq!(
        names,
        [
            "libvirt hv1",
            "libvirt hv2",
            "libvirt hv3",
            "nova:ferry-lab ferry-lab",
            "nova:ferry-lab hv1",
            "nova:ferry-lab hv2",
            "nova:ferry-lab hv3"
        ]
    );
}

#[test]
fn servers_become_instance_rows_on_their_hypervisor_with_novas_fields() {
    let mut inventory = Inventory::new(&lab_config(), at(0));
    inventory.apply(refreshed(lab_reading(), 1));
    let hv2 = HostName::parse("hv2").unwrap();
    let row = inventory
        .host_with(&Backend::nova("ferry-lab"), &hv2)
        .unwrap();
    assert_eq!(row.instances.len(), 1);
    assert_eq!((row.instances_defined, row.instances_running), (1, 1));
    let server = &row.instances[0];
    assert_eq!(server.name, "nova-idle");
    assert_eq!(server.host, hv2);
    assert_eq!(server.memory_bytes, 256 << 20, "ferry.small");
    let json = serde_json::to_value(server).unwrap();
    assert_eq!(json["backend"]["nova"]["cloud"], "ferry-lab");
    assert_eq!(json["server_id"], "74cad59e-3b92-4b5d-8c42-c8b6c0dcbfb3");
    assert_eq!(json["status"], "ACTIVE");
    assert_eq!(json["state"], "running");
    assert_eq!(json["task_state"], serde_json::Value::Null);
    assert_eq!(json["instance_name"], "instance-00000002");
    assert_eq!(json["flavor"]["name"], "ferry.small");
    assert!(json["project_id"].is_string(), "{json}");
    assert_eq!(json["managed_by"]["nova"]["server_id"], json["server_id"]);
    // Nothing is left on the cloud's own row: every server has its hypervisor.
    assert!(inventory
        .cloud("ferry-lab")
        .unwrap()
        .row
        .instances
        .is_empty());
}

#[test]
fn a_server_on_no_listed_hypervisor_stays_on_the_clouds_row() {
    let mut inventory = Inventory::new(&lab_config(), at(0));
    let mut reading = lab_reading();
    reading
        .hypervisors
        .retain(|h| h.hypervisor_hostname != "hv2");
    inventory.apply(refreshed(reading, 1));
    let cloud = inventory.cloud("ferry-lab").unwrap();
    assert_eq!(cloud.row.instances.len(), 1);
    assert_eq!(cloud.row.instances[0].host.as_str(), "ferry-lab");
    assert_eq!(inventory.instance_count(), 1);
}

#[test]
fn a_refused_reading_shows_the_doors_message_on_the_clouds_row_and_keeps_the_last_rows() {
    let mut inventory = Inventory::new(&lab_config(), at(0));
    inventory.apply(refreshed(lab_reading(), 1));
    let error = "cloud ferry-lab: log in: credentials refused (401): check the password";
    assert!(inventory.apply(InventoryEvent::CloudUnreachable {
        cloud: "ferry-lab".into(),
        error: error.into(),
        at: at(5),
        retry_in: Duration::from_secs(5),
    }));
    let cloud = inventory.cloud("ferry-lab").unwrap();
    assert_eq!(cloud.row.state, HostState::Unreachable);
    assert_eq!(cloud.row.last_error.as_deref(), Some(error));
    assert!(cloud
        .hypervisors
        .iter()
        .all(|h| h.state == HostState::Unreachable && h.instances.len() <= 1));
    assert_eq!(
        inventory.unreachable_count(),
        1,
        "the cloud, not each hypervisor"
    );
    assert_eq!(
        inventory.unreadable_clouds().collect::<Vec<_>>(),
        [("ferry-lab", error)]
    );
    // Back again: up, its error kept for the record.
    inventory.apply(refreshed(lab_reading(), 10));
    let cloud = inventory.cloud("ferry-lab").unwrap();
    assert_eq!(
        (cloud.row.state, cloud.row.state_since),
        (HostState::Up, at(10))
    );
    assert_eq!(inventory.unreachable_count(), 0);
}

#[test]
fn a_down_or_disabled_compute_is_shown_with_novas_reason() {
    let mut inventory = Inventory::new(&lab_config(), at(0));
    let mut reading = lab_reading();
    reading.hypervisors[0].state = ServiceState::Down;
    reading.hypervisors[0].status = ServiceStatus::Disabled;
    let service = reading
        .services
        .iter_mut()
        .find(|s| s.host == "hv1")
        .unwrap();
    service.status = ServiceStatus::Disabled;
    service.disabled_reason = Some("ferry drain".into());
    service.forced_down = Some(true);
    inventory.apply(refreshed(reading, 1));
    let hv1 = HostName::parse("hv1").unwrap();
    let row = inventory
        .host_with(&Backend::nova("ferry-lab"), &hv1)
        .unwrap();
    assert_eq!(row.state, HostState::Unreachable);
    assert!(row
        .last_error
        .as_deref()
        .unwrap()
        .contains("nova-compute on hv1 is down"));
    let service = row.nova.as_ref().unwrap().service.as_ref().unwrap();
    assert_eq!(service.disabled_reason.as_deref(), Some("ferry drain"));
    assert_eq!(service.forced_down, Some(true));
    assert_eq!(
        inventory.unreachable_count(),
        0,
        "a fact Nova reported, read fine"
    );
}

#[test]
fn libvirt_rows_say_libvirt_in_json() {
    let inventory = Inventory::new(&lab_config(), at(0));
    let json = serde_json::to_value(&inventory.hosts).unwrap();
    assert_eq!(json[0]["backend"], "libvirt");
    assert!(json[0].get("nova").is_none());
}
