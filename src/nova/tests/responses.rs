use std::time::Duration;

use serde::Deserialize;

use crate::nova::client::{encode_query, next_page_query, PageLink};
use crate::nova::compute::pick_flavor;
use crate::nova::error::{service_message, CallContext, NovaError};
use crate::nova::microversion::Microversion;
use crate::nova::placement::{capacity_from_placement, Inventories, Usages};
use crate::nova::types::{
    CapacitySource, ComputeService, Flavor, HypervisorCapacity, HypervisorWire, InstanceAction,
    Migration, MigrationFilter, MigrationType, Server, ServerMigration, ServiceState,
    ServiceStatus,
};

#[derive(Deserialize)]
struct Hypervisors {
    hypervisors: Vec<HypervisorWire>,
}

fn fixture<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).expect("the fixture parses")
}

#[test]
fn hypervisors_at_2_87_carry_their_own_capacity() {
    let recorded: Hypervisors = fixture(include_str!("../fixtures/hypervisors_detail_2.87.json"));
    assert_eq!(recorded.hypervisors.len(), 3);
    let hv2 = &recorded.hypervisors[0];
    let capacity = hv2.reported_capacity().expect("2.87 reports capacity");
    assert_eq!(
        capacity,
        HypervisorCapacity {
            source: CapacitySource::OsHypervisors,
            vcpus_total: 2,
            vcpus_usable: 2,
            vcpus_used: 0,
            memory_mib_total: 22_617,
            memory_mib_usable: 22_617,
            memory_mib_used: 512,
            disk_gib_total: 251,
            disk_gib_usable: 251,
            disk_gib_used: 0,
        }
    );
    assert_eq!(capacity.memory_mib_free(), 22_105);
    let hypervisor = recorded.hypervisors.into_iter().next().unwrap();
    let hypervisor = hypervisor.into_hypervisor(Some(capacity));
    assert_eq!(hypervisor.id, "41c76ea4-8bcb-4282-af93-dd6c4e43f858");
    assert_eq!(hypervisor.hypervisor_hostname, "hv2");
    assert_eq!(hypervisor.state, ServiceState::Up);
    assert_eq!(hypervisor.status, ServiceStatus::Enabled);
    assert_eq!(hypervisor.hypervisor_type.as_deref(), Some("QEMU"));
    assert_eq!(hypervisor.hypervisor_version, Some(10_000_002));
    assert_eq!(hypervisor.host_ip.as_deref(), Some("10.77.0.12"));
    assert_eq!(hypervisor.running_vms, Some(0));
    let service = hypervisor.service.unwrap();
    assert_eq!(service.host, "hv2");
    assert_eq!(service.id, "f9849801-b9dd-4373-822f-35150fd74db4");
    assert_eq!(service.disabled_reason, None);
}

#[test]
fn hypervisors_at_2_88_leave_capacity_to_placement() {
    let recorded: Hypervisors = fixture(include_str!("../fixtures/hypervisors_detail_2.88.json"));
    let names: Vec<&str> = recorded
        .hypervisors
        .iter()
        .map(|hypervisor| hypervisor.hypervisor_hostname.as_str())
        .collect();
    assert_eq!(names, ["hv2", "hv3", "hv1"]);
    assert!(recorded
        .hypervisors
        .iter()
        .all(|hypervisor| hypervisor.reported_capacity().is_none()));

    let inventories: Inventories =
        fixture(include_str!("../fixtures/placement_inventories_hv2.json"));
    let usages: Usages = fixture(include_str!("../fixtures/placement_usages_hv2.json"));
    let capacity = capacity_from_placement(&inventories, &usages);
    // hv2: VCPU 2 at 16.0; MEMORY_MB 22617 with 512 reserved at 1.5; DISK_GB 251 at 1.0.
    assert_eq!(capacity.source, CapacitySource::Placement);
    assert_eq!(
        (
            capacity.vcpus_total,
            capacity.vcpus_usable,
            capacity.vcpus_used
        ),
        (2, 32, 0)
    );
    assert_eq!(
        (capacity.memory_mib_total, capacity.memory_mib_usable),
        (22_617, 33_157)
    );
    assert_eq!(
        (capacity.disk_gib_total, capacity.disk_gib_usable),
        (251, 251)
    );
}

