//! The terminal side: raw mode, alternate screen, the event loop, and restoring the terminal
//! on every way out (quit, error, panic).
//!
//! Three kinds of events arrive on one channel: keys and resizes (from a reader thread),
//! inventory events (from the host workers) and a tick each second (so "3s ago" ages). The
//! loop folds each into the app and redraws only when something visible changed.

use std::io::{self, Stdout};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::config::Config;
use crate::inventory::{spawn_workers, Inventory, InventoryEvent};

use super::app::App;
use super::theme::{ColorSupport, Theme};
use super::views;

/// "3s ago" needs a redraw each second; nothing else does.
const TICK: Duration = Duration::from_secs(1);

enum AppEvent {
    Terminal(Event),
    Inventory(Box<InventoryEvent>),
    Tick,
}

/// Puts the terminal back as the shell left it. Safe to call twice.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Restores the terminal before the panic message is printed, so the message is readable
/// and the shell usable. Panics on other threads (a libvirt call thread) are logged instead:
/// printing them would scribble over the screen the TUI still owns.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if thread::current().name() == Some("main") {
            restore_terminal();
            previous(info);
        } else {
            tracing::error!("panic on thread {:?}: {info}", thread::current().name());
        }
    }));
}

/// Runs the TUI until the operator quits. `notice` (e.g. a refused theme) shows in the
/// status bar from the first frame.
pub fn run(config: &Config, theme: Theme, notice: Option<String>) -> anyhow::Result<()> {
    let theme = theme.for_terminal(ColorSupport::detect());
    let (events_tx, events_rx) = mpsc::channel::<AppEvent>();

    let inventory_tx = events_tx.clone();
    spawn_workers(config, move |event| {
        inventory_tx
            .send(AppEvent::Inventory(Box::new(event)))
            .is_ok()
    });
    let tick_tx = events_tx.clone();
    thread::Builder::new()
        .name("tick".into())
        .spawn(move || loop {
            thread::sleep(TICK);
            if tick_tx.send(AppEvent::Tick).is_err() {
                return;
            }
        })?;
    let key_tx = events_tx;
    thread::Builder::new()
        .name("terminal-input".into())
        .spawn(move || loop {
            match event::read() {
                Ok(event) => {
                    if key_tx.send(AppEvent::Terminal(event)).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        })?;

    install_panic_hook();
    enable_raw_mode()?;
    let mut stdout = io::stdout();
    if let Err(error) = execute!(stdout, EnterAlternateScreen) {
        restore_terminal();
        return Err(error.into());
    }
    let mut app = App::new(Inventory::new(config, SystemTime::now()), SystemTime::now());
    app.notice = notice;
    let result = event_loop(
        Terminal::new(CrosstermBackend::new(stdout))?,
        app,
        &theme,
        events_rx,
    );
    restore_terminal();
    result
}

fn event_loop(
    mut terminal: Terminal<CrosstermBackend<Stdout>>,
    mut app: App,
    theme: &Theme,
    events: mpsc::Receiver<AppEvent>,
) -> anyhow::Result<()> {
    terminal.clear()?;
    terminal.draw(|frame| views::draw(frame, &app, theme))?;
    while let Ok(event) = events.recv() {
        let mut dirty = apply(&mut app, event);
        // Drain whatever else is queued (a burst of refreshes, key repeat) before drawing once.
        while let Ok(event) = events.try_recv() {
            dirty |= apply(&mut app, event);
        }
        if app.quit {
            break;
        }
        if dirty {
            terminal.draw(|frame| views::draw(frame, &app, theme))?;
        }
    }
    Ok(())
}

fn apply(app: &mut App, event: AppEvent) -> bool {
    match event {
        AppEvent::Terminal(Event::Key(key)) if key.kind != KeyEventKind::Release => {
            app.handle_key(key)
        }
        AppEvent::Terminal(Event::Resize(..)) => true,
        AppEvent::Terminal(_) => false,
        AppEvent::Inventory(event) => app.apply_inventory(*event),
        AppEvent::Tick => {
            app.now = SystemTime::now();
            true
        }
    }
}
