//! Every key ferry understands, by screen, as data: the `?` overlay draws it, the footer's
//! keys are checked against it, and the app bounds the help's scrolling by its length.

use super::app::{App, Screen};

/// Keys of one screen or dialog, with what they do. The key column is space-separated
/// tokens; the footer shows the subset that applies in context.
#[derive(Debug, Clone, Copy)]
pub struct HelpSection {
    pub title: &'static str,
    pub keys: &'static [(&'static str, &'static str)],
}

pub const INVENTORY: HelpSection = HelpSection {
    title: "Inventory (1)",
    keys: &[
        ("↑ ↓ j k", "move the cursor"),
        ("PgUp PgDn", "move by a page"),
        ("g G Home End", "first / last row"),
        ("Tab Shift-Tab", "switch between hosts and instances"),
        ("← → h l", "hosts pane / instances pane"),
        ("Enter", "details of the selected host or instance"),
        ("m", "live-migrate the selected instance (launch dialog)"),
        (
            "c",
            "cold-migrate it (dialog): shut down, copy, verify, start",
        ),
        ("2", "migrations: queued, running and recent"),
        ("/", "filter instances by name, host, state, UUID"),
        ("/~regex", "filter with a regular expression"),
        (
            "Enter (filter)",
            "keep the filter and leave the filter line",
        ),
        ("Esc (filter)", "clear the filter"),
        ("s", "next sort column of the focused pane"),
        ("S", "reverse the instance sort"),
        ("Esc", "back out: filter, pane, host selection"),
        ("(all hosts)", "first host row: instances of every host"),
    ],
};

pub const LAUNCH: HelpSection = HelpSection {
    title: "Launch dialog (m, c)",
    keys: &[
        ("↑ ↓ j k", "move among destinations, or among options"),
        ("Tab", "switch between destinations and options"),
        ("← → h l space", "change the highlighted option"),
        (
            "0-9 Backspace",
            "type bandwidth MiB/s (empty: no limit), max downtime ms",
        ),
        (
            "Enter",
            "launch to the highlighted destination (refused: why)",
        ),
        ("auto", "the passing destination with the most free memory"),
        ("Esc", "close without launching"),
    ],
};

pub const MIGRATIONS: HelpSection = HelpSection {
    title: "Migrations (2)",
    keys: &[
        ("↑ ↓ j k", "move the cursor"),
        ("PgUp PgDn g G", "by a page; first / last row"),
        ("Enter", "the selected migration in detail"),
        (
            "a",
            "abort (y/n); refused in post-copy; dequeues a queued one",
        ),
        (
            "f",
            "force-complete (y/n): post-copy if permitted, else pause",
        ),
        ("b", "set the bandwidth in MiB/s"),
        ("d", "set the max downtime in ms"),
        ("r", "post-copy broken: resume it now (y/n)"),
        (
            "C",
            "cold, awaiting confirm: keep it, delete the source copy",
        ),
        ("R", "cold, awaiting confirm: revert to the source (y/n)"),
        ("a (cold)", "abort a cold migration still copying (y/n)"),
        ("y n", "answer a confirmation"),
        ("Esc", "back out: prompt, detail, list"),
        ("1", "back to the inventory"),
    ],
};

pub const EVERYWHERE: HelpSection = HelpSection {
    title: "Everywhere",
    keys: &[
        ("?", "this help (j k scroll)"),
        ("q", "quit"),
        ("Ctrl-C", "quit, from anywhere"),
    ],
};

/// The sections in the order the help shows them: the one in use first.
pub fn sections(app: &App) -> [HelpSection; 4] {
    if app.launch.is_some() {
        [LAUNCH, INVENTORY, MIGRATIONS, EVERYWHERE]
    } else if app.screen == Screen::Migrations {
        [MIGRATIONS, INVENTORY, LAUNCH, EVERYWHERE]
    } else {
        [INVENTORY, LAUNCH, MIGRATIONS, EVERYWHERE]
    }
}

/// Lines the help overlay has: a title per section, a line per key, a blank between.
pub fn line_count() -> usize {
    let sections = [INVENTORY, LAUNCH, MIGRATIONS, EVERYWHERE];
    sections.iter().map(|s| s.keys.len() + 1).sum::<usize>() + sections.len() - 1
}
