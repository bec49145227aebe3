//! ferry's own checks before it asks Nova for a migration: the server's state, the
//! destination's compute service (enabled and up) and its capacity. Nova runs its own
//! prechecks after it has answered 202, so a refusal here saves the operator a round trip
//! and says why in one line. Pure: the facts are read by the caller.

use crate::nova::types::{ComputeService, Hypervisor, Server, ServiceState, ServiceStatus};

/// Which migration is checked: the states Nova accepts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NovaMove {
    Live,
    /// Cold migration or resize (Nova's resize flow): the server may also be shut off.
    Cold,
}

/// What a migration needs of its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub memory_mib: u64,
    pub vcpus: u32,
}

impl Needs {
    pub fn of(server: &Server) -> Needs {
        Needs {
            memory_mib: server.flavor.memory_mib.unwrap_or(0),
            vcpus: server.flavor.vcpus.unwrap_or(0),
        }
    }
}

/// Facts about the cloud's compute hosts, read once for a check.
pub struct CloudFacts<'a> {
    pub services: &'a [ComputeService],
    pub hypervisors: &'a [Hypervisor],
}

/// Why the server may not move now, in one line naming the fix; None when it may.
pub fn server_refusal(server: &Server, kind: NovaMove) -> Option<String> {
    let accepted: &[&str] = match kind {
        NovaMove::Live => &["ACTIVE", "PAUSED"],
        NovaMove::Cold => &["ACTIVE", "SHUTOFF"],
    };
    if let Some(task) = &server.task_state {
        return Some(format!(
            "server {} has task {task} under way (status {}): wait until Nova has finished it",
            server.name, server.status
        ));
    }
    if !accepted.contains(&server.status.as_str()) {
        return Some(format!(
            "server {} is {}: Nova {} only {} servers",
            server.name,
            server.status,
            match kind {
                NovaMove::Live => "live-migrates",
                NovaMove::Cold => "cold-migrates and resizes",
            },
            accepted.join(" or ")
        ));
    }
    if server.host.is_none() {
        return Some(format!(
            "server {} has no host in Nova's record (OS-EXT-SRV-ATTR:host): the admin role is \
             needed to see it",
            server.name
        ));
    }
    None
}

/// Why `host` cannot receive the server; None when it can. `same_host_allowed` for a resize
/// on its own host (Nova's allow_resize_to_same_host).
pub fn destination_refusal(
    facts: &CloudFacts,
    server: &Server,
    host: &str,
    needs: Needs,
    same_host_allowed: bool,
) -> Option<String> {
    let source = server.host.as_deref().unwrap_or_default();
    if host == source && !same_host_allowed {
        return Some(format!(
            "{host} is the server's own host: choose another destination"
        ));
    }
    let Some(service) = facts
        .services
        .iter()
        .find(|s| s.host == host && s.binary == "nova-compute")
    else {
        let known: Vec<&str> = facts.services.iter().map(|s| s.host.as_str()).collect();
        return Some(format!(
            "{host} is not a compute host of this cloud (its compute hosts: {})",
            known.join(", ")
        ));
    };
    if service.status == ServiceStatus::Disabled {
        return Some(format!(
            "{host}: its compute service is disabled ({}): enable it or choose another host",
            service
                .disabled_reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .unwrap_or("no reason given")
        ));
    }
    if service.state != ServiceState::Up || service.forced_down == Some(true) {
        return Some(format!(
            "{host}: its compute service is down: Nova cannot reach nova-compute there"
        ));
    }
    let hypervisor = facts.hypervisors.iter().find(|h| {
        h.hypervisor_hostname == host || h.service.as_ref().is_some_and(|s| s.host == host)
    });
    if let Some(capacity) = hypervisor.and_then(|h| h.capacity) {
        // On its own host a resize needs only what it grows by.
        let current = if host == source {
            Needs::of(server)
        } else {
            Needs {
                memory_mib: 0,
                vcpus: 0,
            }
        };
        let memory_wanted = needs.memory_mib.saturating_sub(current.memory_mib);
        if capacity.memory_mib_free() < memory_wanted {
            return Some(format!(
                "{host}: {} MiB free for instances, needs {memory_wanted} MiB",
                capacity.memory_mib_free()
            ));
        }
        let vcpus_wanted = u64::from(needs.vcpus.saturating_sub(current.vcpus));
        if capacity.vcpus_free() < vcpus_wanted {
            return Some(format!(
                "{host}: {} vCPUs free, needs {vcpus_wanted}",
                capacity.vcpus_free()
            ));
        }
    }
    None
}

