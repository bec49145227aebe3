//! The Nova door against the lab's real Nova (`ferry lab up --nova`: Nova 26 "Zed" in
//! namespace ferry-nova, cloud `ferry-lab` in /var/lib/ferry-lab/clouds.yaml). What the door
//! lists is compared with what the API answers to a plain `curl` made here, outside ferry's
//! code. Read-only: nothing in the cloud is changed. Run as root, under the lab lock:
//! `flock /tmp/ferry-lab.lock cargo test --test lab_nova_door -- --test-threads=1`.
//!
//! As root they bring the lab's cloud up when it is not (`ferry lab up --nova`); not as root
//! they are skipped, unless FERRY_REQUIRE_LAB=1 (as `.ci/run` sets), where they fail.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::nova::{curl, PlainCloud};
use ferry::nova::cloud_config::{AuthMethod, Secret};
use ferry::nova::{load_cloud, CloudProfile, CloudSelection, NovaClient};
use ferry::runtime::wait;
use serde_json::{json, Value};

const LAB_CLOUDS_YAML: &str = "/var/lib/ferry-lab/clouds.yaml";

/// The lab's cloud (brought up first if it is down), or `None` (after saying why) when lab
/// tests are skipped here.
fn lab_cloud_or_skip(test: &str, cloud: &str) -> Option<CloudProfile> {
    common::nova::nova_lab_or_skip(test)?;
    let selection = CloudSelection {
        name: Some(cloud.to_string()),
        clouds_yaml: Some(PathBuf::from(LAB_CLOUDS_YAML)),
    };
    Some(load_cloud(&selection).unwrap_or_else(|error| panic!("{test}: {error}")))
}

