//! Every key ferry understands, as data: one table per screen maps keys to actions, with the
//! word the footer shows and the line the `?` help shows (gitui's `src/keys/key_list.rs`).
//! The app dispatches through it, the footer and the help read it, and the config's
//! `[keys.SCREEN]` tables remap it (`abort = "A"`). Ctrl-C always quits and is not in it.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::config::{Config, KeyOverrides};

/// The screens and dialogs with keys of their own, as the config names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScreen {
    Inventory,
    Launch,
    Migrations,
    Prompt,
    Filter,
    Help,
    Details,
}

impl KeyScreen {
    pub const ALL: [KeyScreen; 7] = [
        KeyScreen::Inventory,
        KeyScreen::Launch,
        KeyScreen::Migrations,
        KeyScreen::Prompt,
        KeyScreen::Filter,
        KeyScreen::Help,
        KeyScreen::Details,
    ];

    /// The name of its `[keys.NAME]` table.
    pub fn name(self) -> &'static str {
        match self {
            KeyScreen::Inventory => "inventory",
            KeyScreen::Launch => "launch",
            KeyScreen::Migrations => "migrations",
            KeyScreen::Prompt => "prompt",
            KeyScreen::Filter => "filter",
            KeyScreen::Help => "help",
            KeyScreen::Details => "details",
        }
    }

    /// Its title in the `?` help.
    pub fn title(self) -> &'static str {
        match self {
            KeyScreen::Inventory => "Inventory (1)",
            KeyScreen::Launch => "Launch dialog (m, c)",
            KeyScreen::Migrations => "Migrations (2)",
            KeyScreen::Prompt => "Operator prompts (y/n, numbers)",
            KeyScreen::Filter => "Filter line (/)",
            KeyScreen::Help => "This help (?)",
            KeyScreen::Details => "Details (Enter on the inventory)",
        }
    }
}

/// What a key asks for. One action may be bound on several screens, with other keys on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Quit,
    Help,
    MoveUp,
    MoveDown,
    PageUp,
    PageDown,
    First,
    Last,
    SwitchPane,
    HostsPane,
    InstancesPane,
    Details,
    LiveMigrate,
    ColdMigrate,
    ShowMigrations,
    ShowInventory,
    Filter,
    Sort,
    ReverseSort,
    Back,
    Open,
    Abort,
    ForceComplete,
    Bandwidth,
    MaxDowntime,
    Recover,
    Confirm,
    Revert,
    Launch,
    SwitchFocus,
    NextValue,
    PreviousValue,
    Yes,
    No,
    Send,
    Cancel,
    Apply,
    Clear,
    Close,
    ScrollUp,
    ScrollDown,
}

impl KeyAction {
    /// The name the config uses for it.
    pub fn name(self) -> &'static str {
        match self {
            KeyAction::Quit => "quit",
            KeyAction::Help => "help",
            KeyAction::MoveUp => "move_up",
            KeyAction::MoveDown => "move_down",
            KeyAction::PageUp => "page_up",
            KeyAction::PageDown => "page_down",
            KeyAction::First => "first",
            KeyAction::Last => "last",
            KeyAction::SwitchPane => "switch_pane",
            KeyAction::HostsPane => "hosts_pane",
            KeyAction::InstancesPane => "instances_pane",
            KeyAction::Details => "details",
            KeyAction::LiveMigrate => "live_migrate",
            KeyAction::ColdMigrate => "cold_migrate",
            KeyAction::ShowMigrations => "show_migrations",
            KeyAction::ShowInventory => "show_inventory",
            KeyAction::Filter => "filter",
            KeyAction::Sort => "sort",
            KeyAction::ReverseSort => "reverse_sort",
            KeyAction::Back => "back",
            KeyAction::Open => "open",
            KeyAction::Abort => "abort",
            KeyAction::ForceComplete => "force_complete",
            KeyAction::Bandwidth => "bandwidth",
            KeyAction::MaxDowntime => "max_downtime",
            KeyAction::Recover => "recover",
            KeyAction::Confirm => "confirm",
            KeyAction::Revert => "revert",
            KeyAction::Launch => "launch",
            KeyAction::SwitchFocus => "switch_focus",
            KeyAction::NextValue => "next_value",
            KeyAction::PreviousValue => "previous_value",
            KeyAction::Yes => "yes",
            KeyAction::No => "no",
            KeyAction::Send => "send",
            KeyAction::Cancel => "cancel",
            KeyAction::Apply => "apply",
            KeyAction::Clear => "clear",
            KeyAction::Close => "close",
            KeyAction::ScrollUp => "scroll_up",
            KeyAction::ScrollDown => "scroll_down",
        }
    }
}

