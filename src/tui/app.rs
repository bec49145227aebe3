//! App state and its update: keys and inventory events go in, views read the result.
//! No terminal and no libvirt here, so every behaviour is a unit test over plain data.

use std::cmp::Ordering;
use std::time::SystemTime;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::inventory::{HostEntry, HostState, Instance, Inventory, InventoryEvent};
use crate::libvirt::facts::DomainRunState;

use super::filter::Matcher;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Hosts,
    Instances,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Details,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSort {
    /// The order of the config file: operators group hosts there on purpose.
    Config,
    Name,
    State,
    MemoryFree,
}

impl HostSort {
    pub fn label(self) -> &'static str {
        match self {
            HostSort::Config => "config",
            HostSort::Name => "name",
            HostSort::State => "state",
            HostSort::MemoryFree => "free mem",
        }
    }
    fn next(self) -> HostSort {
        match self {
            HostSort::Config => HostSort::Name,
            HostSort::Name => HostSort::State,
            HostSort::State => HostSort::MemoryFree,
            HostSort::MemoryFree => HostSort::Config,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceSort {
    Name,
    Host,
    State,
    Memory,
    Vcpus,
}

impl InstanceSort {
    pub fn label(self) -> &'static str {
        match self {
            InstanceSort::Name => "name",
            InstanceSort::Host => "host",
            InstanceSort::State => "state",
            InstanceSort::Memory => "memory",
            InstanceSort::Vcpus => "vcpus",
        }
    }
    fn next(self) -> InstanceSort {
        match self {
            InstanceSort::Name => InstanceSort::Host,
            InstanceSort::Host => InstanceSort::State,
            InstanceSort::State => InstanceSort::Memory,
            InstanceSort::Memory => InstanceSort::Vcpus,
            InstanceSort::Vcpus => InstanceSort::Name,
        }
    }
}

/// What the `/` line holds. `applied` is the last text that parsed, so a half-typed regex
/// never empties the list.
#[derive(Debug, Clone)]
pub struct FilterState {
    pub text: String,
    pub editing: bool,
    pub error: Option<String>,
    pub matcher: Matcher,
}

impl Default for FilterState {
    fn default() -> Self {
        FilterState {
            text: String::new(),
            editing: false,
            error: None,
            matcher: Matcher::Everything,
        }
    }
}

impl FilterState {
    fn set_text(&mut self, text: String) {
        match Matcher::parse(&text) {
            Ok(matcher) => {
                self.matcher = matcher;
                self.error = None;
            }
            Err(error) => self.error = Some(error),
        }
        self.text = text;
    }

    pub fn is_active(&self) -> bool {
        !matches!(self.matcher, Matcher::Everything)
    }
}

/// Rows the page keys move by; the real page height is not known to the pure state.
const PAGE_ROWS: usize = 10;

#[derive(Debug, Clone)]
pub struct App {
    pub inventory: Inventory,
    pub focus: Pane,
    /// 0 is the "all hosts" row; 1.. index `sorted_hosts()`.
    pub host_cursor: usize,
    pub instance_cursor: usize,
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
}

impl App {
    pub fn new(inventory: Inventory, now: SystemTime) -> App {
        App {
            inventory,
            focus: Pane::Hosts,
            host_cursor: 0,
            instance_cursor: 0,
            host_sort: HostSort::Config,
            instance_sort: InstanceSort::Name,
            sort_descending: false,
            filter: FilterState::default(),
            overlay: None,
            quit: false,
            now,
            notice: None,
        }
    }

    /// Hosts in display order.
    pub fn sorted_hosts(&self) -> Vec<&HostEntry> {
        let mut hosts: Vec<&HostEntry> = self.inventory.hosts.iter().collect();
        let rank = |state: HostState| match state {
            HostState::Unreachable => 0,
            HostState::Connecting => 1,
            HostState::Up => 2,
        };
        match self.host_sort {
            HostSort::Config => {}
            HostSort::Name => hosts.sort_by(|a, b| a.name.cmp(&b.name)),
            HostSort::State => hosts.sort_by_key(|h| rank(h.state)),
            HostSort::MemoryFree => hosts.sort_by_key(|h| {
                std::cmp::Reverse(h.facts.as_ref().map_or(0, |f| f.memory_free_bytes))
            }),
        }
        hosts
    }

    /// The host whose instances are shown, or None for all hosts.
    pub fn selected_host(&self) -> Option<&HostEntry> {
        self.host_cursor
            .checked_sub(1)
            .and_then(|index| self.sorted_hosts().get(index).copied())
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
        let by_name = |a: &&Instance, b: &&Instance| a.name.cmp(&b.name);
        let order = |a: &&Instance, b: &&Instance| -> Ordering {
            match self.instance_sort {
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
            }
        };
        instances.sort_unstable_by(|a, b| {
            let ordering = order(a, b);
            if self.sort_descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
        instances
    }

    pub fn selected_instance(&self) -> Option<&Instance> {
        self.visible_instances().get(self.instance_cursor).copied()
    }

    /// Folds an inventory event in; true if the screen must be redrawn.
    pub fn apply_inventory(&mut self, event: InventoryEvent) -> bool {
        let changed = self.inventory.apply(event);
        if changed {
            self.clamp_cursors();
        }
        changed
    }

    fn clamp_cursors(&mut self) {
        self.host_cursor = self.host_cursor.min(self.inventory.hosts.len());
        let instance_count = self.visible_instances().len();
        self.instance_cursor = self.instance_cursor.min(instance_count.saturating_sub(1));
    }

    /// Handles one key; true if anything changed (the screen is redrawn only then).
    pub fn handle_key(&mut self, key: KeyEvent) -> bool {
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        if control && matches!(key.code, KeyCode::Char('c')) {
            self.quit = true;
            return true;
        }
        if self.filter.editing {
            return self.handle_filter_key(key);
        }
        if let Some(overlay) = self.overlay {
            return match key.code {
                KeyCode::Esc | KeyCode::Enter => {
                    self.overlay = None;
                    true
                }
                KeyCode::Char('?') if overlay == Overlay::Help => {
                    self.overlay = None;
                    true
                }
                KeyCode::Char('q') => {
                    self.quit = true;
                    true
                }
                _ => false,
            };
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.overlay = Some(Overlay::Help),
            KeyCode::Enter => self.overlay = Some(Overlay::Details),
            KeyCode::Tab
            | KeyCode::BackTab
            | KeyCode::Left
            | KeyCode::Right
            | KeyCode::Char('h')
            | KeyCode::Char('l') => {
                let wanted = match key.code {
                    KeyCode::Left | KeyCode::Char('h') => Pane::Hosts,
                    KeyCode::Right | KeyCode::Char('l') => Pane::Instances,
                    _ if self.focus == Pane::Hosts => Pane::Instances,
                    _ => Pane::Hosts,
                };
                if wanted == self.focus {
                    return false;
                }
                self.focus = wanted;
            }
            KeyCode::Up | KeyCode::Char('k') => return self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => return self.move_cursor(1),
            KeyCode::PageUp => return self.move_cursor(-(PAGE_ROWS as isize)),
            KeyCode::PageDown => return self.move_cursor(PAGE_ROWS as isize),
            KeyCode::Home | KeyCode::Char('g') => return self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => return self.move_cursor(isize::MAX / 2),
            KeyCode::Char('/') => {
                self.filter.editing = true;
                // Typing a filter is about instances: show them.
                self.focus = Pane::Instances;
            }
            KeyCode::Char('s') => {
                match self.focus {
                    Pane::Hosts => self.host_sort = self.host_sort.next(),
                    Pane::Instances => self.instance_sort = self.instance_sort.next(),
                }
                self.clamp_cursors();
            }
            KeyCode::Char('S') => self.sort_descending = !self.sort_descending,
            KeyCode::Esc => {
                // Back out one level: filter first, then the host selection.
                if self.filter.is_active() || !self.filter.text.is_empty() {
                    self.filter = FilterState::default();
                } else if self.focus == Pane::Instances {
                    self.focus = Pane::Hosts;
                } else if self.host_cursor != 0 {
                    self.host_cursor = 0;
                    self.instance_cursor = 0;
                } else if self.notice.is_some() {
                    self.notice = None;
                } else {
                    return false;
                }
                self.clamp_cursors();
            }
            _ => return false,
        }
        true
    }

    fn handle_filter_key(&mut self, key: KeyEvent) -> bool {
        match key.code {
            KeyCode::Enter => self.filter.editing = false,
            KeyCode::Esc => self.filter = FilterState::default(),
            KeyCode::Backspace => {
                let mut text = self.filter.text.clone();
                if text.pop().is_none() {
                    self.filter.editing = false;
                }
                self.filter.set_text(text);
            }
            KeyCode::Char(c) => {
                let text = format!("{}{c}", self.filter.text);
                self.filter.set_text(text);
            }
            _ => return false,
        }
        self.instance_cursor = 0;
        self.clamp_cursors();
        true
    }

    fn move_cursor(&mut self, delta: isize) -> bool {
        let (cursor, len) = match self.focus {
            Pane::Hosts => (&mut self.host_cursor, self.inventory.hosts.len() + 1),
            Pane::Instances => {
                let len = self.visible_instances().len();
                (&mut self.instance_cursor, len)
            }
        };
        let last = len.saturating_sub(1) as isize;
        let moved = (*cursor as isize).saturating_add(delta).clamp(0, last) as usize;
        if moved == *cursor {
            return false;
        }
        *cursor = moved;
        if self.focus == Pane::Hosts {
            self.instance_cursor = 0;
        }
        true
    }
}

/// Troubles first: an operator scanning by state wants what is not running on top.
fn state_rank(state: DomainRunState) -> u8 {
    match state {
        DomainRunState::Crashed => 0,
        DomainRunState::Unknown => 1,
        DomainRunState::Paused => 2,
        DomainRunState::Suspended => 3,
        DomainRunState::ShuttingDown => 4,
        DomainRunState::Blocked => 5,
        DomainRunState::Running => 6,
        DomainRunState::ShutOff => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::sample;

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
        assert_eq!(app.host_cursor, 0);
        app.handle_key(key(KeyCode::BackTab));
        assert_eq!(app.focus, Pane::Hosts);
        app.handle_key(key(KeyCode::PageDown));
        assert_eq!(app.host_cursor, 3, "page down stops at the last host");
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
        assert!(
            !app.handle_key(key(KeyCode::Char('j'))),
            "keys under the help are ignored"
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
        assert_eq!(app.host_cursor, 0);
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
        assert_eq!(app.instance_cursor, 11);
        let host = app.inventory.hosts[2].name.clone();
        app.apply_inventory(InventoryEvent::Refreshed {
            host,
            facts: sample::host_facts("hv3"),
            domains: vec![],
            at: SystemTime::UNIX_EPOCH,
            took: std::time::Duration::ZERO,
        });
        assert_eq!(app.instance_cursor, 7);
    }
}