fn texts(items: &Value, fields: &[&str]) -> BTreeSet<Vec<String>> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            fields
                .iter()
                .map(|field| match item.pointer(field) {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_door_lists_what_novas_api_lists() {
    let Some(profile) = lab_cloud_or_skip("the_door_lists_what_novas_api_lists", "ferry-lab")
    else {
        return;
    };
    let plain = PlainCloud::log_in(&profile.name);
    let client = wait(NovaClient::connect(profile)).expect("connect to the lab's cloud");
    assert!(wait(client.role_names()).contains(&"admin".to_string()));

    let document = plain.get_url(&plain.compute, "compute 2.1");
    let versions = client.compute_versions();
    assert_eq!(versions.max.to_string(), document["version"]["version"]);
    assert_eq!(versions.min.to_string(), document["version"]["min_version"]);
    assert_eq!(wait(client.compute_endpoint()), plain.compute);

    // Hypervisors: the lab's Nova offers 2.93, so the door reads 2.88 and asks Placement.
    let hypervisors = wait(client.hypervisors()).expect("list hypervisors");
    let listed = plain.compute_at("/os-hypervisors/detail", "2.88");
    let expected = texts(
        &listed["hypervisors"],
        &[
            "/id",
            "/hypervisor_hostname",
            "/state",
            "/status",
            "/host_ip",
            "/service/host",
        ],
    );
    let seen: BTreeSet<Vec<String>> = hypervisors
        .iter()
        .map(|hypervisor| {
            vec![
                hypervisor.id.clone(),
                hypervisor.hypervisor_hostname.clone(),
                format!("{:?}", hypervisor.state).to_lowercase(),
                format!("{:?}", hypervisor.status).to_lowercase(),
                hypervisor.host_ip.clone().unwrap_or_default(),
                hypervisor
                    .service
                    .as_ref()
                    .map(|service| service.host.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    assert_eq!(seen, expected);
    assert!(!hypervisors.is_empty(), "the lab has compute hosts");
    for hypervisor in &hypervisors {
        let capacity = hypervisor
            .capacity
            .expect("each lab hypervisor has a resource provider");
        let provider = format!("{}/resource_providers/{}", plain.placement, hypervisor.id);
        let inventories = plain.get_url(&format!("{provider}/inventories"), "placement 1.0");
        let usages = plain.get_url(&format!("{provider}/usages"), "placement 1.0");
        let memory = &inventories["inventories"]["MEMORY_MB"];
        let total = memory["total"].as_u64().unwrap();
        let reserved = memory["reserved"].as_u64().unwrap();
        let ratio = memory["allocation_ratio"].as_f64().unwrap();
        assert_eq!(
            capacity.memory_mib_total, total,
            "{}",
            hypervisor.hypervisor_hostname
        );
        assert_eq!(
            capacity.memory_mib_usable,
            ((total - reserved) as f64 * ratio).floor() as u64
        );
        assert_eq!(
            capacity.memory_mib_used,
            usages["usages"]["MEMORY_MB"].as_u64().unwrap_or(0)
        );
        let vcpus = &inventories["inventories"]["VCPU"];
        assert_eq!(capacity.vcpus_total, vcpus["total"].as_u64().unwrap());
        assert_eq!(
            capacity.vcpus_used,
            usages["usages"]["VCPU"].as_u64().unwrap_or(0)
        );
    }

    let services = wait(client.compute_services()).expect("list compute services");
    let listed = plain.compute_at("/os-services?binary=nova-compute", "2.53");
    let expected = texts(
        &listed["services"],
        &["/id", "/host", "/status", "/state", "/zone"],
    );
    let seen: BTreeSet<Vec<String>> = services
        .iter()
        .map(|service| {
            vec![
                service.id.clone(),
                service.host.clone(),
                format!("{:?}", service.status).to_lowercase(),
                format!("{:?}", service.state).to_lowercase(),
                service.zone.clone().unwrap_or_default(),
            ]
        })
        .collect();
    assert_eq!(seen, expected);

    let servers = wait(client.servers_all_projects()).expect("list servers");
    let listed = plain.compute_at("/servers/detail?all_tenants=1", "2.47");
    let expected = texts(
        &listed["servers"],
        &[
            "/id",
            "/name",
            "/status",
            "/OS-EXT-SRV-ATTR:host",
            "/OS-EXT-SRV-ATTR:instance_name",
            "/flavor/original_name",
            "/tenant_id",
        ],
    );
    let seen: BTreeSet<Vec<String>> = servers
        .iter()
        .map(|server| {
            vec![
                server.id.clone(),
                server.name.clone(),
                server.status.clone(),
                server.host.clone().unwrap_or_default(),
                server.instance_name.clone().unwrap_or_default(),
                server.flavor.name.clone().unwrap_or_default(),
                server.tenant_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    assert_eq!(seen, expected);

    // Each server as `server(id)` shows it, and its instance actions.
    for server in &servers {
        let shown = wait(client.server(&server.id)).expect("show a listed server");
        assert_eq!(shown.id, server.id);
        let actions = wait(client.instance_actions(&server.id)).expect("list instance actions");
        let listed = plain.compute_at(
            &format!("/servers/{}/os-instance-actions", server.id),
            "2.58",
        );
        let expected = texts(&listed["instanceActions"], &["/request_id", "/action"]);
        let seen: BTreeSet<Vec<String>> = actions
            .iter()
            .map(|action| vec![action.request_id.clone(), action.action.clone()])
            .collect();
        assert_eq!(seen, expected);
        if let Some(newest) = actions.first() {
            let detail = wait(client.instance_action(&server.id, &newest.request_id))
                .expect("show an instance action");
            let shown = plain.compute_at(
                &format!(
                    "/servers/{}/os-instance-actions/{}",
                    server.id, newest.request_id
                ),
                "2.84",
            );
            let expected = texts(&shown["instanceAction"]["events"], &["/event", "/result"]);
            let seen: BTreeSet<Vec<String>> = detail
                .events
                .iter()
                .map(|event| {
                    vec![
                        event.event.clone(),
                        event.result.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            assert_eq!(seen, expected);
        }
    }

    let flavors = wait(client.flavors()).expect("list flavors");
    let listed = plain.compute_at("/flavors/detail?is_public=None", "2.1");
    let expected = texts(&listed["flavors"], &["/id", "/name", "/ram", "/vcpus"]);
    let seen: BTreeSet<Vec<String>> = flavors
        .iter()
        .map(|flavor| {
            vec![
                flavor.id.clone(),
                flavor.name.clone(),
                flavor.memory_mib.to_string(),
                flavor.vcpus.to_string(),
            ]
        })
        .collect();
    assert_eq!(seen, expected);

    let migrations = wait(client.os_migrations(&Default::default())).expect("list migrations");
    let listed = plain.compute_at("/os-migrations", "2.59");
    let expected = texts(&listed["migrations"], &["/id", "/status", "/instance_uuid"]);
    let seen: BTreeSet<Vec<String>> = migrations
        .iter()
        .map(|migration| {
            vec![
                migration.record.id.to_string(),
                migration.record.status.clone(),
                migration.server_id.clone(),
            ]
        })
        .collect();
    assert_eq!(seen, expected);

    eprintln!(
        "compared with curl: {} hypervisors, {} services, {} servers, {} flavors, {} migrations",
        hypervisors.len(),
        services.len(),
        servers.len(),
        flavors.len(),
        migrations.len()
    );

    // A server that does not exist: Nova's own 404 message, named for the call.
    let error = wait(client.server("00000000-0000-0000-0000-000000000000")).unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert!(
        error.to_string().contains(
            "cloud ferry-lab: show server 00000000-0000-0000-0000-000000000000: not found"
        ),
        "{error}"
    );
}

#[test]
fn a_bad_password_and_a_missing_admin_role_give_their_clear_errors() {
    let test = "a_bad_password_and_a_missing_admin_role_give_their_clear_errors";
    let Some(mut profile) = lab_cloud_or_skip(test, "ferry-lab") else {
        return;
    };
    let AuthMethod::Password { password, .. } = &mut profile.auth else {
        panic!("the lab's cloud logs in with a password");
    };
    *password = Secret::new("not-the-password");
    let error = wait(NovaClient::connect(profile)).unwrap_err();
    assert!(error.is_bad_credentials(), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with("cloud ferry-lab: log in to Keystone at http://"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "check the password / application credential in {LAB_CLOUDS_YAML}"
        )),
        "{text}"
    );

    // The lab's member cloud: a user without the admin role.
    let Some(member) = lab_cloud_or_skip(test, "ferry-lab-member") else {
        return;
    };
    let client = wait(NovaClient::connect(member)).expect("a member can log in");
    assert!(!wait(client.role_names()).contains(&"admin".to_string()));
    let error = wait(client.hypervisors()).unwrap_err();
    assert!(error.is_forbidden(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("cloud ferry-lab-member: list hypervisors: forbidden"),
        "{text}"
    );
    assert!(text.contains("needs the admin role"), "{text}");
    assert!(
        text.contains("os_compute_api:os-hypervisors:list-detail"),
        "{text}"
    );
}

/// Enables the service again however the test ends, so the lab keeps its shape.
struct ReEnableService<'a> {
    plain: &'a PlainCloud,
    service_id: String,
}

impl Drop for ReEnableService<'_> {
    fn drop(&mut self) {
        let headers = [
            format!("X-Auth-Token: {}", self.plain.token),
            "OpenStack-API-Version: compute 2.53".to_string(),
        ];
        let url = format!("{}/os-services/{}", self.plain.compute, self.service_id);
        let (status, body) = curl("PUT", &url, &headers, Some(&json!({"status": "enabled"})));
        assert_eq!(status, 200, "re-enable: {}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn a_compute_service_is_disabled_with_its_reason_and_enabled_again() {
    let test = "a_compute_service_is_disabled_with_its_reason_and_enabled_again";
    let Some(profile) = lab_cloud_or_skip(test, "ferry-lab") else {
        return;
    };
    let plain = PlainCloud::log_in(&profile.name);
    let client = wait(NovaClient::connect(profile)).expect("connect to the lab's cloud");
    let services = wait(client.compute_services()).expect("list compute services");
    let service = services
        .iter()
        .max_by(|a, b| a.host.cmp(&b.host))
        .expect("the lab has compute services")
        .clone();
    assert_eq!(
        format!("{:?}", service.status),
        "Enabled",
        "the lab's services start enabled: {service:?}"
    );
    let _restore = ReEnableService {
        plain: &plain,
        service_id: service.id.clone(),
    };
    let reason = "ferry lab_nova_door: drain rehearsal";
    let disabled = wait(client.set_service_enabled(&service, false, Some(reason)))
        .expect("disable the service");
    assert_eq!(format!("{:?}", disabled.status), "Disabled");
    let listed = plain.compute_at(
        &format!("/os-services?binary=nova-compute&host={}", service.host),
        "2.53",
    );
    assert_eq!(listed["services"][0]["status"], "disabled", "{listed}");
    assert_eq!(listed["services"][0]["disabled_reason"], reason, "{listed}");

    let enabled = wait(client.set_service_enabled(&disabled, true, None)).expect("enable it again");
    assert_eq!(format!("{:?}", enabled.status), "Enabled");
    assert_eq!(enabled.disabled_reason, None);
    let listed = plain.compute_at(
        &format!("/os-services?binary=nova-compute&host={}", service.host),
        "2.53",
    );
    assert_eq!(listed["services"][0]["status"], "enabled", "{listed}");
}
