//! `ferry resume`'s decisions on unfinished Nova cold migrations and resizes, on the states
//! and records the lab's Nova 26 showed (a cold migration of a server from hv1 to hv2, its
//! statuses pre-migrating → migrating → post-migrating → finished, then confirmed or reverted).

use super::*;
use crate::engine::nova::cold::judge::{made_before, resumed_migration};
use crate::engine::nova::cold::tests::server;
use crate::engine::nova::cold::{judge_resume, ColdRequest, ResumeVerdict};
use crate::nova::types::Migration;

/// One os-migrations record as Nova 26 lists it at 2.59.
fn migration(id: u64, status: &str, source: &str, created_at: &str) -> Migration {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "uuid": format!("0c1d2e3f-0000-4000-8000-00000000000{id}"),
        "status": status,
        "source_compute": source,
        "source_node": source,
        "dest_compute": "hv2",
        "dest_node": "hv2",
        "dest_host": "10.77.0.12",
        "created_at": created_at,
        "updated_at": created_at,
        "instance_uuid": "255036e1-07ec-40cc-ba7c-5d1b6ea78cbc",
        "migration_type": "migration",
        "old_instance_type_id": 1,
        "new_instance_type_id": 1,
    }))
    .unwrap()
}

#[test]
fn a_move_nova_still_carries_out_is_watched_again() {
    for (look, status) in [
        (
            server("RESIZE", Some("resize_prep"), "hv1"),
            "pre-migrating",
        ),
        (
            server("RESIZE", Some("resize_migrating"), "hv1"),
            "migrating",
        ),
        (
            server("RESIZE", Some("resize_migrated"), "hv1"),
            "post-migrating",
        ),
        (server("RESIZE", Some("resize_finish"), "hv2"), "finished"),
    ] {
        assert_eq!(
            judge_resume(&look, Some(status), "hv1"),
            ResumeVerdict::StillMoving,
            "{look:?} {status}"
        );
    }
    // Between two of Nova's saves: settled on the destination, not yet waiting for confirm.
    assert_eq!(
        judge_resume(&server("ACTIVE", None, "hv2"), Some("finished"), "hv1"),
        ResumeVerdict::StillMoving
    );
}

#[test]
fn a_server_in_verify_resize_is_recorded_awaiting_confirm_where_nova_put_it() {
    assert_eq!(
        judge_resume(
            &server("VERIFY_RESIZE", None, "hv2"),
            Some("finished"),
            "hv1"
        ),
        ResumeVerdict::AwaitingConfirm { host: "hv2".into() }
    );
}

#[test]
fn novas_own_confirm_revert_and_failure_are_recorded_as_nova_says() {
    assert_eq!(
        judge_resume(&server("ACTIVE", None, "hv2"), Some("confirmed"), "hv1"),
        ResumeVerdict::ConfirmedByNova { host: "hv2".into() }
    );
    assert_eq!(
        judge_resume(&server("ACTIVE", None, "hv1"), Some("reverted"), "hv1"),
        ResumeVerdict::RevertedInNova { host: "hv1".into() }
    );
    // A revert still under way is not a verdict yet.
    assert_eq!(
        judge_resume(
            &server("REVERT_RESIZE", Some("resize_reverting"), "hv2"),
            Some("reverted"),
            "hv1"
        ),
        ResumeVerdict::StillMoving
    );
    for status in ["error", "failed"] {
        assert_eq!(
            judge_resume(&server("ACTIVE", None, "hv1"), Some(status), "hv1"),
            ResumeVerdict::Failed,
            "{status}"
        );
    }
    assert_eq!(
        judge_resume(&server("ERROR", None, "hv1"), Some("migrating"), "hv1"),
        ResumeVerdict::Failed
    );
    // Nova lists no migration of the move and the server is settled on its source with no
    // task: Nova dropped it.
    assert_eq!(
        judge_resume(&server("ACTIVE", None, "hv1"), None, "hv1"),
        ResumeVerdict::Failed
    );
}

#[test]
fn novas_times_are_compared_with_ferrys_in_utc_with_an_allowance_for_the_clocks() {
    // 2026-12-02 07:51:42Z
    let started = 1_796_197_902_000;
    assert_eq!(
        crate::engine::history::format_unix_ms_utc(started),
        "2026-12-02 07:51:42Z"
    );
    let before = Some("2026-12-02T07:49:41.000000");
    let within_allowance = Some("2026-12-02T07:49:43.000000");
    let after = Some("2026-12-02T07:51:45.000000");
    assert!(made_before(before, started, 120_000));
    assert!(!made_before(within_allowance, started, 120_000));
    assert!(!made_before(after, started, 120_000));
    assert!(made_before(after, started + 3_600_000, 0));
    // What does not read as a time is not known to be before.
    for odd in [None, Some(""), Some("yesterday"), Some("2026-12-02")] {
        assert!(!made_before(odd, started, 0), "{odd:?}");
    }
    assert!(made_before(Some("2026-12-02 07:00:00"), started, 0));
}