#[test]
fn placement_usage_counts_against_usable_and_a_missing_class_is_zero() {
    let inventories: Inventories = fixture(
        r#"{"resource_provider_generation": 5, "inventories": {
            "VCPU": {"total": 4, "reserved": 1, "allocation_ratio": 2.0},
            "MEMORY_MB": {"total": 2048, "reserved": 512, "allocation_ratio": 1.0}}}"#,
    );
    let usages: Usages =
        fixture(r#"{"resource_provider_generation": 5, "usages": {"VCPU": 5, "MEMORY_MB": 1792}}"#);
    let capacity = capacity_from_placement(&inventories, &usages);
    assert_eq!(capacity.vcpus_usable, 6);
    assert_eq!(capacity.vcpus_free(), 1);
    assert_eq!(capacity.memory_mib_usable, 1_536);
    assert_eq!(
        capacity.memory_mib_free(),
        0,
        "overcommitted is 0 free, not a wrap"
    );
    assert_eq!(
        (
            capacity.disk_gib_total,
            capacity.disk_gib_usable,
            capacity.disk_gib_free()
        ),
        (0, 0, 0)
    );
}

#[test]
fn the_labs_compute_services_parse_with_their_uuids() {
    #[derive(Deserialize)]
    struct Services {
        services: Vec<ComputeService>,
    }
    let recorded: Services = fixture(include_str!("../fixtures/os_services_2.53.json"));
    let hosts: Vec<&str> = recorded
        .services
        .iter()
        .map(|service| service.host.as_str())
        .collect();
    assert_eq!(hosts, ["hv2", "hv3", "hv1"]);
    let hv2 = &recorded.services[0];
    assert_eq!(hv2.id, "f9849801-b9dd-4373-822f-35150fd74db4");
    assert_eq!(hv2.binary, "nova-compute");
    assert_eq!(hv2.zone.as_deref(), Some("nova"));
    assert_eq!(hv2.status, ServiceStatus::Enabled);
    assert_eq!(hv2.state, ServiceState::Up);
    assert_eq!(hv2.forced_down, Some(false));
    assert_eq!(
        hv2.updated_at.as_deref(),
        Some("2026-12-02T04:49:05.000000")
    );

    // Below 2.53 the id is an integer, and below 2.11 there is no forced_down.
    let old: ComputeService = fixture(
        r#"{"id": 7, "binary": "nova-compute", "host": "hv9", "zone": "nova",
            "status": "disabled", "state": "down", "disabled_reason": "drain for kernel update",
            "updated_at": null}"#,
    );
    assert_eq!(old.id, "7");
    assert_eq!(old.status, ServiceStatus::Disabled);
    assert_eq!(old.state, ServiceState::Down);
    assert_eq!(
        old.disabled_reason.as_deref(),
        Some("drain for kernel update")
    );
    assert_eq!(old.forced_down, None);
}

#[derive(Deserialize)]
struct Servers {
    servers: Vec<Server>,
    #[serde(default)]
    servers_links: Vec<PageLink>,
}

#[test]
fn servers_at_2_47_carry_the_embedded_flavor_and_the_admin_fields() {
    let page: Servers = fixture(include_str!("../fixtures/servers_detail_2.47.json"));
    let busy = &page.servers[0];
    assert_eq!(busy.name, "busy-1");
    assert_eq!(busy.status, "MIGRATING");
    assert_eq!(busy.task_state.as_deref(), Some("migrating"));
    assert_eq!(busy.vm_state.as_deref(), Some("active"));
    assert_eq!(busy.power_state, Some(1));
    assert_eq!(busy.host.as_deref(), Some("hv1"));
    assert_eq!(busy.hypervisor_hostname.as_deref(), Some("hv1"));
    assert_eq!(busy.instance_name.as_deref(), Some("instance-00000003"));
    assert_eq!(
        busy.tenant_id.as_deref(),
        Some("7e05823dbae9433fb2fa2c5359f5a427")
    );
    assert_eq!(busy.flavor.name.as_deref(), Some("ferry.busy"));
    assert_eq!(busy.flavor.memory_mib, Some(256));
    assert_eq!(busy.flavor.vcpus, Some(1));
    assert_eq!(busy.flavor.root_disk_gib, Some(1));
    assert_eq!(busy.flavor.id, None);
    assert_eq!(busy.fault, None);

    let failed = &page.servers[1];
    assert_eq!(failed.status, "ERROR");
    assert_eq!(failed.host, None);
    let fault = failed.fault.as_ref().expect("an ERROR server has a fault");
    assert_eq!(fault.code, Some(500));
    assert!(fault.message.starts_with("No valid host was found"));

    assert_eq!(
        next_page_query(&page.servers_links).as_deref(),
        Some("all_tenants=1&limit=2&marker=0b7e4c2a-91d3-4f6e-8a5b-3c2d1e0f9a87")
    );
}

