//! Test and benchmark data: a cloud's reading without a cloud, shaped like the lab's
//! (hv1..hv3, Placement capacity, servers of the lab's flavors).

use crate::config::CloudEntry;
use crate::nova::types::{
    CapacitySource, ComputeService, Hypervisor, HypervisorCapacity, HypervisorService, Server,
    ServerFlavor, ServiceState, ServiceStatus,
};

use super::CloudReading;

pub fn cloud_entry(name: &str) -> CloudEntry {
    CloudEntry {
        name: name.to_string(),
        clouds_yaml: Some("/var/lib/ferry-lab/clouds.yaml".into()),
        compute_libvirt_uris: Default::default(),
    }
}

/// hv1..hv`count`, up and enabled; hv1's compute service disabled for a drain.
pub fn reading(
    hypervisor_count: usize,
    servers: &[(&str, &str, &str, Option<&str>)],
) -> CloudReading {
    let hypervisors = (1..=hypervisor_count)
        .map(|n| Hypervisor {
            id: format!("4{n}c76ea4-8bcb-4282-af93-dd6c4e43f858"),
            hypervisor_hostname: format!("hv{n}"),
            state: ServiceState::Up,
            status: if n == 1 {
                ServiceStatus::Disabled
            } else {
                ServiceStatus::Enabled
            },
            hypervisor_type: Some("QEMU".into()),
            hypervisor_version: Some(10000002),
            host_ip: Some(format!("10.77.0.1{n}")),
            service: Some(HypervisorService {
                host: format!("hv{n}"),
                id: format!("f984980{n}-b9dd-4373-822f-35150fd74db4"),
                disabled_reason: (n == 1).then(|| "ferry drain".to_string()),
            }),
            running_vms: None,
            capacity: Some(HypervisorCapacity {
                source: CapacitySource::Placement,
                vcpus_total: 2,
                vcpus_usable: 32,
                vcpus_used: 1,
                memory_mib_total: 22617,
                memory_mib_usable: 33157,
                memory_mib_used: 768,
                disk_gib_total: 40,
                disk_gib_usable: 40,
                disk_gib_used: 1,
            }),
        })
        .collect();
    let services = (1..=hypervisor_count)
        .map(|n| ComputeService {
            id: format!("f984980{n}-b9dd-4373-822f-35150fd74db4"),
            binary: "nova-compute".into(),
            host: format!("hv{n}"),
            zone: Some("nova".into()),
            status: if n == 1 {
                ServiceStatus::Disabled
            } else {
                ServiceStatus::Enabled
            },
            disabled_reason: (n == 1).then(|| "ferry drain".to_string()),
            state: ServiceState::Up,
            forced_down: Some(false),
            updated_at: None,
        })
        .collect();
    let servers = servers
        .iter()
        .enumerate()
        .map(|(index, (name, host, status, task_state))| Server {
            id: format!("74cad59e-3b92-4b5d-8c42-c8b6c0dcbf{index:02}"),
            name: name.to_string(),
            status: status.to_string(),
            task_state: task_state.map(str::to_string),
            vm_state: Some(
                if *status == "SHUTOFF" {
                    "stopped"
                } else {
                    "active"
                }
                .into(),
            ),
            power_state: Some(if *status == "SHUTOFF" { 4 } else { 1 }),
            host: Some(host.to_string()),
            hypervisor_hostname: Some(host.to_string()),
            instance_name: Some(format!("instance-{:08x}", index + 1)),
            flavor: ServerFlavor {
                id: None,
                name: Some("ferry.small".into()),
                vcpus: Some(1),
                memory_mib: Some(256),
                root_disk_gib: Some(1),
            },
            tenant_id: Some("c2b4e6a8f0d24c6e8a0b2d4f6a8c0e1f".into()),
            fault: None,
            updated: None,
        })
        .collect();
    CloudReading {
        hypervisors,
        services,
        servers,
    }
}
