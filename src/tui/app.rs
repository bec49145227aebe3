//! App state and its update: keys, inventory events, migration events and precheck reports go
//! in; views read the result, and the runtime takes the operator's [`Action`]s out.
//! No terminal and no libvirt here, so every behaviour is a unit test over plain data.

use std::cmp::Ordering;
use std::time::SystemTime;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::config::{Config, MigrationDefaults};
use crate::inventory::{Backend, HostEntry, HostState, Instance, Inventory, InventoryEvent};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;
use crate::precheck::PrecheckReport;

use super::action::Action;
use super::keys::{KeyAction, KeyScreen, KeyTable};
pub use super::state::hosts::{HostKey, HostSort};
use super::state::instances::state_rank;
pub use super::state::instances::{FilterState, InstanceKey, InstanceSort, Pane};
use super::state::launch::{DialogOutcome, LaunchDialog};
use super::state::migrations::{Listed, MigrationEvent, MigrationStore, TrackedMigration};
use super::state::nova::NovaQuestion;
use super::state::nova_launch::{NovaDialogOutcome, NovaLaunchDialog};
use super::state::prompt::{
    prompt_for_listed, ColdQuestion, OperatorKey, OperatorPrompt, PromptOutcome,
};
use crate::engine::service::nova::{NovaRequest, NovaVerdicts};

/// The two screens, like tabs: `1` and `2` switch between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Hosts and their instances.
    Inventory,
    /// Queued, running and recent migrations; Enter opens one in detail.
    Migrations,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Details,
}

/// Rows the page keys move by; the real page height is not known to the pure state.
const PAGE_ROWS: usize = 10;

/// What just changed under the selection, which decides where it goes if it is no longer
/// listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A worker event, or a new inventory: a vanished selection goes to its neighbour.
    Inventory,
    /// Sort key or direction: nothing is hidden, only reordered.
    Order,
    /// The operator edited the filter: a hidden selection goes to the first match, and one
    /// hidden earlier comes back as soon as it matches again.
    Filter,
}

#[derive(Debug, Clone)]
pub struct App {
    /// Read it freely; change it only through `apply_inventory` or `replace_inventory`, which
    /// keep the selection on the same host and instance.
    pub inventory: Inventory,
    pub focus: Pane,
    /// The selected host by name and backend; None is the "all hosts" row. The source of
    /// truth: the cursor below is derived from it whenever the list may have changed.
    host_selection: Option<HostKey>,
    /// Row of `host_selection`: 0 is the "all hosts" row; 1.. index `sorted_hosts()`.
    host_cursor: usize,
    /// The selected instance as last seen: its key is the identity, the rest places it among
    /// its neighbours in sort order if it vanishes.
    instance_selection: Option<Instance>,
    /// Row of `instance_selection` in `visible_instances()`.
    instance_cursor: usize,
    /// The selection a filter edit hid; it is selected again when an edit shows it, unless
    /// the operator moved in the meantime.
    hidden_by_filter: Option<InstanceKey>,
    pub host_sort: HostSort,
    pub instance_sort: InstanceSort,
    pub sort_descending: bool,
    pub filter: FilterState,
    pub overlay: Option<Overlay>,
    pub quit: bool,
    /// The clock as of the last tick: views print "3 s ago" from it, so a frame depends only
    /// on state (and snapshot tests can fix it).
    pub now: SystemTime,
    /// A message for the status bar, e.g. a theme file that was refused.
    pub notice: Option<String>,
    pub screen: Screen,
    /// Read it freely; change it only through `on_migration_event`.
    pub migrations: MigrationStore,
    /// The selected migration by id, like the instance selection: it follows the migration
    /// as the list reorders (running ones finish and move down).
    migration_selection: Option<MigrationId>,
    /// Row of `migration_selection` in `migrations.listed()`.
    migration_cursor: usize,
    /// The selected migration is shown in detail instead of the list.
    pub migration_detail: bool,
    pub launch: Option<LaunchDialog>,
    /// The launch dialog of a Nova server (its moves go through Nova).
    pub nova_launch: Option<NovaLaunchDialog>,
    pub prompt: Option<OperatorPrompt>,
    /// A one-off answer to the last key (a refusal, what was sent); the next key clears it.
    pub flash: Option<String>,
    /// Off while ferry cannot cold-migrate (no history to keep the plan confirm and revert
    /// need): `c` then only says so.
    pub cold_migration_available: bool,
    /// First line of the help overlay on screen; the view clamps it.
    pub help_scroll: u16,
    /// Every key of every screen: dispatch, footer and help read it.
    pub keys: KeyTable,
    /// The config's `[migration]`: the launch dialog opens with its values, as the launch
    /// fills in what the dialog does not show from it.
    pub migration_defaults: MigrationDefaults,
    /// What the operator asked for since the runtime last took them.
    actions: Vec<Action>,
    last_precheck_request_id: u64,
}

