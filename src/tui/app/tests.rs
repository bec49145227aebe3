//! Unit tests of the app: keys and inventory events in, selection, sort and filter out.

use super::*;
use crate::inventory::sample;
use crate::model::domain::DomainRunState;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn app() -> App {
    App::new(
        sample::inventory(3, 4, SystemTime::UNIX_EPOCH),
        SystemTime::UNIX_EPOCH,
    )
}

fn type_keys(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle_key(key(KeyCode::Char(c)));
    }
}

fn names(app: &App) -> Vec<String> {
    app.visible_instances()
        .iter()
        .map(|i| i.name.clone())
        .collect()
}

#[test]
fn all_hosts_row_lists_every_instance_then_j_selects_a_host() {
    let mut app = app();
    assert_eq!(app.visible_instances().len(), 12);
    assert!(app.handle_key(key(KeyCode::Char('j'))));
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv1");
    assert_eq!(
        names(&app),
        ["vm-00000", "vm-00001", "vm-00002", "vm-00003"]
    );
    app.handle_key(key(KeyCode::Down));
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv2");
    app.handle_key(key(KeyCode::Char('G')));
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv3");
    assert!(!app.handle_key(key(KeyCode::Down)), "already at the bottom");
    app.handle_key(key(KeyCode::Char('k')));
    app.handle_key(key(KeyCode::Char('g')));
    assert!(app.selected_host().is_none());
}

#[test]
fn tab_moves_between_panes_and_cursor_follows_the_focus() {
    let mut app = app();
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Instances);
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Down));
    assert_eq!(app.selected_instance().unwrap().name, "vm-00002");
    assert_eq!(app.host_cursor(), 0);
    app.handle_key(key(KeyCode::BackTab));
    assert_eq!(app.focus, Pane::Hosts);
    app.handle_key(key(KeyCode::PageDown));
    assert_eq!(app.host_cursor(), 3, "page down stops at the last host");
}

#[test]
fn filter_substring_regex_and_escape() {
    let mut app = app();
    app.handle_key(key(KeyCode::Char('/')));
    assert!(app.filter.editing);
    type_keys(&mut app, "VM-0001");
    assert_eq!(names(&app), ["vm-00010", "vm-00011"]);
    app.handle_key(key(KeyCode::Enter));
    assert!(!app.filter.editing);
    assert!(
        !app.quit,
        "q typed into the filter does not quit, and after Enter it is a key again"
    );
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.visible_instances().len(), 12);

    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "~0000[13]$");
    assert_eq!(names(&app), ["vm-00001", "vm-00003"]);
    // A half-typed regex keeps the last good list and says what is wrong.
    type_keys(&mut app, "(");
    assert!(app.filter.error.as_deref().unwrap().contains("regex"));
    assert_eq!(names(&app), ["vm-00001", "vm-00003"]);
    app.handle_key(key(KeyCode::Backspace));
    assert!(app.filter.error.is_none());
    app.handle_key(key(KeyCode::Esc));
    assert!(!app.filter.editing && !app.filter.is_active());
}

#[test]
fn q_in_the_filter_is_text_but_ctrl_c_always_quits() {
    let mut app = app();
    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "q");
    assert!(!app.quit);
    assert_eq!(app.filter.text, "q");
    app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);

    let mut app = app_fresh();
    app.handle_key(key(KeyCode::Char('q')));
    assert!(app.quit);
}

fn app_fresh() -> App {
    app()
}

#[test]
fn sort_cycles_per_pane_and_reverses() {
    let mut app = app();
    app.handle_key(key(KeyCode::Tab));
    app.handle_key(key(KeyCode::Char('s')));
    assert_eq!(app.instance_sort, InstanceSort::Host);
    app.handle_key(key(KeyCode::Char('s')));
    assert_eq!(app.instance_sort, InstanceSort::State);
    let first = app.visible_instances()[0].state;
    assert_eq!(first, DomainRunState::Paused, "troubles first");
    app.handle_key(key(KeyCode::Char('s')));
    assert_eq!(app.instance_sort, InstanceSort::Memory);
    let memory: Vec<u64> = app
        .visible_instances()
        .iter()
        .map(|i| i.memory_bytes)
        .collect();
    assert!(memory.windows(2).all(|w| w[0] >= w[1]), "largest first");
    app.handle_key(key(KeyCode::Char('S')));
    let memory: Vec<u64> = app
        .visible_instances()
        .iter()
        .map(|i| i.memory_bytes)
        .collect();
    assert!(memory.windows(2).all(|w| w[0] <= w[1]), "reversed");

    app.handle_key(key(KeyCode::BackTab));
    app.handle_key(key(KeyCode::Char('s')));
    assert_eq!(app.host_sort, HostSort::Name);
}

