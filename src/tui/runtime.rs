//! The terminal side: raw mode, alternate screen, the event loop, and restoring the terminal
//! on every way out (quit, error, panic).
//!
//! The loop, in the shape of ratatui's async template, waits on four sources at once:
//! crossterm's `EventStream` (keys, resizes), the inventory's host tasks, the engine's one
//! event stream (both kinds of migration, precheck reports, notices) and a tick each second
//! (so "3s ago" ages). It folds each into the app, forwards the actions the keys produced to
//! the engine, and redraws only when something visible changed. The loop runs on the main
//! thread (`runtime::wait`), never on a runtime worker, so a slow terminal holds up nothing
//! else; nothing here waits on libvirt.

use std::io::{self, Stdout};
use std::thread;
use std::time::{Duration, SystemTime};

use crossterm::event::{Event, EventStream, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures_util::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::config::Config;
use crate::engine::service::nova::NovaRequest;
use crate::engine::service::{Destination, Engine, EngineEvent, EngineRequest, TakeOver};
use crate::engine::supervisor::SupervisorEvent;
use crate::inventory::{spawn_workers, Inventory, InventoryEvent};

use super::action::Action;
use super::app::App;
use super::state::migrations::{MigrationChange, MigrationEvent};
use super::theme::{ColorSupport, Theme};
use super::views;

/// "3s ago" needs a redraw each second; nothing else does.
const TICK: Duration = Duration::from_secs(1);

/// The engine request an action of the app stands for.
fn engine_request(action: Action) -> EngineRequest {
    match action {
        Action::RequestPrechecks(request) => EngineRequest::Prechecks {
            request_id: request.request_id,
            kind: request.kind,
            instance: request.instance_name,
            source: request.instance.host,
            destinations: request.destinations,
            block_migration: request.block_migration,
            new_size: request.new_size,
        },
        Action::LaunchLiveMigration(request) => EngineRequest::LaunchLive {
            options: request.live_options(),
            source: Some(request.source().clone()),
            instance: request.instance_name,
            destination: Destination::Named(request.destination.to_string()),
        },
        Action::LaunchColdMigration(request) => EngineRequest::LaunchCold {
            options: request.cold_options(),
            source: Some(request.source().clone()),
            instance: request.instance_name,
            destination: request.destination.to_string(),
        },
        Action::AbortCold { id } => EngineRequest::AbortCold { id },
        Action::SettleCold { id, keep } => EngineRequest::SettleCold { id, keep },
        Action::Operator { id, command } => EngineRequest::Live { id, command },
        Action::Nova(request) => EngineRequest::Nova(request),
    }
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
    let keys = super::keys::KeyTable::from_config(config)?;
    let (inventory_tx, inventory_rx) = mpsc::unbounded_channel();
    spawn_workers(config, move |event| inventory_tx.send(event).is_ok());
    let (engine, engine_events) = Engine::start(config, TakeOver::Everything);
    if engine.unavailable().is_none() {
        engine.send(EngineRequest::Nova(NovaRequest::TakeOver));
    }

    install_panic_hook();
    enable_raw_mode()?;
    let mut stdout = io::stdout();
    if let Err(error) = execute!(stdout, EnterAlternateScreen) {
        restore_terminal();
        return Err(error.into());
    }
    let mut app = App::new(Inventory::new(config, SystemTime::now()), SystemTime::now())
        .with_config(config, keys);
    app.notice = notice.or_else(|| engine.unavailable().map(str::to_string));
    app.cold_migration_available = engine.unavailable().is_none();
    let result = Terminal::new(CrosstermBackend::new(stdout))
        .map_err(anyhow::Error::from)
        .and_then(|terminal| {
            crate::runtime::wait(event_loop(
                terminal,
                app,
                &theme,
                Sources {
                    inventory: inventory_rx,
                    engine: engine_events,
                },
                &engine,
            ))
        });
    restore_terminal();
    result
}

/// What the loop listens to besides the terminal.
struct Sources {
    inventory: UnboundedReceiver<InventoryEvent>,
    engine: UnboundedReceiver<EngineEvent>,
}

async fn event_loop(
    mut terminal: Terminal<CrosstermBackend<Stdout>>,
    mut app: App,
    theme: &Theme,
    mut sources: Sources,
    engine: &Engine,
) -> anyhow::Result<()> {
    // Not `Terminal::clear`: ratatui reads the cursor position there, and the answer may be
    // taken by the event stream's reader, so ferry quit after 2 s with "The cursor position
    // could not be read" (seen under tmux).
    ratatui::backend::Backend::clear(terminal.backend_mut())?;
    terminal.draw(|frame| views::draw(frame, &app, theme))?;
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut dirty = tokio::select! {
            event = keys.next() => match event {
                Some(Ok(event)) => on_terminal(&mut app, event),
                // The terminal is gone (ssh dropped): nothing more to show.
                Some(Err(_)) | None => break,
            },
            Some(event) = sources.inventory.recv() => app.apply_inventory(event),
            Some(event) = sources.engine.recv() => on_engine(&mut app, event),
            _ = tick.tick() => {
                app.now = SystemTime::now();
                true
            }
        };
        // Fold whatever else is queued (a burst of refreshes) before drawing once.
        while let Ok(event) = sources.inventory.try_recv() {
            dirty |= app.apply_inventory(event);
        }
        while let Ok(event) = sources.engine.try_recv() {
            dirty |= on_engine(&mut app, event);
        }
        for action in app.take_actions() {
            engine.send(engine_request(action));
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

fn on_terminal(app: &mut App, event: Event) -> bool {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => app.handle_key(key),
        Event::Resize(..) => true,
        _ => false,
    }
}

fn on_engine(app: &mut App, event: EngineEvent) -> bool {
    let at = SystemTime::now();
    match event {
        EngineEvent::Live(event) => {
            let (id, change) = match *event {
                SupervisorEvent::Queued { request, plan } => {
                    (request, MigrationChange::QueuedLive(plan))
                }
                SupervisorEvent::Waiting {
                    request, position, ..
                } => (request, MigrationChange::QueuePosition(position)),
                SupervisorEvent::Started { request, .. } => (request, MigrationChange::Starting),
                SupervisorEvent::Update { request, update } => {
                    (request, MigrationChange::Engine(update))
                }
                SupervisorEvent::Rejected { instance, reason } => {
                    app.notice = Some(format!("{instance} not started: {reason}"));
                    return true;
                }
                SupervisorEvent::Notice { message, .. } => {
                    app.notice = Some(message);
                    return true;
                }
                SupervisorEvent::Done { .. } => return false,
            };
            app.on_migration_event(MigrationEvent { id, at, change })
        }
        EngineEvent::Cold(id, change) => app.on_migration_event(MigrationEvent {
            id,
            at,
            change: MigrationChange::Cold(change),
        }),
        EngineEvent::Prechecks {
            request_id,
            reports,
        } => app.on_precheck_reports(request_id, reports),
        // The launch dialog showed the verdicts already; a launch that passes is seen by
        // its row.
        EngineEvent::Planned { .. } => false,
        EngineEvent::Refused {
            instance, reason, ..
        } => {
            app.notice = Some(format!("{instance} not started: {reason}"));
            true
        }
        EngineEvent::Notice(message) => {
            app.notice = Some(message);
            true
        }
        EngineEvent::Nova(id, event) => app.on_migration_event(MigrationEvent {
            id,
            at,
            change: MigrationChange::Nova(event),
        }),
        EngineEvent::NovaVerdicts {
            request_id,
            verdicts,
        } => app.on_nova_verdicts(request_id, verdicts),
    }
}