impl App {
    pub fn new(inventory: Inventory, now: SystemTime) -> App {
        let mut app = App {
            inventory,
            focus: Pane::Hosts,
            host_selection: None,
            host_cursor: 0,
            instance_selection: None,
            instance_cursor: 0,
            hidden_by_filter: None,
            host_sort: HostSort::Config,
            instance_sort: InstanceSort::Name,
            sort_descending: false,
            filter: FilterState::default(),
            overlay: None,
            quit: false,
            now,
            notice: None,
            screen: Screen::Inventory,
            migrations: MigrationStore::default(),
            migration_selection: None,
            migration_cursor: 0,
            migration_detail: false,
            launch: None,
            nova_launch: None,
            prompt: None,
            flash: None,
            cold_migration_available: false,
            help_scroll: 0,
            keys: KeyTable::default(),
            migration_defaults: MigrationDefaults::default(),
            actions: Vec::new(),
            last_precheck_request_id: 0,
        };
        app.reanchor(Change::Inventory);
        app
    }

    /// The config's part of the app: the key table (already checked against the config's
    /// `[keys]`, see [`KeyTable::from_config`]) and the `[migration]` defaults.
    pub fn with_config(mut self, config: &Config, keys: KeyTable) -> App {
        self.keys = keys;
        self.migration_defaults = config.migration.clone();
        self
    }

    /// Folds one event of the queue or the engine in; true if the screen must be redrawn.
    pub fn on_migration_event(&mut self, event: MigrationEvent) -> bool {
        let changed = self.migrations.apply(event);
        if changed {
            self.reanchor_migration();
            self.recheck_prompt();
        }
        changed
    }

    /// Precheck verdicts for the open launch dialog, as they arrive (one host or several at
    /// a time). Reports for an earlier request, or with no dialog open, are dropped.
    pub fn on_precheck_reports(
        &mut self,
        request_id: u64,
        reports: Vec<(HostName, Result<PrecheckReport, String>)>,
    ) -> bool {
        self.launch
            .as_mut()
            .is_some_and(|dialog| dialog.on_precheck_reports(request_id, reports))
    }

    /// What the operator asked for since the last call, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Row of the selected migration in `migrations.listed()`.
    pub fn migration_cursor(&self) -> usize {
        self.migration_cursor
    }

    /// The selected migration if it is a live one.
    pub fn selected_migration(&self) -> Option<&TrackedMigration> {
        self.migration_selection
            .and_then(|id| self.migrations.get(id))
    }