/// One key as the table holds it: a code and the modifiers that must be held. Shift is part of
/// the character (`A`), so it is never a modifier of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPress {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

/// What a key may be written as in the config, for the error that refuses another spelling.
pub const KEY_SYNTAX: &str = "a character (\"a\", \"A\", \"?\"), enter, esc, tab, shift-tab, \
     backspace, space, up, down, left, right, pgup, pgdn, home, end, f1..f12, or ctrl- or alt- \
     before a character";

impl KeyPress {
    pub const fn plain(code: KeyCode) -> KeyPress {
        KeyPress {
            code,
            modifiers: KeyModifiers::NONE,
        }
    }

    pub const fn char(c: char) -> KeyPress {
        KeyPress::plain(KeyCode::Char(c))
    }

    /// `"a"`, `"A"`, `"enter"`, `"ctrl-r"`, `"f5"`; the names are the ones the footer shows,
    /// plus the arrows' words (`up` for ↑).
    pub fn parse(text: &str) -> Result<KeyPress, String> {
        let refuse = || format!("{text:?} is not a key; expected {KEY_SYNTAX}");
        let (modifiers, rest) = if let Some(rest) = text.strip_prefix("ctrl-") {
            (KeyModifiers::CONTROL, rest)
        } else if let Some(rest) = text.strip_prefix("alt-") {
            (KeyModifiers::ALT, rest)
        } else {
            (KeyModifiers::NONE, text)
        };
        let mut chars = rest.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            if c.is_control() || (c == ' ' && modifiers != KeyModifiers::NONE) {
                return Err(refuse());
            }
            let c = if modifiers == KeyModifiers::NONE {
                c
            } else {
                c.to_ascii_lowercase()
            };
            return Ok(KeyPress {
                code: KeyCode::Char(c),
                modifiers,
            });
        }
        if modifiers != KeyModifiers::NONE {
            return Err(refuse());
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "shift-tab" | "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "space" => KeyCode::Char(' '),
            "up" | "↑" => KeyCode::Up,
            "down" | "↓" => KeyCode::Down,
            "left" | "←" => KeyCode::Left,
            "right" | "→" => KeyCode::Right,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            name => match name.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                Some(number @ 1..=12) => KeyCode::F(number),
                _ => return Err(refuse()),
            },
        };
        Ok(KeyPress::plain(code))
    }

    /// True if the terminal's key is this one. Shift comes with capitals and Shift-Tab
    /// on some terminals and not on others, so it is not compared.
    pub fn matches(&self, key: &KeyEvent) -> bool {
        let held = key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = match key.code {
            KeyCode::Char(c) if held != KeyModifiers::NONE => KeyCode::Char(c.to_ascii_lowercase()),
            code => code,
        };
        code == self.code && held == self.modifiers
    }
}

