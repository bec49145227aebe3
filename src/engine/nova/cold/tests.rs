//! The watch's decisions on server states and Nova records as the lab's Nova 26 showed them
//! during a cold migration, a resize, a confirm, a revert and a refusal.

use super::*;
use crate::engine::history::MigrationRecord;
use crate::nova::types::{InstanceAction, InstanceActionEvent, ServerFlavor};

pub(super) fn server(status: &str, task: Option<&str>, host: &str) -> Server {
    Server {
        id: "255036e1-07ec-40cc-ba7c-5d1b6ea78cbc".into(),
        name: "nova-idle".into(),
        status: status.into(),
        task_state: task.map(str::to_string),
        vm_state: None,
        power_state: None,
        host: Some(host.into()),
        hypervisor_hostname: Some(host.into()),
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

#[test]
fn a_launch_waits_through_novas_tasks_and_ends_in_verify_resize_on_the_destination() {
    // The sequence the lab showed for `migrate` to hv3 of a server on hv2.
    let steps = [
        (
            server("RESIZE", Some("resize_prep"), "hv2"),
            Some("pre-migrating"),
        ),
        (
            server("RESIZE", Some("resize_migrating"), "hv2"),
            Some("migrating"),
        ),
        (
            server("RESIZE", Some("resize_migrated"), "hv2"),
            Some("post-migrating"),
        ),
        (
            server("RESIZE", Some("resize_finish"), "hv3"),
            Some("finished"),
        ),
    ];
    for (look, status) in &steps {
        assert_eq!(
            judge_launch(look, *status, "hv2"),
            LaunchVerdict::Waiting,
            "{look:?}"
        );
    }
    assert_eq!(
        judge_launch(
            &server("VERIFY_RESIZE", None, "hv3"),
            Some("finished"),
            "hv2"
        ),
        LaunchVerdict::AwaitingConfirm { host: "hv3".into() }
    );
    // A resize may stay on its own host when the cloud allows it.
    assert_eq!(
        judge_launch(
            &server("VERIFY_RESIZE", None, "hv2"),
            Some("finished"),
            "hv2"
        ),
        LaunchVerdict::AwaitingConfirm { host: "hv2".into() }
    );
}

#[test]
fn a_launch_fails_on_novas_error_status_or_a_server_back_on_its_source_with_no_task() {
    let on_source = server("ACTIVE", None, "hv2");
    assert_eq!(
        judge_launch(&on_source, Some("error"), "hv2"),
        LaunchVerdict::Failed
    );
    assert_eq!(judge_launch(&on_source, None, "hv2"), LaunchVerdict::Failed);
    assert_eq!(
        judge_launch(
            &server("SHUTOFF", None, "hv2"),
            Some("pre-migrating"),
            "hv2"
        ),
        LaunchVerdict::Failed
    );
    assert_eq!(
        judge_launch(
            &server("RESIZE", Some("resize_prep"), "hv2"),
            Some("failed"),
            "hv2"
        ),
        LaunchVerdict::Failed
    );
    assert_eq!(
        judge_launch(&server("ERROR", None, "hv3"), Some("finished"), "hv2"),
        LaunchVerdict::Failed
    );
    // Nova's own confirmation (resize_confirm_window) is not a failure.
    assert_eq!(
        judge_launch(&server("ACTIVE", None, "hv3"), Some("confirmed"), "hv2"),
        LaunchVerdict::ConfirmedByNova { host: "hv3".into() }
    );
}

#[test]
fn a_confirm_or_revert_is_done_only_settled_on_the_expected_host() {
    // Right after confirmResize's 204 the server still shows VERIFY_RESIZE.
    let verify = server("VERIFY_RESIZE", None, "hv3");
    assert_eq!(
        judge_settle(&verify, Some("confirming"), "hv3"),
        SettleVerdict::Waiting
    );
    assert_eq!(
        judge_settle(
            &server("REVERT_RESIZE", Some("resize_reverting"), "hv3"),
            None,
            "hv2"
        ),
        SettleVerdict::Waiting
    );
    assert_eq!(
        judge_settle(&server("ACTIVE", None, "hv3"), Some("confirmed"), "hv3"),
        SettleVerdict::Done
    );
    assert_eq!(
        judge_settle(&server("SHUTOFF", None, "hv2"), Some("reverted"), "hv2"),
        SettleVerdict::Done
    );
    let elsewhere = judge_settle(&server("ACTIVE", None, "hv3"), Some("reverted"), "hv2");
    assert_eq!(
        elsewhere,
        SettleVerdict::Failed("nova-idle is ACTIVE on hv3, not on hv2".into())
    );
    assert!(matches!(
        judge_settle(&verify, Some("error"), "hv3"),
        SettleVerdict::Failed(why) if why.contains("is error")
    ));
}

#[test]
fn novas_reason_comes_from_the_failed_events_and_the_fault() {
    let action = InstanceAction {
        action: "migrate".into(),
        request_id: "req-1".into(),
        server_id: None,
        message: Some("Error".into()),
        start_time: None,
        updated_at: None,
        user_id: None,
        project_id: None,
        events: vec![
            InstanceActionEvent {
                event: "conductor_migrate_server".into(),
                result: Some("Error".into()),
                start_time: None,
                finish_time: None,
                host: None,
                details: Some("No valid host was found. ".into()),
            },
            InstanceActionEvent {
                event: "compute_prep_resize".into(),
                result: Some("Success".into()),
                start_time: None,
                finish_time: None,
                host: None,
                details: None,
            },
        ],
    };
    let fault = ServerFault {
        code: Some(500),
        message: "No valid host was found.".into(),
        created: None,
    };
    assert_eq!(
        failure_reason(Some(&action), Some(&fault), Some("error")),
        "conductor_migrate_server Error: No valid host was found.; migration status error"
    );
    let other = ServerFault {
        message: "disk copy failed".into(),
        ..fault
    };
    assert_eq!(
        failure_reason(None, Some(&other), None),
        "fault: disk copy failed"
    );
    assert!(failure_reason(None, None, None).contains("no reason"));
}

#[test]
fn a_resize_to_the_flavor_it_has_or_a_disabled_one_is_refused() {
    let flavor = |name: &str, disabled: bool| Flavor {
        id: format!("id-{name}"),
        name: name.into(),
        vcpus: 2,
        memory_mib: 768,
        root_disk_gib: 1,
        ephemeral_gib: 0,
        swap_mib: 0,
        is_public: true,
        disabled,
        description: None,
    };
    let server = server("ACTIVE", None, "hv2");
    assert_eq!(flavor_refusal(&server, &flavor("ferry.large", false)), None);
    assert!(flavor_refusal(&server, &flavor("ferry.small", false))
        .unwrap()
        .contains("already has flavor ferry.small"));
    assert!(flavor_refusal(&server, &flavor("ferry.large", true))
        .unwrap()
        .contains("disabled"));
}

#[test]
fn confirm_finds_the_servers_last_nova_record_awaiting_confirm() {
    let record =
        |id: i64, server_id: &str, outcome: Option<OutcomeKind>, backend: &str| MigrationRecord {
            id: MigrationId(id),
            kind: MigrationKind::Cold,
            instance_name: "nova-idle".into(),
            instance_uuid: server_id.into(),
            source_host: "hv2".into(),
            destination_host: "hv3".into(),
            policy: "nova".into(),
            plan: serde_json::json!({
                "backend": backend, "cloud": "ferry-lab", "server_id": server_id,
                "server_name": "nova-idle", "nova_migration_id": id,
                "migration_type": "migration", "requested_host": "hv3"}),
            started_at_unix_ms: id * 1000,
            finished_at_unix_ms: None,
            outcome,
            outcome_detail: String::new(),
            downtime_ms: None,
            total_time_ms: None,
            bytes_transferred: None,
        };
    let awaiting = Some(OutcomeKind::AwaitingConfirm);
    let unfinished = [
        record(1, "server-a", awaiting, "nova"),
        record(2, "server-a", awaiting, "nova"),
        record(3, "server-a", None, "nova"),
        record(4, "server-a", awaiting, "libvirt"),
        record(5, "server-b", awaiting, "nova"),
    ];
    assert_eq!(
        awaiting_record(&unfinished, "server-a").map(|r| r.id),
        Some(MigrationId(2))
    );
    assert_eq!(awaiting_record(&unfinished, "server-c"), None);
}

#[test]
fn a_resize_waiting_for_confirm_must_show_the_flavor_asked_for() {
    let verify = server("VERIFY_RESIZE", None, "hv3");
    assert_eq!(flavor_mismatch(&verify, "ferry.small"), None);
    assert!(flavor_mismatch(&verify, "ferry.large")
        .unwrap()
        .contains("Nova shows flavor ferry.small, not the ferry.large asked for"));
}
