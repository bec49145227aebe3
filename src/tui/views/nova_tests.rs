//! Snapshots of the inventory screen with a cloud configured: Nova's hypervisors and servers
//! beside the libvirt rows of the same machines, each with its backend.

use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::engine::live::MigrationUpdate;
use crate::engine::nova::live::{NovaLiveUpdate, NovaRecordReading};
use crate::engine::nova::NovaMigrationPlan;
use crate::engine::service::nova::{NovaEvent, NovaMoveKind, NovaRequest, NovaVerdicts};
use crate::inventory::nova::sample as nova_sample;
use crate::inventory::{sample, Backend, CloudInventory, InventoryEvent};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::state::instances::InstanceKey;
use crate::tui::state::migrations::{MigrationChange, MigrationEvent};
use crate::tui::test_support::{adaptive_run_events, at, press};
use crate::tui::theme::Theme;

/// Three libvirt hosts of two domains each, and cloud ferry-lab with hv1..hv3 (hv1's compute
/// disabled for a drain), `nova-idle` on hv2 and `nova-busy` migrating from hv3.
fn app_with_a_cloud() -> App {
    let mut inventory = sample::inventory(3, 2, at(0));
    inventory.clouds.push(CloudInventory::new(
        &nova_sample::cloud_entry("ferry-lab"),
        at(0),
    ));
    inventory.apply(InventoryEvent::CloudRefreshed {
        cloud: "ferry-lab".into(),
        reading: nova_sample::reading(
            3,
            &[
                ("nova-idle", "hv2", "ACTIVE", None),
                ("nova-busy", "hv3", "MIGRATING", Some("migrating")),
            ],
        ),
        at: at(10),
        took: Duration::from_millis(180),
    });
    App::new(inventory, at(120))
}

fn render(app: &App, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| super::draw(frame, app, &Theme::default()))
        .unwrap();
    terminal.backend().clone()
}

fn select_server(app: &mut App, name: &str) {
    press(app, "\t");
    let key = InstanceKey::of(
        app.inventory
            .instances()
            .find(|i| i.name == name)
            .expect("server listed"),
    );
    assert!(app.select_instance(&key));
}

#[test]
fn nova_rows_beside_libvirt_rows_120x32() {
    insta::assert_snapshot!(render(&app_with_a_cloud(), 120, 32));
}

#[test]
fn details_of_a_nova_hypervisor_show_its_disabled_service_and_reason() {
    let mut app = app_with_a_cloud();
    // all, hv1..hv3 (libvirt), the cloud's row, then Nova's hv1.
    press(&mut app, "jjjjj");
    let selected = app.selected_host().unwrap();
    assert_eq!(
        (selected.backend.clone(), selected.name.as_str()),
        (Backend::nova("ferry-lab"), "hv1")
    );
    press(&mut app, "\n");
    insta::assert_snapshot!(render(&app, 100, 30));
}

#[test]
fn details_of_a_nova_server_show_task_state_flavor_project_and_domain() {
    let mut app = app_with_a_cloud();
    select_server(&mut app, "nova-busy");
    press(&mut app, "\n");
    insta::assert_snapshot!(render(&app, 100, 30));
}

#[test]
fn a_cloud_that_cannot_be_read_shows_the_doors_message_on_its_row() {
    let mut app = app_with_a_cloud();
    app.apply_inventory(InventoryEvent::CloudUnreachable {
        cloud: "ferry-lab".into(),
        error: "cloud ferry-lab: log in to Keystone at http://10.77.0.10:5000/v3/auth/tokens: \
                credentials refused: check the password / application credential in \
                /var/lib/ferry-lab/clouds.yaml"
            .into(),
        at: at(100),
        retry_in: Duration::from_secs(5),
    });
    insta::assert_snapshot!(render(&app, 120, 32));
}

#[test]
fn selecting_novas_hv2_lists_its_servers_not_the_libvirt_domains() {
    let mut app = app_with_a_cloud();
    press(&mut app, "jjjjjj");
    let host = app.selected_host().unwrap();
    assert_eq!(host.name, HostName::parse("hv2").unwrap());
    assert!(host.backend.is_nova());
    let names: Vec<&str> = app
        .visible_instances()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["nova-idle"]);
}