    /// The selected migration, live or cold.
    pub fn selected_listed(&self) -> Option<Listed<'_>> {
        self.migration_selection
            .and_then(|id| self.migrations.get_listed(id))
    }

    /// Keeps the cursor on the selected migration; if it was forgotten, the one now on its
    /// row takes over (and its detail closes: it is another migration).
    fn reanchor_migration(&mut self) {
        let listed = self.migrations.listed();
        let found = self
            .migration_selection
            .and_then(|id| listed.iter().position(|m| m.id() == id));
        if let Some(row) = found {
            self.migration_cursor = row;
            return;
        }
        let row = self.migration_cursor.min(listed.len().saturating_sub(1));
        let selection = listed.get(row).map(|m| m.id());
        if self.migration_selection.is_some() && selection != self.migration_selection {
            self.migration_detail = false;
        }
        self.migration_cursor = row;
        self.migration_selection = selection;
    }

    /// A question asked about a migration that has since changed (finished, or gone into
    /// post-copy) may no longer be answerable: it is withdrawn with the reason.
    fn recheck_prompt(&mut self) {
        let Some(prompt) = &self.prompt else {
            return;
        };
        let still_valid = match self.migrations.get_listed(prompt.id()) {
            Some(migration) => prompt_for_listed(prompt.key(), migration).map(|_| ()),
            None => Err(format!("#{} is no longer listed", prompt.id())),
        };
        if let Err(reason) = still_valid {
            self.prompt = None;
            self.flash = Some(format!("question withdrawn: {reason}"));
        }
    }

    fn next_precheck_request_id(&mut self) -> u64 {
        self.last_precheck_request_id += 1;
        self.last_precheck_request_id
    }

    /// Row of the selected host: 0 is the "all hosts" row, 1.. index `sorted_hosts()`.
    pub fn host_cursor(&self) -> usize {
        self.host_cursor
    }

    /// Row of the selected instance in `visible_instances()`.
    pub fn instance_cursor(&self) -> usize {
        self.instance_cursor
    }

    /// Hosts in display order.
    pub fn sorted_hosts(&self) -> Vec<&HostEntry> {
        // Libvirt hosts in config order, then each cloud's row and its hypervisors.
        let mut hosts: Vec<&HostEntry> = self.inventory.all_hosts().collect();
        let rank = |state: HostState| match state {
            HostState::Unreachable => 0,
            HostState::Slow => 1,
            HostState::Connecting => 2,
            HostState::Up => 3,
        };
        match self.host_sort {
            HostSort::Config => {}
            HostSort::Name => hosts.sort_by(|a, b| a.name.cmp(&b.name)),
            HostSort::State => hosts.sort_by_key(|h| rank(h.state)),
            HostSort::MemoryFree => {
                hosts.sort_by_key(|h| std::cmp::Reverse(h.memory_free_bytes().unwrap_or(0)))
            }
        }
        hosts
    }

    /// The host whose instances are shown, or None for all hosts.
    pub fn selected_host(&self) -> Option<&HostEntry> {
        self.host_selection
            .as_ref()
            .and_then(|key| self.inventory.host_with(&key.backend, &key.name))
    }

    /// Instances of the selected host (or all), filtered and sorted: what the pane lists.
    pub fn visible_instances(&self) -> Vec<&Instance> {
        let matcher = &self.filter.matcher;
        let mut instances: Vec<&Instance> = match self.selected_host() {
            Some(host) => host
                .instances
                .iter()
                .filter(|i| matcher.matches(i))
                .collect(),
            None => self
                .inventory
                .instances()
                .filter(|i| matcher.matches(i))
                .collect(),
        };
        instances.sort_unstable_by(|a, b| self.instance_order(a, b));
        instances
    }

    /// The order of the instances pane, direction included.
    fn instance_order(&self, a: &Instance, b: &Instance) -> Ordering {
        let by_name = |a: &Instance, b: &Instance| a.name.cmp(&b.name);
        let ordering = match self.instance_sort {
            InstanceSort::Name => by_name(a, b).then_with(|| a.host.cmp(&b.host)),
            InstanceSort::Host => a.host.cmp(&b.host).then_with(|| by_name(a, b)),
            InstanceSort::State => state_rank(a.state)
                .cmp(&state_rank(b.state))
                .then_with(|| by_name(a, b)),
            InstanceSort::Memory => b
                .memory_bytes
                .cmp(&a.memory_bytes)
                .then_with(|| by_name(a, b)),
            InstanceSort::Vcpus => b.vcpus.cmp(&a.vcpus).then_with(|| by_name(a, b)),
        };
        if self.sort_descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    /// The instance the operator selected, only if it is still listed: never another one
    /// that happens to sit on the same row.
    pub fn selected_instance(&self) -> Option<&Instance> {
        let key = self.selected_instance_key()?;
        let visible = self.visible_instances();
        match visible.get(self.instance_cursor) {
            Some(instance) if key.is(instance) => Some(*instance),
            _ => visible.into_iter().find(|i| key.is(i)),
        }
    }

    pub fn selected_instance_key(&self) -> Option<InstanceKey> {
        self.instance_selection.as_ref().map(InstanceKey::of)
    }

    /// Selects this instance if it is listed; false (and no change) if not.
    pub fn select_instance(&mut self, key: &InstanceKey) -> bool {
        let visible = self.visible_instances();
        let Some((row, instance)) = visible.iter().enumerate().find(|(_, i)| key.is(i)) else {
            return false;
        };
        let instance = (*instance).clone();
        self.instance_cursor = row;
        self.instance_selection = Some(instance);
        self.hidden_by_filter = None;
        true
    }

    /// Folds an inventory event in; true if the screen must be redrawn.
    pub fn apply_inventory(&mut self, event: InventoryEvent) -> bool {
        let changed = self.inventory.apply(event);
        if changed {
            self.reanchor(Change::Inventory);
        }
        changed
    }

    /// Swaps the whole inventory (say, after the config changed); the selection follows the
    /// same host and instance, or their neighbours if they are gone.
    pub fn replace_inventory(&mut self, inventory: Inventory) {
        self.inventory = inventory;
        self.reanchor(Change::Inventory);
    }

    /// Puts the cursors back on the selected host and instance after the lists changed. An
    /// operator about to act on "the selected instance" must never find the selection moved
    /// to another one because an instance appeared above it or the sort changed. Only when
    /// the selection is no longer listed does it move: to the neighbour now in its place
    /// (previous position in sort order), or, after a filter edit, to the first match.
    fn reanchor(&mut self, change: Change) {
        self.reanchor_host();
        self.reanchor_instance(change);
    }

    fn reanchor_host(&mut self) {
        let hosts = self.sorted_hosts();
        let found = match &self.host_selection {
            None => Some(0),
            Some(key) => hosts.iter().position(|h| key.is(h)).map(|i| i + 1),
        };
        if let Some(row) = found {
            self.host_cursor = row;
            return;
        }
        // The host left the inventory: the host now on its row takes over, and its
        // instances start from the top as after any change of host.
        let row = self.host_cursor.min(hosts.len());
        let name = row.checked_sub(1).map(|i| HostKey::of(hosts[i]));
        self.host_cursor = row;
        self.host_selection = name;
        self.instance_selection = None;
        self.hidden_by_filter = None;
    }

    fn reanchor_instance(&mut self, change: Change) {
        let visible = self.visible_instances();
        let row_of = |key: &InstanceKey| visible.iter().position(|i| key.is(i));
        let restored = match (&self.hidden_by_filter, change) {
            (Some(key), Change::Filter) => row_of(key),
            _ => None,
        };
        let current = self
            .instance_selection
            .as_ref()
            .and_then(|selected| row_of(&InstanceKey::of(selected)));
        let (row, newly_hidden) = match (restored.or(current), &self.instance_selection) {
            (Some(row), _) => (row, None),
            (None, None) => (0, None),
            (None, Some(lost)) => {
                let row = match change {
                    Change::Filter => 0,
                    Change::Inventory | Change::Order => {
                        visible.partition_point(|i| self.instance_order(i, lost) == Ordering::Less)
                    }
                };
                // Still on its host but not matching: remember it, so that the edit that
                // shows it again selects it again.
                let key = InstanceKey::of(lost);
                let in_scope = self
                    .host_selection
                    .as_ref()
                    .is_none_or(|h| h.name == key.host && h.backend == key.backend)
                    && self.inventory.instances().any(|i| key.is(i));
                (row, in_scope.then_some(key))
            }
        };
        let row = row.min(visible.len().saturating_sub(1));
        let selection = visible.get(row).map(|i| (*i).clone());
        if restored.is_some() || !self.filter.is_active() {
            self.hidden_by_filter = None;
        }
        if let Some(key) = newly_hidden {
            self.hidden_by_filter.get_or_insert(key);
        }
        self.instance_cursor = row;
        self.instance_selection = selection;
    }

    /// Handles one key; true if anything changed (the screen is redrawn only then).
    pub fn handle_key(&mut self, key: KeyEvent) -> bool {
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        if control && matches!(key.code, KeyCode::Char('c')) {
            self.quit = true;
            return true;
        }
        let had_flash = self.flash.take().is_some();
        self.route_key(key) || had_flash
    }

    /// The screen whose keys apply now: the innermost thing open.
    pub fn key_screen(&self) -> KeyScreen {
        if self.filter.editing {
            return KeyScreen::Filter;
        }
        match self.overlay {
            Some(Overlay::Help) => return KeyScreen::Help,
            Some(Overlay::Details) => return KeyScreen::Details,
            None => {}
        }
        if self.prompt.is_some() {
            KeyScreen::Prompt
        } else if self.launch.is_some() || self.nova_launch.is_some() {
            KeyScreen::Launch
        } else {
            match self.screen {
                Screen::Inventory => KeyScreen::Inventory,
                Screen::Migrations => KeyScreen::Migrations,
            }
        }
    }

    /// The innermost thing open gets the key: filter line, overlay, operator prompt, launch
    /// dialog, then the screen. The key table says which action the key is there.
    fn route_key(&mut self, key: KeyEvent) -> bool {
        let screen = self.key_screen();
        let action = self.keys.action(screen, &key);
        match screen {
            KeyScreen::Filter => self.handle_filter_key(action, key),
            // The details overlay has no scroll keys in the table: only the help scrolls.
            KeyScreen::Help | KeyScreen::Details => match action {
                Some(KeyAction::Close) => {
                    self.overlay = None;
                    true
                }
                Some(KeyAction::Quit) => {
                    self.quit = true;
                    true
                }
                Some(KeyAction::ScrollDown) => {
                    // The view stops earlier when the help fits; past its last line, never.
                    let last_line = self.keys.help_line_count().saturating_sub(1) as u16;
                    let before = self.help_scroll;
                    self.help_scroll = (self.help_scroll + 1).min(last_line);
                    before != self.help_scroll
                }
                Some(KeyAction::ScrollUp) => {
                    let before = self.help_scroll;
                    self.help_scroll = self.help_scroll.saturating_sub(1);
                    before != self.help_scroll
                }
                _ => false,
            },
            KeyScreen::Prompt => self.handle_prompt_key(action, key),
            KeyScreen::Launch => self.handle_launch_key(action, key),
            KeyScreen::Inventory => self.handle_inventory_key(action),
            KeyScreen::Migrations => self.handle_migrations_key(action),
        }
    }

    fn open_help(&mut self) {
        self.overlay = Some(Overlay::Help);
        self.help_scroll = 0;
    }

    fn handle_inventory_key(&mut self, action: Option<KeyAction>) -> bool {
        let Some(action) = action else {
            return false;
        };
        match action {
            KeyAction::Quit => self.quit = true,
            KeyAction::Help => self.open_help(),
            KeyAction::LiveMigrate => return self.open_launch(MigrationKind::Live),
            KeyAction::ColdMigrate => return self.open_launch(MigrationKind::Cold),
            KeyAction::ShowMigrations => self.screen = Screen::Migrations,
            KeyAction::Details => self.overlay = Some(Overlay::Details),
            KeyAction::SwitchPane | KeyAction::HostsPane | KeyAction::InstancesPane => {
                let wanted = match action {
                    KeyAction::HostsPane => Pane::Hosts,
                    KeyAction::InstancesPane => Pane::Instances,
                    _ if self.focus == Pane::Hosts => Pane::Instances,
                    _ => Pane::Hosts,
                };
                if wanted == self.focus {
                    return false;
                }
                self.focus = wanted;
            }
            KeyAction::MoveUp => return self.move_cursor(-1),
            KeyAction::MoveDown => return self.move_cursor(1),
            KeyAction::PageUp => return self.move_cursor(-(PAGE_ROWS as isize)),
            KeyAction::PageDown => return self.move_cursor(PAGE_ROWS as isize),
            KeyAction::First => return self.move_cursor(isize::MIN / 2),
            KeyAction::Last => return self.move_cursor(isize::MAX / 2),
            KeyAction::Filter => {
                self.filter.editing = true;
                // Typing a filter is about instances: show them.
                self.focus = Pane::Instances;
            }
            KeyAction::Sort => {
                match self.focus {
                    Pane::Hosts => self.host_sort = self.host_sort.next(),
                    Pane::Instances => self.instance_sort = self.instance_sort.next(),
                }
                self.reanchor(Change::Order);
            }
            KeyAction::ReverseSort => {
                self.sort_descending = !self.sort_descending;
                self.reanchor(Change::Order);
            }
            KeyAction::Back => {
                // Back out one level: filter first, then the host selection.
                if self.filter.is_active() || !self.filter.text.is_empty() {
                    self.filter = FilterState::default();
                    self.reanchor(Change::Filter);
                } else if self.focus == Pane::Instances {
                    self.focus = Pane::Hosts;
                } else if self.host_selection.is_some() {
                    self.select_host(None);
                } else if self.notice.is_some() {
                    self.notice = None;
                } else {
                    return false;
                }
            }
            _ => return false,
        }
        true
    }

    fn open_launch(&mut self, kind: MigrationKind) -> bool {
        let what = match kind {
            MigrationKind::Live => "live-migrate",
            MigrationKind::Cold => "cold-migrate",
        };
        if self.focus != Pane::Instances {
            self.flash = Some(format!(
                "to {what}, select an instance in the instances pane first (tab)"
            ));
            return true;
        }
        let Some(instance) = self.selected_instance().cloned() else {
            self.flash = Some(format!("no instance selected to {what}"));
            return true;
        };
        if let Backend::Nova { cloud } = &instance.backend {
            // A Nova row is the server as Nova has it: it moves only through Nova, so its
            // dialog offers the cloud's compute hosts and Nova's moves.
            let request_id = self.next_precheck_request_id();
            let cold = kind == MigrationKind::Cold;
            match NovaLaunchDialog::open(cloud, &instance, cold, request_id) {
                Some(dialog) => {
                    self.actions.push(dialog.preflight_request());
                    self.nova_launch = Some(dialog);
                }
                None => {
                    self.flash = Some(format!(
                        "{}: Nova's record of it has not been read yet; try again in a moment",
                        instance.name
                    ))
                }
            }
            return true;
        }
        let request_id = self.next_precheck_request_id();
        let dialog = LaunchDialog::open(
            kind,
            self.cold_migration_available,
            &instance,
            &self.inventory,
            request_id,
            &self.migration_defaults,
        );
        if let Some(request) = dialog.precheck_request() {
            self.actions.push(Action::RequestPrechecks(request));
        }
        self.launch = Some(dialog);
        true
    }

    fn handle_launch_key(&mut self, action: Option<KeyAction>, key: KeyEvent) -> bool {
        if action == Some(KeyAction::Help) {
            self.open_help();
            return true;
        }
        if self.nova_launch.is_some() {
            return self.handle_nova_launch_key(action);
        }
        let Some(dialog) = self.launch.as_mut() else {
            return false;
        };
        match dialog.handle_key(action, key.code, &self.inventory) {
            DialogOutcome::Unchanged => return false,
            DialogOutcome::Changed => {}
            DialogOutcome::Flash(reason) => self.flash = Some(reason),
            DialogOutcome::Close => self.launch = None,
            DialogOutcome::RecheckNeeded => {
                self.last_precheck_request_id += 1;
                dialog.restart_prechecks(self.last_precheck_request_id);
                if let Some(request) = dialog.precheck_request() {
                    self.actions.push(Action::RequestPrechecks(request));
                }
            }
            DialogOutcome::Confirmed(action) => {
                let summary = dialog
                    .summary(&self.inventory)
                    .unwrap_or_else(|reason| reason);
                self.flash = Some(format!("requested: {summary}; 2 shows the migrations"));
                self.actions.push(*action);
                self.launch = None;
            }
        }
        true
    }

    fn handle_nova_launch_key(&mut self, action: Option<KeyAction>) -> bool {
        let next_request_id = self.last_precheck_request_id + 1;
        let Some(dialog) = self.nova_launch.as_mut() else {
            return false;
        };
        match dialog.handle_key(action) {
            NovaDialogOutcome::Unchanged => return false,
            NovaDialogOutcome::Changed => {}
            NovaDialogOutcome::Flash(reason) => self.flash = Some(reason),
            NovaDialogOutcome::Close => self.nova_launch = None,
            NovaDialogOutcome::RecheckNeeded => {
                self.last_precheck_request_id = next_request_id;
                dialog.restart(next_request_id);
                self.actions.push(dialog.preflight_request());
            }
            NovaDialogOutcome::Confirmed(action) => {
                self.flash = Some(format!(
                    "asked Nova: {}; its row shows once Nova has accepted it (2 shows the \
                     migrations)",
                    dialog.summary()
                ));
                self.actions.push(*action);
                self.nova_launch = None;
            }
        }
        true
    }

    /// The engine's pre-flight of a Nova server, for the dialog that asked.
    pub fn on_nova_verdicts(
        &mut self,
        request_id: u64,
        verdicts: Result<NovaVerdicts, String>,
    ) -> bool {
        self.nova_launch
            .as_mut()
            .is_some_and(|dialog| dialog.on_verdicts(request_id, verdicts))
    }

    fn handle_prompt_key(&mut self, action: Option<KeyAction>, key: KeyEvent) -> bool {
        let Some(prompt) = self.prompt.as_mut() else {
            return false;
        };
        match prompt.handle_key(action, key.code) {
            PromptOutcome::Unchanged => false,
            PromptOutcome::Changed => true,
            PromptOutcome::Flash(reason) => {
                self.flash = Some(reason);
                true
            }
            PromptOutcome::Cancelled => {
                self.prompt = None;
                true
            }
            PromptOutcome::Send(command) => {
                let (id, words) = (prompt.id(), command_words(&command));
                self.send_answer(id, words, Action::Operator { id, command });
                true
            }
            PromptOutcome::ColdYes(question) => {
                let id = prompt.id();
                let (words, action) = match question {
                    ColdQuestion::Abort => ("abort", Action::AbortCold { id }),
                    ColdQuestion::Confirm => ("confirm", Action::SettleCold { id, keep: true }),
                    ColdQuestion::Revert => ("revert", Action::SettleCold { id, keep: false }),
                };
                self.send_answer(id, words.to_string(), action);
                true
            }
            PromptOutcome::NovaYes(question) => {
                let id = prompt.id();
                let Some(server) = self.migrations.get_nova(id).map(|m| m.server()) else {
                    self.prompt = None;
                    self.flash = Some(format!("#{id} is no longer listed"));
                    return true;
                };
                let (words, request) = match question {
                    NovaQuestion::Abort => (
                        "abort",
                        NovaRequest::LiveCommand {
                            id,
                            server,
                            abort: true,
                        },
                    ),
                    NovaQuestion::ForceComplete => (
                        "force-complete",
                        NovaRequest::LiveCommand {
                            id,
                            server,
                            abort: false,
                        },
                    ),
                    NovaQuestion::Confirm => (
                        "confirm",
                        NovaRequest::Settle {
                            id,
                            server,
                            keep: true,
                        },
                    ),
                    NovaQuestion::Revert => (
                        "revert",
                        NovaRequest::Settle {
                            id,
                            server,
                            keep: false,
                        },
                    ),
                };
                self.send_answer(id, format!("{words} (through Nova)"), Action::Nova(request));
                true
            }
        }
    }

    /// Sends what an answered prompt asked for, unless the migration has moved on while the
    /// question was open (into post-copy, to its end): it is asked again before anything goes.
    fn send_answer(&mut self, id: MigrationId, words: String, action: Action) {
        let Some(prompt) = self.prompt.take() else {
            return;
        };
        let verdict = match self.migrations.get_listed(id) {
            Some(migration) => prompt_for_listed(prompt.key(), migration).map(|_| migration),
            None => Err(format!("#{id} is no longer listed")),
        };
        match verdict {
            Ok(migration) => {
                self.flash = Some(format!(
                    "sent {words} to #{id} {}; its answer shows in the detail",
                    migration.instance_name()
                ));
                self.actions.push(action);
            }
            Err(reason) => self.flash = Some(reason),
        }
    }

    fn handle_migrations_key(&mut self, action: Option<KeyAction>) -> bool {
        let Some(action) = action else {
            return false;
        };
        if let Some(operator_key) = OperatorKey::from_action(action) {
            match self
                .selected_listed()
                .map(|m| prompt_for_listed(operator_key, m))
            {
                Some(Ok(prompt)) => self.prompt = Some(prompt),
                Some(Err(reason)) => self.flash = Some(reason),
                None => self.flash = Some("no migration selected".to_string()),
            }
            return true;
        }
        match action {
            KeyAction::Quit => self.quit = true,
            KeyAction::Help => self.open_help(),
            KeyAction::ShowInventory => {
                self.screen = Screen::Inventory;
                self.migration_detail = false;
            }
            KeyAction::Back if self.migration_detail => self.migration_detail = false,
            KeyAction::Back => self.screen = Screen::Inventory,
            _ if self.migration_detail => match action {
                KeyAction::ShowMigrations => self.migration_detail = false,
                _ => return false,
            },
            KeyAction::Open => {
                if self.selected_listed().is_none() {
                    return false;
                }
                self.migration_detail = true;
            }
            KeyAction::MoveUp => return self.move_migration_cursor(-1),
            KeyAction::MoveDown => return self.move_migration_cursor(1),
            KeyAction::PageUp => return self.move_migration_cursor(-(PAGE_ROWS as isize)),
            KeyAction::PageDown => return self.move_migration_cursor(PAGE_ROWS as isize),
            KeyAction::First => return self.move_migration_cursor(isize::MIN / 2),
            KeyAction::Last => return self.move_migration_cursor(isize::MAX / 2),
            _ => return false,
        }
        true
    }

    fn move_migration_cursor(&mut self, delta: isize) -> bool {
        let listed = self.migrations.listed();
        let last = listed.len().saturating_sub(1) as isize;
        let cursor = self.migration_cursor;
        let moved = (cursor as isize).saturating_add(delta).clamp(0, last) as usize;
        if moved == cursor || listed.is_empty() {
            return false;
        }
        self.migration_selection = listed.get(moved).map(|m| m.id());
        self.migration_cursor = moved;
        true
    }

    fn handle_filter_key(&mut self, action: Option<KeyAction>, key: KeyEvent) -> bool {
        match (action, key.code) {
            (Some(KeyAction::Apply), _) => self.filter.editing = false,
            (Some(KeyAction::Clear), _) => self.filter = FilterState::default(),
            (_, KeyCode::Backspace) => {
                let mut text = self.filter.text.clone();
                if text.pop().is_none() {
                    self.filter.editing = false;
                }
                self.filter.set_text(text);
            }
            (_, KeyCode::Char(c)) => {
                let text = format!("{}{c}", self.filter.text);
                self.filter.set_text(text);
            }
            _ => return false,
        }
        self.reanchor(Change::Filter);
        true
    }

    fn move_cursor(&mut self, delta: isize) -> bool {
        let (cursor, len) = match self.focus {
            Pane::Hosts => (self.host_cursor, self.sorted_hosts().len() + 1),
            Pane::Instances => (self.instance_cursor, self.visible_instances().len()),
        };
        let last = len.saturating_sub(1) as isize;
        let moved = (cursor as isize).saturating_add(delta).clamp(0, last) as usize;
        if moved == cursor {
            return false;
        }
        match self.focus {
            Pane::Hosts => {
                let name = moved
                    .checked_sub(1)
                    .and_then(|index| self.sorted_hosts().get(index).map(|h| HostKey::of(h)));
                self.select_host(name);
            }
            Pane::Instances => {
                let instance = self.visible_instances().get(moved).map(|i| (*i).clone());
                self.instance_cursor = moved;
                self.instance_selection = instance;
                // The operator chose anew: a selection a filter hid is no longer wanted back.
                self.hidden_by_filter = None;
            }
        }
        true
    }

    /// Another host (None: all hosts) shows other instances: start from the top of them.
    fn select_host(&mut self, name: Option<HostKey>) {
        self.host_selection = name;
        self.instance_selection = None;
        self.hidden_by_filter = None;
        self.reanchor(Change::Inventory);
    }
}

fn command_words(command: &crate::engine::live::OperatorCommand) -> String {
    use crate::engine::live::OperatorCommand;
    match command {
        OperatorCommand::Abort => "abort".to_string(),
        OperatorCommand::ForceComplete => "force-complete".to_string(),
        OperatorCommand::SetBandwidth { mib_per_second } => {
            format!("bandwidth {mib_per_second} MiB/s")
        }
        OperatorCommand::SetMaxDowntime { downtime_ms } => format!("max downtime {downtime_ms} ms"),
        OperatorCommand::RecoverPostCopy => "post-copy recovery".to_string(),
    }
}

#[cfg(test)]
mod tests;