#[test]
fn overlays_open_and_esc_backs_out_one_level() {
    let mut app = app();
    app.handle_key(key(KeyCode::Char('?')));
    assert_eq!(app.overlay, Some(Overlay::Help));
    // j scrolls the help; it never reaches the lists under it.
    app.handle_key(key(KeyCode::Char('j')));
    assert_eq!(app.help_scroll, 1);
    assert_eq!(
        app.host_cursor(),
        0,
        "keys under the help are not for the lists"
    );
    assert!(
        !app.handle_key(key(KeyCode::Char('s'))),
        "other keys under the help are ignored"
    );
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.overlay, None);
    app.handle_key(key(KeyCode::Char('j')));
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(app.overlay, Some(Overlay::Details));
    app.handle_key(key(KeyCode::Esc));
    app.handle_key(key(KeyCode::Tab));
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.focus, Pane::Hosts);
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.host_cursor(), 0);
    assert!(
        !app.handle_key(key(KeyCode::Esc)),
        "nothing left to back out of"
    );
    assert!(!app.quit);
}

#[test]
fn cursor_is_clamped_when_instances_vanish() {
    let mut app = app();
    app.handle_key(key(KeyCode::Tab));
    app.handle_key(key(KeyCode::End));
    assert_eq!(app.instance_cursor(), 11);
    let host = app.inventory.hosts[2].name.clone();
    app.apply_inventory(InventoryEvent::Refreshed {
        host,
        facts: sample::host_facts("hv3"),
        domains: vec![],
        at: SystemTime::UNIX_EPOCH,
        took: std::time::Duration::ZERO,
    });
    assert_eq!(app.instance_cursor(), 7);
}

/// hv1 holds vm-00000..03, hv2 vm-00004..07, hv3 vm-00008..11; `indices` are sample
/// domain numbers, so each keeps its UUID across refreshes.
fn refresh(app: &mut App, host: &str, indices: &[usize]) {
    let domains = indices
        .iter()
        .map(|&n| sample::domain(&format!("vm-{n:05}"), n))
        .collect();
    refresh_with(app, host, sample::host_facts(host), domains);
}

fn refresh_with(
    app: &mut App,
    host: &str,
    facts: crate::model::domain::HostFacts,
    domains: Vec<crate::model::domain::DomainFacts>,
) {
    app.apply_inventory(InventoryEvent::Refreshed {
        host: HostName::parse(host).unwrap(),
        facts,
        domains,
        at: SystemTime::UNIX_EPOCH,
        took: std::time::Duration::ZERO,
    });
}

fn selected(app: &App) -> String {
    app.selected_instance().unwrap().name.clone()
}

/// The selection and the highlighted row are one and the same.
fn assert_cursor_on_selection(app: &App) {
    let row = app.visible_instances()[app.instance_cursor()].clone();
    assert_eq!(
        Some(InstanceKey::of(&row)),
        app.selected_instance_key(),
        "highlighted row {} is not the selection",
        row.name
    );
    if let Some(host) = app.selected_host() {
        assert_eq!(
            app.sorted_hosts()[app.host_cursor() - 1].name,
            host.name,
            "highlighted host row is not the selected host"
        );
    } else {
        assert_eq!(app.host_cursor(), 0);
    }
}

/// Instances pane, all hosts, vm-00005 (hv2) selected.
fn app_on_vm5() -> App {
    let mut app = app();
    app.handle_key(key(KeyCode::Tab));
    type_keys(&mut app, "jjjjj");
    assert_eq!(selected(&app), "vm-00005");
    app
}

