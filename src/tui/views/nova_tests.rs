//! Snapshots of the inventory screen with a cloud configured: Nova's hypervisors and servers
//! beside the libvirt rows of the same machines, each with its backend.

use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::inventory::nova::sample as nova_sample;
use crate::inventory::{sample, Backend, CloudInventory, InventoryEvent};
use crate::model::HostName;
use crate::tui::app::App;
use crate::tui::state::instances::InstanceKey;
use crate::tui::test_support::{at, press};
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
fn a_nova_server_is_not_offered_to_the_libvirt_launch_dialog() {
    let mut app = app_with_a_cloud();
    select_server(&mut app, "nova-idle");
    press(&mut app, "m");
    assert!(app.launch.is_none(), "no dialog for a Nova row");
    let flash = app.flash.clone().unwrap_or_default();
    assert!(
        flash.contains("nova-idle is a server of cloud ferry-lab"),
        "{flash}"
    );
}
