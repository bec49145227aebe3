//! The cold dialog's resize, end to end through `App`: typing a size asks again with it,
//! offers the guest's own host (a resize in place), and Enter launches with the size.

use crate::engine::cold::resize::{resize_checks, Resize};
use crate::engine::cold::NewSize;
use crate::libvirt::guest_size::DefinedSize;
use crate::model::HostName;

use super::action::{Action, PrecheckRequest};
use super::app::App;
use super::test_support::{app_with_events, precheck_report, press};

fn hv(name: &str) -> HostName {
    HostName::parse(name).unwrap()
}

/// The newest precheck request among the actions (each typed digit asks again).
fn newest_precheck_request(app: &mut App) -> PrecheckRequest {
    app.take_actions()
        .into_iter()
        .filter_map(|action| match action {
            Action::RequestPrechecks(request) => Some(request),
            _ => None,
        })
        .next_back()
        .expect("a precheck request")
}

/// Every destination passes; the own host as the engine judges a resize in place.
fn answer_all(app: &mut App, request: &PrecheckRequest) {
    let instance = app.selected_instance().unwrap().clone();
    let in_place = Resize {
        from: DefinedSize {
            vcpus: instance.vcpus,
            memory_kib: instance.memory_bytes >> 10,
        },
        to: DefinedSize {
            vcpus: 4,
            memory_kib: instance.memory_bytes >> 10,
        },
        previous_definition_xml: Some("<domain/>".into()),
    };
    let reports = request
        .destinations
        .iter()
        .map(|host| {
            let report = precheck_report(&instance, host.as_str(), 20 << 30);
            let report = if host == &instance.host {
                resize_checks(report, host.as_str(), &in_place, Some(8))
            } else {
                report
            };
            (host.clone(), Ok(report))
        })
        .collect();
    assert!(app.on_precheck_reports(request.request_id, reports));
}

#[test]
fn a_size_typed_in_the_cold_dialog_offers_the_own_host_and_launches_a_resize() {
    let mut app = app_with_events(Vec::new());
    app.cold_migration_available = true;
    press(&mut app, "\tjc");
    let first = newest_precheck_request(&mut app);
    let own = app.selected_instance().unwrap().host.clone();
    assert_eq!(own, hv("hv1"));
    assert!(!first.destinations.contains(&own), "no size, no own host");
    assert_eq!(first.new_size, None);

    // Options: down to "new vCPUs", type 4.
    press(&mut app, "\tjjj4");
    let resized = newest_precheck_request(&mut app);
    assert_eq!(
        resized.new_size,
        Some(NewSize {
            vcpus: Some(4),
            memory_mib: None
        })
    );
    assert_eq!(resized.destinations.last(), Some(&own), "listed last");
    assert_ne!(
        resized.request_id, first.request_id,
        "the old verdicts are stale"
    );
    answer_all(&mut app, &resized);

    // auto never picks the own host: it is the operator's choice.
    let dialog = app.launch.as_ref().unwrap();
    assert_ne!(dialog.auto_destination(&app.inventory).unwrap().host, own);

    // Back to the destinations, the last row (the own host), Enter.
    press(&mut app, "\tjjjj\n");
    let actions = app.take_actions();
    let [Action::LaunchColdMigration(cold)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(cold.destination, own);
    assert_eq!(cold.cold_options().new_size.unwrap().vcpus, Some(4));
    assert!(
        app.flash
            .as_deref()
            .unwrap()
            .contains("resize vm-00001 in place on hv1 to 4 vCPUs"),
        "{:?}",
        app.flash
    );
}

#[test]
fn an_erased_size_takes_the_own_host_away_and_a_zero_is_refused() {
    let mut app = app_with_events(Vec::new());
    app.cold_migration_available = true;
    press(&mut app, "\tjc\tjjj2");
    let request = newest_precheck_request(&mut app);
    assert_eq!(
        request.destinations.len(),
        4,
        "hv2, hv3, hv4 and the own host"
    );
    press(&mut app, "\u{8}");
    let request = newest_precheck_request(&mut app);
    assert_eq!(request.new_size, None);
    assert!(!request.destinations.contains(&hv("hv1")));
    assert_eq!(app.launch.as_ref().unwrap().candidates.len(), 3);

    press(&mut app, "0");
    let request = newest_precheck_request(&mut app);
    answer_all(&mut app, &request);
    press(&mut app, "\tj\n");
    assert!(app.take_actions().is_empty(), "0 vCPUs launches nothing");
    assert!(
        app.flash.as_deref().unwrap().contains("1 to 4096 vCPUs"),
        "{:?}",
        app.flash
    );
}