#[test]
fn servers_below_2_47_name_the_flavor_by_id_only() {
    let page: Servers = fixture(include_str!("../fixtures/servers_detail_2.1.json"));
    let server = &page.servers[0];
    assert_eq!(server.flavor.id.as_deref(), Some("f1"));
    assert_eq!(server.flavor.name, None);
    assert_eq!(server.flavor.memory_mib, None);
    assert_eq!(next_page_query(&page.servers_links), None);
}

#[test]
fn flavors_parse_both_swap_forms_and_are_picked_by_id_then_name() {
    #[derive(Deserialize)]
    struct Flavors {
        flavors: Vec<Flavor>,
    }
    let flavors: Flavors = fixture(include_str!("../fixtures/flavors_detail_2.1.json"));
    let flavors = flavors.flavors;
    assert_eq!(flavors[0].swap_mib, 0);
    assert_eq!(flavors[1].swap_mib, 64);
    assert!(!flavors[1].is_public);
    assert_eq!(flavors[2].ephemeral_gib, 1);
    assert_eq!(flavors[2].memory_mib, 1_024);

    assert_eq!(
        pick_flavor(flavors.clone(), "2").unwrap().name,
        "ferry.busy"
    );
    assert_eq!(pick_flavor(flavors.clone(), "ferry.big").unwrap().id, "3");
    let missing = pick_flavor(flavors.clone(), "m1.huge").unwrap_err();
    assert_eq!(
        missing,
        "no flavor has the id or name 'm1.huge'; flavors: ferry.tiny, ferry.busy, ferry.big"
    );
    let mut twins = flavors;
    twins[2].name = "ferry.busy".to_string();
    let ambiguous = pick_flavor(twins, "ferry.busy").unwrap_err();
    assert!(ambiguous.contains("ids 2, 3"), "{ambiguous}");
}

#[test]
fn live_migration_progress_is_optional_until_nova_first_saves_it() {
    #[derive(Deserialize)]
    struct Migrations {
        migrations: Vec<ServerMigration>,
    }
    let recorded: Migrations = fixture(include_str!("../fixtures/server_migrations_2.59.json"));
    let running = &recorded.migrations[0];
    assert_eq!(running.record.id, 7);
    assert_eq!(running.record.status, "running");
    assert_eq!(
        running.record.uuid.as_deref(),
        Some("12341234-abcd-4bcd-8cde-1234567890ab")
    );
    assert_eq!(running.memory_total_bytes, Some(268_435_456));
    assert_eq!(running.memory_remaining_bytes, Some(163_577_856));
    assert_eq!(running.record.dest_compute.as_deref(), Some("hv2"));
    assert_eq!(running.record.dest_host.as_deref(), Some("10.77.0.12"));
    let queued = &recorded.migrations[1];
    assert_eq!(queued.record.status, "queued");
    assert_eq!(queued.memory_total_bytes, None);
    assert_eq!(queued.record.dest_compute, None);
}

#[test]
fn os_migrations_give_type_status_and_hosts() {
    #[derive(Deserialize)]
    struct Migrations {
        migrations: Vec<Migration>,
        migrations_links: Vec<PageLink>,
    }
    let recorded: Migrations = fixture(include_str!("../fixtures/os_migrations_2.59.json"));
    let cold = &recorded.migrations[0];
    assert_eq!(cold.migration_type, Some(MigrationType::Cold));
    assert_eq!(cold.record.status, "finished");
    assert_eq!(cold.server_id, "0b7e4c2a-91d3-4f6e-8a5b-3c2d1e0f9a87");
    assert_eq!(cold.record.source_compute.as_deref(), Some("hv1"));
    assert_eq!(cold.record.dest_compute.as_deref(), Some("hv3"));
    assert_eq!(
        recorded.migrations[1].migration_type,
        Some(MigrationType::Live)
    );
    assert_eq!(next_page_query(&recorded.migrations_links), None);
}