#[test]
fn a_refresh_adding_an_instance_above_keeps_the_selection_on_the_same_instance() {
    let mut app = app_on_vm5();
    let before = app.selected_instance_key().unwrap();
    let mut domains: Vec<_> = (0..4)
        .map(|n| sample::domain(&format!("vm-{n:05}"), n))
        .collect();
    domains.push(sample::domain("vm-00000a", 100));
    refresh_with(&mut app, "hv1", sample::host_facts("hv1"), domains);
    assert_eq!(
        app.visible_instances()[5].name,
        "vm-00004",
        "rows moved down"
    );
    assert_eq!(app.selected_instance_key().unwrap(), before);
    assert_eq!(app.instance_cursor(), 6);
    assert_cursor_on_selection(&app);
}

#[test]
fn a_refresh_removing_the_selected_instance_moves_to_its_neighbour_only() {
    let mut app = app_on_vm5();
    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "vm");
    app.handle_key(key(KeyCode::Enter));
    // Removed, and at the same time one added above: the neighbour is the next in sort
    // order (vm-00006), not whatever slid into row 5.
    let mut domains: Vec<_> = [0, 1, 2, 3]
        .iter()
        .map(|&n| sample::domain(&format!("vm-{n:05}"), n))
        .collect();
    domains.push(sample::domain("vm-00000a", 100));
    refresh_with(&mut app, "hv1", sample::host_facts("hv1"), domains);
    refresh(&mut app, "hv2", &[4, 6, 7]);
    assert_eq!(selected(&app), "vm-00006");
    assert_cursor_on_selection(&app);
    assert_eq!(app.filter.text, "vm", "nothing else changes");
    assert_eq!(app.focus, Pane::Instances);

    // The last row vanishing: its neighbour is the row above.
    app.handle_key(key(KeyCode::End));
    assert_eq!(selected(&app), "vm-00011");
    refresh(&mut app, "hv3", &[8, 9, 10]);
    assert_eq!(selected(&app), "vm-00010");
    assert_cursor_on_selection(&app);

    // Every instance gone: nothing selected, and no panic.
    for host in ["hv1", "hv2", "hv3"] {
        refresh(&mut app, host, &[]);
    }
    assert!(app.selected_instance().is_none());
    assert_eq!(app.instance_cursor(), 0);
    refresh(&mut app, "hv2", &[4, 5]);
    assert_eq!(
        selected(&app),
        "vm-00004",
        "the first to appear is selected"
    );
}

#[test]
fn a_sort_change_keeps_the_selection() {
    let mut app = app_on_vm5();
    let before = app.selected_instance_key().unwrap();
    for keys in ["s", "s", "S", "s", "s", "S", "s"] {
        type_keys(&mut app, keys);
        assert_eq!(app.selected_instance_key().unwrap(), before, "after {keys}");
        assert_cursor_on_selection(&app);
    }
    assert_eq!(app.instance_sort, InstanceSort::Name);
}

#[test]
fn a_filter_that_hides_the_selection_picks_the_first_match_and_clearing_it_restores() {
    let mut app = app_on_vm5();
    // A filter the selection still matches does not move it.
    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "vm-0000");
    assert_eq!(selected(&app), "vm-00005");
    assert_cursor_on_selection(&app);
    // One that hides it: the first match, as before.
    app.handle_key(key(KeyCode::Esc));
    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "vm-0001");
    assert_eq!(names(&app), ["vm-00010", "vm-00011"]);
    assert_eq!(selected(&app), "vm-00010");
    // Backspacing until it matches again brings it back.
    app.handle_key(key(KeyCode::Backspace));
    assert_eq!(selected(&app), "vm-00005");
    assert_cursor_on_selection(&app);

    // Hidden, then the filter cleared by Esc outside the filter line.
    type_keys(&mut app, "1");
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(selected(&app), "vm-00010");
    app.handle_key(key(KeyCode::Esc));
    assert!(!app.filter.is_active());
    assert_eq!(selected(&app), "vm-00005");
    assert_cursor_on_selection(&app);

    // Moving while filtered is a new choice: clearing the filter keeps it.
    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "vm-0001");
    app.handle_key(key(KeyCode::Enter));
    app.handle_key(key(KeyCode::Char('j')));
    assert_eq!(selected(&app), "vm-00011");
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(selected(&app), "vm-00011");
    assert_cursor_on_selection(&app);
}