/// For the scheduler's choice: Ok when at least one other host could take the server, else
/// every host's reason.
pub fn any_destination(facts: &CloudFacts, server: &Server, needs: Needs) -> Result<(), String> {
    let source = server.host.as_deref().unwrap_or_default();
    let reasons: Vec<String> = facts
        .services
        .iter()
        .filter(|s| s.binary == "nova-compute" && s.host != source)
        .map(|s| destination_refusal(facts, server, &s.host, needs, false))
        .collect::<Option<Vec<String>>>()
        .unwrap_or_default();
    let candidates = facts
        .services
        .iter()
        .filter(|s| s.binary == "nova-compute" && s.host != source)
        .count();
    if candidates > 0 && reasons.len() < candidates {
        return Ok(());
    }
    if candidates == 0 {
        return Err(format!(
            "no compute host but {source} in this cloud: there is nowhere to move {}",
            server.name
        ));
    }
    Err(format!(
        "no host can take {}: {}",
        server.name,
        reasons.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nova::types::{CapacitySource, HypervisorCapacity, HypervisorService, ServerFlavor};

    fn service(host: &str, status: ServiceStatus, state: ServiceState) -> ComputeService {
        ComputeService {
            id: format!("id-{host}"),
            binary: "nova-compute".into(),
            host: host.into(),
            zone: Some("nova".into()),
            status,
            disabled_reason: (status == ServiceStatus::Disabled).then(|| "maintenance".into()),
            state,
            forced_down: Some(false),
            updated_at: None,
        }
    }

    fn hypervisor(host: &str, memory_mib_used: u64) -> Hypervisor {
        Hypervisor {
            id: format!("rp-{host}"),
            hypervisor_hostname: host.into(),
            state: ServiceState::Up,
            status: ServiceStatus::Enabled,
            hypervisor_type: Some("QEMU".into()),
            hypervisor_version: Some(10_000_002),
            host_ip: None,
            service: Some(HypervisorService {
                host: host.into(),
                id: format!("id-{host}"),
                disabled_reason: None,
            }),
            running_vms: None,
            // As the lab's Placement reports a host: 24 GiB, 512 MiB reserved, ratio 1.5.
            capacity: Some(HypervisorCapacity {
                source: CapacitySource::Placement,
                vcpus_total: 2,
                vcpus_usable: 32,
                vcpus_used: 1,
                memory_mib_total: 24_000,
                memory_mib_usable: 35_232,
                memory_mib_used,
                disk_gib_total: 250,
                disk_gib_usable: 250,
                disk_gib_used: 1,
            }),
        }
    }

    fn server(status: &str, task: Option<&str>) -> Server {
        Server {
            id: "255036e1-07ec-40cc-ba7c-5d1b6ea78cbc".into(),
            name: "nova-idle".into(),
            status: status.into(),
            task_state: task.map(str::to_string),
            vm_state: None,
            power_state: None,
            host: Some("hv2".into()),
            hypervisor_hostname: Some("hv2".into()),
            instance_name: Some("instance-00000001".into()),
            flavor: ServerFlavor {
                id: None,
                name: Some("ferry.small".into()),
                vcpus: Some(1),
                memory_mib: Some(256),
                root_disk_gib: Some(1),
            },
            tenant_id: None,
            fault: None,
            updated: None,
        }
    }

    fn facts<'a>(services: &'a [ComputeService], hypervisors: &'a [Hypervisor]) -> CloudFacts<'a> {
        CloudFacts {
            services,
            hypervisors,
        }
    }

    #[test]
    fn only_settled_servers_in_an_accepted_state_move() {
        assert_eq!(
            server_refusal(&server("ACTIVE", None), NovaMove::Live),
            None
        );
        assert_eq!(
            server_refusal(&server("PAUSED", None), NovaMove::Live),
            None
        );
        assert!(server_refusal(&server("SHUTOFF", None), NovaMove::Live)
            .unwrap()
            .contains("live-migrates only ACTIVE or PAUSED"));
        assert_eq!(
            server_refusal(&server("SHUTOFF", None), NovaMove::Cold),
            None
        );
        assert!(
            server_refusal(&server("ACTIVE", Some("migrating")), NovaMove::Live)
                .unwrap()
                .contains("task migrating under way")
        );
        assert!(server_refusal(&server("VERIFY_RESIZE", None), NovaMove::Cold).is_some());
    }

    #[test]
    fn a_destination_must_be_another_enabled_up_host_with_room() {
        let services = [
            service("hv1", ServiceStatus::Enabled, ServiceState::Up),
            service("hv2", ServiceStatus::Enabled, ServiceState::Up),
            service("hv3", ServiceStatus::Disabled, ServiceState::Up),
            service("hv4", ServiceStatus::Enabled, ServiceState::Down),
        ];
        let hypervisors = [
            hypervisor("hv1", 35_100),
            hypervisor("hv2", 0),
            hypervisor("hv3", 0),
        ];
        let facts = facts(&services, &hypervisors);
        let server = server("ACTIVE", None);
        let needs = Needs::of(&server);
        let refusal = |host| destination_refusal(&facts, &server, host, needs, false);
        assert!(refusal("hv2").unwrap().contains("own host"));
        assert!(refusal("hv1")
            .unwrap()
            .contains("132 MiB free for instances, needs 256 MiB"));
        assert!(refusal("hv3").unwrap().contains("disabled (maintenance)"));
        assert!(refusal("hv4").unwrap().contains("down"));
        assert!(refusal("hv9").unwrap().contains("not a compute host"));
        // A resize on its own host needs only what it grows by.
        let bigger = Needs {
            memory_mib: 768,
            vcpus: 2,
        };
        assert_eq!(
            destination_refusal(&facts, &server, "hv2", bigger, true),
            None
        );
    }

    #[test]
    fn the_schedulers_choice_needs_one_host_that_passes() {
        let server = server("ACTIVE", None);
        let needs = Needs::of(&server);
        let services = [
            service("hv1", ServiceStatus::Disabled, ServiceState::Up),
            service("hv2", ServiceStatus::Enabled, ServiceState::Up),
            service("hv3", ServiceStatus::Enabled, ServiceState::Up),
        ];
        let hypervisors = [
            hypervisor("hv1", 0),
            hypervisor("hv2", 0),
            hypervisor("hv3", 0),
        ];
        assert_eq!(
            any_destination(&facts(&services, &hypervisors), &server, needs),
            Ok(())
        );
        let full = [
            hypervisor("hv1", 0),
            hypervisor("hv2", 0),
            hypervisor("hv3", 35_200),
        ];
        let error = any_destination(&facts(&services, &full), &server, needs).unwrap_err();
        assert!(
            error.contains("hv1: its compute service is disabled"),
            "{error}"
        );
        assert!(error.contains("hv3: 32 MiB free"), "{error}");
        let alone = [service("hv2", ServiceStatus::Enabled, ServiceState::Up)];
        assert!(
            any_destination(&facts(&alone, &hypervisors), &server, needs)
                .unwrap_err()
                .contains("nowhere to move")
        );
    }
}