#[test]
fn m_on_a_nova_server_opens_its_nova_dialog_and_launches_through_nova() {
    let mut app = app_with_a_cloud();
    select_server(&mut app, "nova-idle");
    app.take_actions();
    press(&mut app, "m");
    assert!(
        app.launch.is_none(),
        "never the libvirt dialog for a Nova row"
    );
    let dialog = app.nova_launch.clone().expect("the Nova dialog");
    assert_eq!(dialog.source, "hv2");
    let actions = app.take_actions();
    let [Action::Nova(NovaRequest::Preflight {
        request_id, server, ..
    })] = actions.as_slice()
    else {
        panic!("the dialog asks the cloud first: {actions:?}");
    };
    assert_eq!(server.cloud, "ferry-lab");
    // The lab's cloud as it answered with hv1's compute service disabled for a drain.
    assert!(app.on_nova_verdicts(
        *request_id,
        Ok(NovaVerdicts {
            server_refusal: None,
            hosts: vec![
                (
                    "hv1".into(),
                    Some("hv1: its compute service is disabled (drain): enable it or choose another host".into()),
                ),
                ("hv3".into(), None),
            ],
            scheduler: Ok(()),
            flavors: vec![("ferry.small".into(), 256, 1), ("ferry.medium".into(), 512, 1)],
        })
    ));
    insta::assert_snapshot!(render(&app, 120, 32));
    press(&mut app, "j\n");
    assert!(
        app.nova_launch.is_some(),
        "hv1 is refused: the dialog stays"
    );
    assert!(app.take_actions().is_empty(), "nothing is asked of Nova");
    press(&mut app, "j\n");
    assert!(app.nova_launch.is_none());
    let actions = app.take_actions();
    let [Action::Nova(NovaRequest::Launch {
        kind: NovaMoveKind::Live,
        destination: Some(destination),
        ..
    })] = actions.as_slice()
    else {
        panic!("a live launch to hv3: {actions:?}");
    };
    assert_eq!(destination, "hv3");
}

/// A live migration Nova carries out, fed with the libvirt figures of a recorded lab run
/// (lab-busy-512mib-adaptive) beside Nova's record of it.
fn app_with_a_nova_migration() -> App {
    let mut app = app_with_a_cloud();
    let id = MigrationId(41);
    let mut feed = |change: NovaEvent, seconds: u64| {
        app.on_migration_event(MigrationEvent {
            id,
            at: at(seconds),
            change: MigrationChange::Nova(change),
        });
    };
    feed(
        NovaEvent::Started {
            plan: Box::new(NovaMigrationPlan {
                backend: "nova".into(),
                cloud: "ferry-lab".into(),
                server_id: "5f0c2d0e-0000-4000-8000-000000000001".into(),
                server_name: "nova-busy".into(),
                nova_migration_id: Some(12),
                migration_type: "live-migration".into(),
                requested_host: None,
                flavor: Some("ferry.medium".into()),
            }),
            kind: MigrationKind::Live,
            source: "hv3".into(),
            destination: Some("hv1".into()),
            started_at: at(100),
            found: false,
        },
        100,
    );
    feed(
        NovaEvent::Live(NovaLiveUpdate::Nova(NovaRecordReading {
            status: "running".into(),
            updated_at: Some("2026-12-02T08:40:05.000000".into()),
            memory_total_bytes: Some(537_919_488),
            memory_remaining_bytes: Some(201_326_592),
            disk_total_bytes: Some(0),
            disk_remaining_bytes: Some(0),
            read_at_ms: 6_000,
        })),
        106,
    );
    for event in adaptive_run_events(MigrationId(1), 14) {
        if let MigrationChange::Engine(MigrationUpdate::Progress(progress)) = event.change {
            feed(NovaEvent::Live(NovaLiveUpdate::Libvirt(progress)), 107);
        }
    }
    app.now = at(110);
    app
}

#[test]
fn a_nova_migration_shows_novas_record_beside_libvirts_reading_120x32() {
    let mut app = app_with_a_nova_migration();
    press(&mut app, "2");
    insta::assert_snapshot!("nova_migration_row_120x32", render(&app, 120, 32));
    press(&mut app, "\n");
    insta::assert_snapshot!("nova_migration_detail_120x32", render(&app, 120, 32));
}

#[test]
fn a_on_a_nova_migration_asks_nova_to_abort_it() {
    let mut app = app_with_a_nova_migration();
    press(&mut app, "2");
    app.take_actions();
    press(&mut app, "a");
    assert!(app.prompt.is_some(), "abort asks first");
    press(&mut app, "y");
    let actions = app.take_actions();
    let [Action::Nova(NovaRequest::LiveCommand {
        id,
        server,
        abort: true,
    })] = actions.as_slice()
    else {
        panic!("an abort through Nova: {actions:?}");
    };
    assert_eq!(*id, MigrationId(41));
    assert_eq!(server.server_name, "nova-busy");
    // Bandwidth is Nova's setting: ferry refuses it with why, and nothing is sent.
    press(&mut app, "b");
    assert!(app.prompt.is_none());
    assert!(app.take_actions().is_empty());
    let flash = app.flash.clone().unwrap_or_default();
    assert!(flash.contains("carried out by Nova"), "{flash}");
}