impl fmt::Display for KeyPress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            formatter.write_str("ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            formatter.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => formatter.write_str("space"),
            KeyCode::Char(c) => write!(formatter, "{c}"),
            KeyCode::Enter => formatter.write_str("enter"),
            KeyCode::Esc => formatter.write_str("esc"),
            KeyCode::Tab => formatter.write_str("tab"),
            KeyCode::BackTab => formatter.write_str("shift-tab"),
            KeyCode::Backspace => formatter.write_str("backspace"),
            KeyCode::Up => formatter.write_str("↑"),
            KeyCode::Down => formatter.write_str("↓"),
            KeyCode::Left => formatter.write_str("←"),
            KeyCode::Right => formatter.write_str("→"),
            KeyCode::PageUp => formatter.write_str("pgup"),
            KeyCode::PageDown => formatter.write_str("pgdn"),
            KeyCode::Home => formatter.write_str("home"),
            KeyCode::End => formatter.write_str("end"),
            KeyCode::F(number) => write!(formatter, "f{number}"),
            other => write!(formatter, "{other:?}"),
        }
    }
}

/// One row of the table: an action, its keys (the first is the one the footer shows), its
/// word in the footer and its line in the help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub action: KeyAction,
    pub keys: Vec<KeyPress>,
    pub footer: &'static str,
    pub help: &'static str,
}

/// Keys of a screen that are typed text rather than actions (digits into a number field, the
/// filter's text): fixed, shown in the help after the bindings.
pub type TypedKeys = &'static [(&'static str, &'static str)];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenKeys {
    pub screen: KeyScreen,
    pub bindings: Vec<Binding>,
    pub typed: TypedKeys,
}

/// Every screen's keys: the defaults, with the config's remapping laid over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTable {
    screens: Vec<ScreenKeys>,
}

/// What the help shows for every screen: Ctrl-C is not in the table (it cannot be remapped).
pub const EVERYWHERE: TypedKeys = &[("ctrl-c", "quit, from anywhere (not remappable)")];

impl Default for KeyTable {
    fn default() -> KeyTable {
        KeyTable {
            screens: KeyScreen::ALL
                .iter()
                .map(|&screen| ScreenKeys {
                    screen,
                    bindings: default_bindings(screen),
                    typed: typed_keys(screen),
                })
                .collect(),
        }
    }
}

impl KeyTable {
    /// The defaults with the config's `[keys]` laid over them; the error names the file (if
    /// known), the entry and what was expected.
    pub fn from_config(config: &Config) -> Result<KeyTable, KeyConfigError> {
        KeyTable::with_overrides(&config.keys).map_err(|message| KeyConfigError {
            path: config.source_path.clone(),
            message,
        })
    }

    /// The defaults with `overrides` laid over them: each entry replaces the keys of one
    /// action on one screen (`[]` unbinds it). Refused: an unknown screen or action, a key
    /// that does not parse, Ctrl-C, and a key left bound to two actions of one screen.
    pub fn with_overrides(overrides: &KeyOverrides) -> Result<KeyTable, String> {
        let mut table = KeyTable::default();
        for (screen_name, actions) in overrides {
            let Some(screen_keys) = table
                .screens
                .iter_mut()
                .find(|s| s.screen.name() == screen_name)
            else {
                let names: Vec<&str> = KeyScreen::ALL.iter().map(|s| s.name()).collect();
                return Err(format!(
                    "table [keys.{screen_name}]: no such screen; expected one of {}",
                    names.join(", ")
                ));
            };
            for (action_name, keys) in actions {
                let entry = format!("keys.{screen_name}.{action_name}");
                let known: Vec<&str> = screen_keys
                    .bindings
                    .iter()
                    .map(|b| b.action.name())
                    .collect();
                let Some(binding) = screen_keys
                    .bindings
                    .iter_mut()
                    .find(|b| b.action.name() == action_name)
                else {
                    return Err(format!(
                        "key {entry}: no action {action_name:?} on the {screen_name} screen; \
                         expected one of {}",
                        known.join(", ")
                    ));
                };
                let mut parsed = Vec::new();
                for text in keys.keys() {
                    let key = KeyPress::parse(text)
                        .map_err(|problem| format!("key {entry}: {problem}"))?;
                    if key == KeyPress::char('c').with(KeyModifiers::CONTROL) {
                        return Err(format!(
                            "key {entry}: ctrl-c always quits ferry and cannot be bound"
                        ));
                    }
                    parsed.push(key);
                }
                binding.keys = parsed;
            }
            if let Some(message) = double_binding(screen_keys) {
                return Err(message);
            }
        }
        Ok(table)
    }