#[test]
fn a_refresh_never_pulls_the_selection_back_to_a_hidden_instance() {
    let mut app = app_on_vm5();
    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "vm-0001");
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(selected(&app), "vm-00010");
    // vm-00005 comes to match the filter through a refresh, not an edit: the operator's
    // row stays where it is.
    let mut domains: Vec<_> = [4, 6, 7]
        .iter()
        .map(|&n| sample::domain(&format!("vm-{n:05}"), n))
        .collect();
    domains.push(sample::domain("vm-00015", 5));
    refresh_with(&mut app, "hv2", sample::host_facts("hv2"), domains);
    assert_eq!(names(&app), ["vm-00010", "vm-00011", "vm-00015"]);
    assert_eq!(selected(&app), "vm-00010");
    assert_cursor_on_selection(&app);
}

#[test]
fn selected_instance_is_never_another_one_on_the_same_row() {
    let mut app = app_on_vm5();
    // Even if the inventory is changed behind the app's back.
    let extra = Instance::from_domain(
        &HostName::parse("hv1").unwrap(),
        sample::domain("vm-00000a", 100),
        &[],
    );
    app.inventory.hosts[0].instances.push(extra);
    assert_eq!(app.visible_instances()[5].name, "vm-00004");
    assert_eq!(selected(&app), "vm-00005");
    app.inventory.hosts[1]
        .instances
        .retain(|i| i.name != "vm-00005");
    assert!(app.selected_instance().is_none());
}

#[test]
fn host_selection_survives_reordering_sort_and_filter() {
    let mut app = app();
    type_keys(&mut app, "jj");
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv2");
    type_keys(&mut app, "sss");
    assert_eq!(app.host_sort, HostSort::MemoryFree);
    // hv3 gains free memory: it moves above hv2 in this sort.
    let mut facts = sample::host_facts("hv3");
    facts.memory_free_bytes = 30 << 30;
    refresh_with(&mut app, "hv3", facts, vec![]);
    assert_eq!(app.sorted_hosts()[0].name.as_str(), "hv3");
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv2");
    assert_eq!(app.host_cursor(), 3);
    // A state sort, with hv3 unreachable: it goes first.
    type_keys(&mut app, "ss");
    assert_eq!(app.host_sort, HostSort::Name);
    app.handle_key(key(KeyCode::Char('s')));
    app.apply_inventory(InventoryEvent::Unreachable {
        host: HostName::parse("hv3").unwrap(),
        error: "connection refused".into(),
        at: SystemTime::UNIX_EPOCH,
        retry_in: std::time::Duration::from_secs(1),
    });
    assert_eq!(app.sorted_hosts()[0].name.as_str(), "hv3");
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv2");
    assert_eq!(app.host_cursor(), 3);
    // The filter is about instances: the host stays.
    app.handle_key(key(KeyCode::Char('/')));
    type_keys(&mut app, "nothing matches this");
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv2");
    assert!(app.selected_instance().is_none());
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv2");
    assert_eq!(selected(&app), "vm-00004");
    assert_cursor_on_selection(&app);
}

#[test]
fn a_host_that_leaves_the_inventory_hands_over_to_its_neighbour() {
    let mut app = app();
    type_keys(&mut app, "jj");
    app.handle_key(key(KeyCode::Tab));
    type_keys(&mut app, "jj");
    assert_eq!(selected(&app), "vm-00006");
    let mut inventory = app.inventory.clone();
    inventory.hosts.retain(|h| h.name.as_str() != "hv2");
    app.replace_inventory(inventory);
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv3");
    assert_eq!(selected(&app), "vm-00008", "another host: from its top");
    assert_cursor_on_selection(&app);
    assert_eq!(app.focus, Pane::Instances, "nothing else changes");

    let mut inventory = app.inventory.clone();
    inventory.hosts.pop();
    app.replace_inventory(inventory);
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv1");
    assert_cursor_on_selection(&app);

    // A host unchanged by the new inventory keeps its instance too.
    app.replace_inventory(sample::inventory(3, 4, SystemTime::UNIX_EPOCH));
    type_keys(&mut app, "jj");
    assert_eq!(selected(&app), "vm-00002");
    app.replace_inventory(sample::inventory(3, 4, SystemTime::UNIX_EPOCH));
    assert_eq!(app.selected_host().unwrap().name.as_str(), "hv1");
    assert_eq!(selected(&app), "vm-00002");
}