#[test]
fn the_records_migration_is_the_one_it_holds_or_the_newest_nova_made_since_it_started() {
    let started = 1_796_197_902_000; // 2026-12-02 07:51:42Z
    let migrations = vec![
        migration(3, "confirmed", "hv3", "2026-12-01T10:00:00.000000"),
        migration(5, "migrating", "hv1", "2026-12-02T07:51:43.000000"),
        migration(4, "reverted", "hv1", "2026-12-02T06:00:00.000000"),
    ];
    let (found, others) = resumed_migration(&migrations, Some(4), "hv1", started, 120_000);
    assert_eq!(found.map(|m| m.record.id), Some(4));
    assert_eq!(others.into_iter().collect::<Vec<_>>(), vec![3, 5]);

    let (found, others) = resumed_migration(&migrations, None, "hv1", started, 120_000);
    assert_eq!(found.map(|m| m.record.status.as_str()), Some("migrating"));
    assert_eq!(others.into_iter().collect::<Vec<_>>(), vec![3, 4]);

    // Nothing Nova made since the record started: no migration, every id is an earlier one.
    let old = &migrations[..1];
    let (found, others) = resumed_migration(old, None, "hv3", started, 120_000);
    assert!(found.is_none());
    assert_eq!(others.into_iter().collect::<Vec<_>>(), vec![3]);
    // The id the record holds, gone from Nova's list: no migration to judge by.
    let (found, _) = resumed_migration(&migrations, Some(9), "hv1", started, 120_000);
    assert!(found.is_none());
    // A migration from another host is not the record's.
    let elsewhere = vec![migration(
        6,
        "migrating",
        "hv3",
        "2026-12-02T07:52:00.000000",
    )];
    assert!(resumed_migration(&elsewhere, None, "hv1", started, 120_000)
        .0
        .is_none());
}

#[test]
fn resume_takes_only_nova_cold_records_of_the_cloud_left_without_an_outcome() {
    let record = |id: i64,
                  kind: MigrationKind,
                  outcome: Option<OutcomeKind>,
                  backend: &str,
                  cloud: &str,
                  migration_type: &str| MigrationRecord {
        id: MigrationId(id),
        kind,
        instance_name: "ferry-cold-resume".into(),
        instance_uuid: "8d3a9f47-1c2b-4e5f-9a6b-7c8d9e0f1a2b".into(),
        source_host: "hv1".into(),
        destination_host: "hv2".into(),
        policy: "nova".into(),
        plan: serde_json::json!({
            "backend": backend, "cloud": cloud,
            "server_id": "8d3a9f47-1c2b-4e5f-9a6b-7c8d9e0f1a2b",
            "server_name": "ferry-cold-resume", "nova_migration_id": id,
            "migration_type": migration_type, "requested_host": "hv2"}),
        started_at_unix_ms: id * 1000,
        finished_at_unix_ms: None,
        outcome,
        outcome_detail: String::new(),
        downtime_ms: None,
        total_time_ms: None,
        bytes_transferred: None,
    };
    let cold = MigrationKind::Cold;
    let awaiting = Some(OutcomeKind::AwaitingConfirm);
    let records = vec![
        record(1, cold, None, "nova", "ferry-lab", "migration"),
        record(2, cold, awaiting, "nova", "ferry-lab", "migration"),
        record(3, cold, None, "nova", "ferry-lab", "resize"),
        record(4, cold, None, "nova", "other-cloud", "migration"),
        record(5, cold, None, "libvirt", "ferry-lab", "migration"),
        record(
            6,
            MigrationKind::Live,
            None,
            "nova",
            "ferry-lab",
            "live-migration",
        ),
    ];
    let taken: Vec<(i64, String, String)> = unfinished_watches(records, "ferry-lab")
        .into_iter()
        .map(|(id, plan, source)| (id.0, plan.migration_type, source))
        .collect();
    assert_eq!(
        taken,
        vec![
            (1, "migration".to_string(), "hv1".to_string()),
            (3, "resize".to_string(), "hv1".to_string()),
        ]
    );
}

/// The TUI runs the cold path's futures as tasks on the shared runtime: they must be Send.
/// Checked by the compiler; never called.
#[allow(dead_code)]
fn the_cold_paths_futures_can_run_as_tasks(session: CloudSession, plan: NovaMigrationPlan) {
    tokio::spawn(async move {
        let mut report = |_: &WatchLine| {};
        let request = ColdRequest::Migrate { to: None };
        let _ = super::super::launch(&session, "x", &request, &mut report).await;
        let _ = super::super::settle(&session, "x", true, &mut report).await;
        let _ = resume_unfinished(&session, MigrationId(1), &plan, "hv1", &mut report).await;
    });
}