#[test]
fn a_migration_filter_becomes_os_migrations_query() {
    let filter = MigrationFilter {
        server_id: Some("5d1c7a3e".into()),
        migration_type: Some(MigrationType::Live),
        status: Some("running".into()),
        source_compute: Some("hv1".into()),
        changes_since: Some("2026-12-02T05:00:00+00:00".into()),
    };
    assert_eq!(
        encode_query(&filter.query_pairs()),
        "instance_uuid=5d1c7a3e&migration_type=live-migration&status=running&source_compute=hv1\
         &changes-since=2026-12-02T05%3A00%3A00%2B00%3A00"
    );
    assert_eq!(encode_query(&MigrationFilter::default().query_pairs()), "");
}

#[test]
fn an_instance_actions_failed_event_carries_nova_s_reason() {
    #[derive(Deserialize)]
    struct Shown {
        #[serde(rename = "instanceAction")]
        instance_action: InstanceAction,
    }
    let shown: Shown = fixture(include_str!("../fixtures/instance_action_2.84.json"));
    let action = shown.instance_action;
    assert_eq!(action.action, "live-migration");
    assert_eq!(action.message.as_deref(), Some("Error"));
    assert_eq!(action.events.len(), 2);
    let failed: Vec<_> = action.failed_events().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event, "conductor_live_migrate_instance");
    assert!(failed[0]
        .details
        .as_deref()
        .unwrap()
        .contains("Disk of instance is too large"));
}

#[test]
fn service_messages_come_out_of_each_services_error_shape() {
    let nova = br#"{"conflictingRequest": {"code": 409, "message": "Cannot 'os-migrateLive' instance 5d1c7a3e while it is in task_state migrating"}}"#;
    assert_eq!(
        service_message(nova),
        "Cannot 'os-migrateLive' instance 5d1c7a3e while it is in task_state migrating"
    );
    let bad =
        br#"{"badRequest": {"code": 400, "message": "Invalid input for field/attribute host."}}"#;
    assert_eq!(
        service_message(bad),
        "Invalid input for field/attribute host."
    );
    let keystone = br#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#;
    assert_eq!(
        service_message(keystone),
        "The request you have made requires authentication."
    );
    let placement = br#"{"errors": [{"status": 404, "title": "Not Found", "detail": "The resource could not be found.\n\n No resource provider with uuid 00 found  ", "request_id": "req-9"}]}"#;
    assert_eq!(
        service_message(placement),
        "The resource could not be found. No resource provider with uuid 00 found"
    );
    assert_eq!(
        service_message(b"<html>502 Bad Gateway</html>\n"),
        "<html>502 Bad Gateway</html>"
    );
    assert_eq!(service_message(b""), "no message");
}

fn context() -> CallContext<'static> {
    CallContext {
        cloud: "ferry-lab",
        call: "live-migrate server 1234 to hv2",
        service: "nova-api",
        policy: "os_compute_api:os-migrate-server:migrate_live",
        endpoint: "http://10.77.0.10:8774/v2.1/servers/1234/action",
        timeout: Duration::from_secs(15),
        configured_in: "/var/lib/ferry-lab/clouds.yaml",
    }
}