    pub fn screen(&self, screen: KeyScreen) -> &ScreenKeys {
        self.screens
            .iter()
            .find(|s| s.screen == screen)
            .unwrap_or(&self.screens[0])
    }

    /// The action `key` triggers on `screen`, if any.
    pub fn action(&self, screen: KeyScreen, key: &KeyEvent) -> Option<KeyAction> {
        self.screen(screen)
            .bindings
            .iter()
            .find(|b| b.keys.iter().any(|k| k.matches(key)))
            .map(|b| b.action)
    }

    pub fn binding(&self, screen: KeyScreen, action: KeyAction) -> Option<&Binding> {
        self.screen(screen)
            .bindings
            .iter()
            .find(|b| b.action == action)
    }

    /// The footer's name for these actions: the first key of each, joined by "/" ("j/k");
    /// None if one of them is unbound.
    pub fn footer_label(&self, screen: KeyScreen, actions: &[KeyAction]) -> Option<String> {
        self.label_joined(screen, actions, "/")
    }

    /// The first key of each action joined by `separator` ("← →" in a dialog's hint); None if
    /// one of them is unbound.
    pub fn label_joined(
        &self,
        screen: KeyScreen,
        actions: &[KeyAction],
        separator: &str,
    ) -> Option<String> {
        let firsts: Option<Vec<String>> = actions
            .iter()
            .map(|&action| {
                self.binding(screen, action)
                    .and_then(|b| b.keys.first())
                    .map(KeyPress::to_string)
            })
            .collect();
        Some(firsts?.join(separator))
    }

    /// Lines the help overlay has: a title per screen, a line per binding and typed key, a
    /// blank between screens, and the Everywhere section.
    pub fn help_line_count(&self) -> usize {
        let screens: usize = self
            .screens
            .iter()
            .map(|s| 2 + s.bindings.len() + s.typed.len())
            .sum();
        screens + 1 + EVERYWHERE.len()
    }
}

impl KeyPress {
    const fn with(self, modifiers: KeyModifiers) -> KeyPress {
        KeyPress {
            code: self.code,
            modifiers,
        }
    }
}

/// The first key bound to two actions of one screen, in words.
fn double_binding(screen_keys: &ScreenKeys) -> Option<String> {
    let bindings = &screen_keys.bindings;
    for (index, binding) in bindings.iter().enumerate() {
        for key in &binding.keys {
            if let Some(other) = bindings[index + 1..].iter().find(|b| b.keys.contains(key)) {
                return Some(format!(
                    "table [keys.{}]: key \"{key}\" is bound to both {} and {}; bind one of \
                     them to another key",
                    screen_keys.screen.name(),
                    binding.action.name(),
                    other.action.name()
                ));
            }
        }
    }
    None
}

/// A `[keys]` entry the table refuses, with the config file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfigError {
    pub path: Option<std::path::PathBuf>,
    pub message: String,
}

impl fmt::Display for KeyConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(
                formatter,
                "config file {}: {}",
                path.display(),
                self.message
            ),
            None => write!(formatter, "config: {}", self.message),
        }
    }
}

impl std::error::Error for KeyConfigError {}

fn bind(action: KeyAction, keys: &[KeyPress], footer: &'static str, help: &'static str) -> Binding {
    Binding {
        action,
        keys: keys.to_vec(),
        footer,
        help,
    }
}

const fn key(code: KeyCode) -> KeyPress {
    KeyPress::plain(code)
}

const fn ch(c: char) -> KeyPress {
    KeyPress::char(c)
}