#[test]
fn statuses_become_errors_that_name_cloud_call_and_fix() {
    let conflict = context().status_error(
        409,
        br#"{"conflictingRequest": {"code": 409, "message": "Instance 1234 is in task_state migrating"}}"#,
    );
    assert!(conflict.is_conflict());
    assert_eq!(
        conflict.to_string(),
        "cloud ferry-lab: live-migrate server 1234 to hv2: refused by Nova: Instance 1234 is in task_state migrating"
    );
    let forbidden = context().status_error(403, br#"{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:os-migrate-server:migrate_live to be performed."}}"#);
    assert!(forbidden.is_forbidden());
    let text = forbidden.to_string();
    assert!(text.contains("the user needs the admin role"), "{text}");
    assert!(
        text.contains("(policy os_compute_api:os-migrate-server:migrate_live)"),
        "{text}"
    );
    let unauthorized = context().status_error(401, b"{}");
    assert!(unauthorized.is_bad_credentials());
    assert!(unauthorized
        .to_string()
        .contains("check the password / application credential in /var/lib/ferry-lab/clouds.yaml"));
    assert!(context().status_error(404, b"{}").is_not_found());
    assert!(matches!(
        context().status_error(400, b"{}"),
        NovaError::BadRequest { .. }
    ));
    assert!(matches!(
        context().status_error(503, b"busy"),
        NovaError::ServerError { status: 503, .. }
    ));
    assert!(matches!(
        context().status_error(418, b""),
        NovaError::UnexpectedStatus { status: 418, .. }
    ));
}

#[test]
fn too_old_reads_as_the_operator_needs_it() {
    let error = NovaError::TooOld {
        cloud: "ferry-lab".into(),
        call: "abort of a queued migration".into(),
        needs: Microversion::new(2, 65),
        cloud_max: Microversion::new(2, 60),
    };
    assert!(error.is_too_old());
    assert_eq!(error.cloud(), Some("ferry-lab"));
    assert_eq!(
        error.to_string(),
        "cloud ferry-lab: abort of a queued migration needs compute API 2.65; this cloud offers up to 2.60"
    );
}

#[test]
fn the_labs_server_after_a_reverted_cold_migration() {
    let page: Servers = fixture(include_str!("../fixtures/servers_detail_2.47_lab.json"));
    assert_eq!(page.servers.len(), 1);
    let server = &page.servers[0];
    assert_eq!(server.id, "74cad59e-3b92-4b5d-8c42-c8b6c0dcbfb3");
    assert_eq!(server.name, "nova-idle");
    assert_eq!(server.status, "ACTIVE");
    assert_eq!(server.host.as_deref(), Some("hv2"));
    assert_eq!(server.instance_name.as_deref(), Some("instance-00000002"));
    assert_eq!(server.flavor.name.as_deref(), Some("ferry.small"));
    assert_eq!(server.flavor.memory_mib, Some(256));
    assert_eq!(next_page_query(&page.servers_links), None);

    #[derive(Deserialize)]
    struct Migrations {
        migrations: Vec<Migration>,
    }
    let recorded: Migrations = fixture(include_str!("../fixtures/os_migrations_2.59_lab.json"));
    let migration = &recorded.migrations[0];
    assert_eq!(migration.record.id, 4);
    assert_eq!(migration.server_id, server.id);
    assert_eq!(migration.migration_type, Some(MigrationType::Cold));
    assert_eq!(migration.record.status, "reverted");
    assert_eq!(migration.record.source_compute.as_deref(), Some("hv2"));
    assert_eq!(migration.record.dest_compute.as_deref(), Some("hv1"));
    assert_eq!(migration.record.dest_host.as_deref(), Some("10.77.0.11"));
    assert_eq!(
        migration.record.uuid.as_deref(),
        Some("541bd939-bbca-431b-872c-f8ccb74392df")
    );

    #[derive(Deserialize)]
    struct Actions {
        #[serde(rename = "instanceActions")]
        instance_actions: Vec<InstanceAction>,
    }
    let listed: Actions = fixture(include_str!("../fixtures/instance_actions_2.58_lab.json"));
    let actions: Vec<&str> = listed
        .instance_actions
        .iter()
        .map(|action| action.action.as_str())
        .collect();
    assert_eq!(actions, ["revertResize", "migrate", "create"]);
    assert!(listed
        .instance_actions
        .iter()
        .all(|action| action.events.is_empty()));
    assert_eq!(
        listed.instance_actions[0].updated_at.as_deref(),
        Some("2026-12-02T05:19:05.000000")
    );

    #[derive(Deserialize)]
    struct Shown {
        #[serde(rename = "instanceAction")]
        instance_action: InstanceAction,
    }
    let shown: Shown = fixture(include_str!("../fixtures/instance_action_2.84_lab.json"));
    let revert = shown.instance_action;
    assert_eq!(
        revert.request_id,
        "req-bfea71ee-07c5-49b8-9064-105effe55e36"
    );
    let events: Vec<(&str, Option<&str>, Option<&str>)> = revert
        .events
        .iter()
        .map(|event| {
            (
                event.event.as_str(),
                event.result.as_deref(),
                event.host.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("compute_finish_revert_resize", Some("Success"), Some("hv2")),
            ("compute_revert_resize", Some("Success"), Some("hv1")),
        ]
    );
    assert_eq!(revert.failed_events().count(), 0);
}