/// Moving in a list, the same on every screen with one.
fn list_moves(down: &'static str, up: &'static str) -> Vec<Binding> {
    use KeyAction::*;
    vec![
        bind(MoveDown, &[ch('j'), key(KeyCode::Down)], "move", down),
        bind(MoveUp, &[ch('k'), key(KeyCode::Up)], "move", up),
        bind(PageDown, &[key(KeyCode::PageDown)], "page", "a page down"),
        bind(PageUp, &[key(KeyCode::PageUp)], "page", "a page up"),
        bind(First, &[ch('g'), key(KeyCode::Home)], "first", "first row"),
        bind(Last, &[ch('G'), key(KeyCode::End)], "last", "last row"),
    ]
}

/// The default keys: k9s's where k9s has one (`?`, `/`, esc backs out), vim's moves.
fn default_bindings(screen: KeyScreen) -> Vec<Binding> {
    use KeyAction::*;
    let quit = bind(Quit, &[ch('q')], "quit", "quit");
    let help = bind(Help, &[ch('?')], "help", "this help (j k scroll)");
    match screen {
        KeyScreen::Inventory => {
            let mut bindings = list_moves("move the cursor down", "move the cursor up");
            bindings.extend([
                bind(
                    SwitchPane,
                    &[key(KeyCode::Tab), key(KeyCode::BackTab)],
                    "pane",
                    "switch between hosts and instances",
                ),
                bind(
                    HostsPane,
                    &[ch('h'), key(KeyCode::Left)],
                    "hosts",
                    "hosts pane",
                ),
                bind(
                    InstancesPane,
                    &[ch('l'), key(KeyCode::Right)],
                    "instances",
                    "instances pane",
                ),
                bind(
                    Details,
                    &[key(KeyCode::Enter)],
                    "details",
                    "details of the selected host or instance",
                ),
                bind(
                    LiveMigrate,
                    &[ch('m')],
                    "migrate",
                    "live-migrate the selected instance (launch dialog)",
                ),
                bind(
                    ColdMigrate,
                    &[ch('c')],
                    "cold",
                    "cold-migrate it (dialog): shut down, copy, verify, start",
                ),
                bind(
                    ShowMigrations,
                    &[ch('2')],
                    "migrations",
                    "migrations: queued, running and recent",
                ),
                bind(
                    Filter,
                    &[ch('/')],
                    "filter",
                    "filter instances by name, host, state, UUID",
                ),
                bind(
                    Sort,
                    &[ch('s')],
                    "sort",
                    "next sort column of the focused pane",
                ),
                bind(ReverseSort, &[ch('S')], "sort", "reverse the instance sort"),
                bind(
                    Back,
                    &[key(KeyCode::Esc)],
                    "back",
                    "back out: filter, pane, host selection",
                ),
                help,
                quit,
            ]);
            bindings
        }
        KeyScreen::Launch => vec![
            bind(
                Launch,
                &[key(KeyCode::Enter)],
                "launch",
                "launch to the highlighted destination (refused: why)",
            ),
            bind(
                SwitchFocus,
                &[key(KeyCode::Tab), key(KeyCode::BackTab)],
                "destinations/options",
                "switch between destinations and options",
            ),
            bind(
                MoveDown,
                &[ch('j'), key(KeyCode::Down)],
                "move",
                "move among destinations, or among options",
            ),
            bind(
                MoveUp,
                &[ch('k'), key(KeyCode::Up)],
                "move",
                "the other way",
            ),
            bind(
                NextValue,
                &[key(KeyCode::Right), ch('l'), ch(' ')],
                "change",
                "change the highlighted option",
            ),
            bind(
                PreviousValue,
                &[key(KeyCode::Left), ch('h')],
                "change",
                "change it the other way",
            ),
            bind(
                Close,
                &[key(KeyCode::Esc)],
                "cancel",
                "close without launching",
            ),
            help,
        ],
        KeyScreen::Migrations => {
            let mut bindings = list_moves("move the cursor down", "move the cursor up");
            bindings.extend([
                bind(
                    Open,
                    &[key(KeyCode::Enter)],
                    "open",
                    "the selected migration in detail",
                ),
                bind(
                    Abort,
                    &[ch('a')],
                    "abort",
                    "abort (y/n); refused in post-copy; dequeues a queued one",
                ),
                bind(
                    ForceComplete,
                    &[ch('f')],
                    "force",
                    "force-complete (y/n): post-copy if permitted, else pause",
                ),
                bind(
                    Bandwidth,
                    &[ch('b')],
                    "bandwidth",
                    "set the bandwidth in MiB/s",
                ),
                bind(
                    MaxDowntime,
                    &[ch('d')],
                    "downtime",
                    "set the max downtime in ms",
                ),
                bind(
                    Recover,
                    &[ch('r')],
                    "recover",
                    "post-copy broken: resume it now (y/n)",
                ),
                bind(
                    Confirm,
                    &[ch('C')],
                    "confirm",
                    "cold, awaiting confirm: keep it, delete the source copy",
                ),
                bind(
                    Revert,
                    &[ch('R')],
                    "revert",
                    "cold, awaiting confirm: revert to the source (y/n)",
                ),
                bind(Back, &[key(KeyCode::Esc)], "back", "back out: detail, list"),
                bind(
                    ShowMigrations,
                    &[ch('2')],
                    "list",
                    "from a detail: back to the list",
                ),
                bind(
                    ShowInventory,
                    &[ch('1')],
                    "inventory",
                    "back to the inventory",
                ),
                help,
                quit,
            ]);
            bindings
        }
        KeyScreen::Prompt => vec![
            bind(Yes, &[ch('y'), ch('Y')], "yes", "answer yes to a question"),
            bind(No, &[ch('n'), ch('N')], "no", "answer no"),
            bind(
                Send,
                &[key(KeyCode::Enter)],
                "send",
                "send the number typed",
            ),
            bind(
                Cancel,
                &[key(KeyCode::Esc)],
                "cancel",
                "no, or cancel the number",
            ),
        ],
        KeyScreen::Filter => vec![
            bind(
                Apply,
                &[key(KeyCode::Enter)],
                "apply",
                "keep the filter and leave the filter line",
            ),
            bind(Clear, &[key(KeyCode::Esc)], "clear", "clear the filter"),
        ],
        KeyScreen::Help => vec![
            bind(
                ScrollDown,
                &[ch('j'), key(KeyCode::Down)],
                "scroll",
                "scroll down",
            ),
            bind(
                ScrollUp,
                &[ch('k'), key(KeyCode::Up)],
                "scroll",
                "scroll up",
            ),
            bind(
                Close,
                &[key(KeyCode::Esc), key(KeyCode::Enter), ch('?')],
                "close",
                "close the help",
            ),
            quit,
        ],
        KeyScreen::Details => vec![
            bind(
                Close,
                &[key(KeyCode::Esc), key(KeyCode::Enter)],
                "close",
                "close the details",
            ),
            quit,
        ],
    }
}

fn typed_keys(screen: KeyScreen) -> TypedKeys {
    match screen {
        KeyScreen::Inventory => &[
            ("~regex", "after /: filter with a regular expression"),
            ("(all hosts)", "first host row: instances of every host"),
        ],
        KeyScreen::Launch => &[
            (
                "0-9 backspace",
                "type bandwidth MiB/s (empty: no limit), max downtime ms, shutdown s",
            ),
            ("auto", "the passing destination with the most free memory"),
        ],
        KeyScreen::Prompt => &[("0-9 backspace", "type the bandwidth or the max downtime")],
        KeyScreen::Filter => &[("~re", "text starting with ~ is a regular expression")],
        KeyScreen::Migrations | KeyScreen::Help | KeyScreen::Details => &[],
    }
}

#[cfg(test)]
mod tests;
