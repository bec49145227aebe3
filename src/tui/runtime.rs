//! The terminal side: raw mode, alternate screen, the event loop, and restoring the terminal
//! on every way out (quit, error, panic).
//!
//! Events arrive on one channel: keys and resizes (from a reader thread), inventory events
//! (from the host workers), migration events (from the supervisor), precheck reports (from
//! worker threads) and a tick each second (so "3s ago" ages). The loop folds each into the
//! app, carries out the actions the keys produced, and redraws only when something visible
//! changed. Nothing here waits on libvirt: prechecks run on their own threads, migrations in
//! the supervisor's.

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
use crate::engine::history::{self, History};
use crate::engine::live::LiveMigrationPlan;
use crate::engine::options;
use crate::engine::supervisor::{
    unfinished_live_migrations, Supervisor, SupervisorEvent, SupervisorSettings,
};
use crate::inventory::{spawn_workers, Inventory, InventoryEvent};
use crate::libvirt::precheck_facts;
use crate::model::HostName;
use crate::precheck::PrecheckReport;

use super::action::{Action, LaunchRequest, PrecheckRequest};
use super::app::App;
use super::migrations::{MigrationChange, MigrationEvent};
use super::theme::{ColorSupport, Theme};
use super::views;

/// "3s ago" needs a redraw each second; nothing else does.
const TICK: Duration = Duration::from_secs(1);

enum AppEvent {
    Terminal(Event),
    Inventory(Box<InventoryEvent>),
    Tick,
    Migration(Box<SupervisorEvent>),
    Prechecks {
        request_id: u64,
        reports: Vec<(HostName, Result<PrecheckReport, String>)>,
    },
    /// Prechecks passed again at launch: hand the plan to the supervisor.
    Launch(Box<LiveMigrationPlan>),
    Notice(String),
}

/// What carries out the app's actions: the supervisor for migrations, worker threads for
/// prechecks. Without a history there is no supervisor, and launching says why.
struct Bridge {
    config: Config,
    supervisor: Result<Supervisor, String>,
    events: mpsc::Sender<AppEvent>,
}

impl Bridge {
    fn start(config: &Config, events: mpsc::Sender<AppEvent>) -> Bridge {
        let mut unreadable = Vec::new();
        let supervisor = History::open(&history::default_path())
            .map_err(|e| format!("migrations are unavailable: {e}"))
            .map(|history| {
                let unfinished = unfinished_live_migrations(&history).unwrap_or_default();
                unreadable = unfinished.unreadable;
                let supervisor = Supervisor::start(SupervisorSettings {
                    history,
                    limits: config.migration.queue_limits(),
                });
                // A ferry that died left these to libvirt: watch them again.
                for (id, plan) in unfinished.resumable {
                    supervisor.resume(id, plan);
                }
                supervisor
            });
        for problem in unreadable {
            let _ = events.send(AppEvent::Notice(problem));
        }
        Bridge {
            config: config.clone(),
            supervisor,
            events,
        }
    }

    /// Moves the supervisor's events onto the app's channel.
    fn forward_supervisor_events(&mut self) -> anyhow::Result<()> {
        let Ok(supervisor) = &mut self.supervisor else {
            return Ok(());
        };
        let (_, placeholder) = mpsc::channel();
        let events = std::mem::replace(&mut supervisor.events, placeholder);
        let app_events = self.events.clone();
        thread::Builder::new()
            .name("supervisor-events".into())
            .spawn(move || {
                while let Ok(event) = events.recv() {
                    if app_events
                        .send(AppEvent::Migration(Box::new(event)))
                        .is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(())
    }

    fn carry_out(&self, action: Action) {
        match action {
            Action::RequestPrechecks(request) => self.prechecks(request),
            Action::LaunchLiveMigration(request) => self.launch(request),
            Action::LaunchColdMigration(_) => {
                let _ = self.events.send(AppEvent::Notice(
                    "cold migration is not available in this build".into(),
                ));
            }
            Action::Operator { id, command } => match &self.supervisor {
                Ok(supervisor) => supervisor.command(id, command),
                Err(reason) => {
                    let _ = self.events.send(AppEvent::Notice(reason.clone()));
                }
            },
        }
    }

    /// Every candidate's checklist, gathered on a worker: one libvirt session to the source,
    /// candidates probed one after another.
    fn prechecks(&self, request: PrecheckRequest) {
        let config = self.config.clone();
        let events = self.events.clone();
        let spawned = thread::Builder::new()
            .name("prechecks".into())
            .spawn(move || {
                let found = precheck_facts::pick_auto_destination(
                    &config,
                    &request.instance_name,
                    Some(request.instance.host.as_str()),
                    request.block_migration,
                );
                let reports = match found {
                    Ok(auto) => request
                        .destinations
                        .iter()
                        .map(|host| {
                            let report = auto
                                .candidates
                                .iter()
                                .find(|c| c.host == host.as_str())
                                .map(|c| c.report.clone())
                                .ok_or_else(|| "not checked".to_string());
                            (host.clone(), report)
                        })
                        .collect(),
                    Err(error) => request
                        .destinations
                        .iter()
                        .map(|host| (host.clone(), Err(error.to_string())))
                        .collect(),
                };
                let _ = events.send(AppEvent::Prechecks {
                    request_id: request.request_id,
                    reports,
                });
            });
        if let Err(error) = spawned {
            let _ = self
                .events
                .send(AppEvent::Notice(format!("prechecks not started: {error}")));
        }
    }

    /// The checks run again right before the start: the dialog's verdicts may be minutes old.
    fn launch(&self, request: LaunchRequest) {
        if let Err(reason) = &self.supervisor {
            let _ = self.events.send(AppEvent::Notice(reason.clone()));
            return;
        }
        let config = self.config.clone();
        let events = self.events.clone();
        let _ = thread::Builder::new().name("launch".into()).spawn(move || {
            let options = request.live_options();
            let checked = precheck_facts::precheck_live_migration(
                &config,
                &request.instance_name,
                Some(request.source().as_str()),
                request.destination.as_str(),
                options.block,
            );
            let event = match checked {
                Err(error) => {
                    AppEvent::Notice(format!("{} not started: {error}", request.instance_name))
                }
                Ok((_, report)) if !report.passed() => AppEvent::Notice(format!(
                    "{} not started: {}",
                    request.instance_name,
                    report.failure_reasons()
                )),
                Ok((facts, report)) => {
                    match options::live_plan(&config, &facts, &report, &options) {
                        Some(plan) => AppEvent::Launch(Box::new(plan)),
                        None => AppEvent::Notice(format!(
                            "{} not started: a host is missing from the config",
                            request.instance_name
                        )),
                    }
                }
            };
            let _ = events.send(event);
        });
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
    let mut bridge = Bridge::start(config, events_tx.clone());
    bridge.forward_supervisor_events()?;
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
    app.notice = notice.or_else(|| bridge.supervisor.as_ref().err().cloned());
    let result = event_loop(
        Terminal::new(CrosstermBackend::new(stdout))?,
        app,
        &theme,
        events_rx,
        &bridge,
    );
    restore_terminal();
    result
}

fn event_loop(
    mut terminal: Terminal<CrosstermBackend<Stdout>>,
    mut app: App,
    theme: &Theme,
    events: mpsc::Receiver<AppEvent>,
    bridge: &Bridge,
) -> anyhow::Result<()> {
    // Not `Terminal::clear`: ratatui reads the cursor position there, and the answer never
    // comes while the terminal-input thread waits in `event::read` holding crossterm's reader,
    // so ferry quit after 2 s with "The cursor position could not be read" (seen under tmux).
    ratatui::backend::Backend::clear(terminal.backend_mut())?;
    terminal.draw(|frame| views::draw(frame, &app, theme))?;
    while let Ok(event) = events.recv() {
        let mut dirty = apply(&mut app, event, bridge);
        // Drain whatever else is queued (a burst of refreshes, key repeat) before drawing once.
        while let Ok(event) = events.try_recv() {
            dirty |= apply(&mut app, event, bridge);
        }
        for action in app.take_actions() {
            bridge.carry_out(action);
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

fn apply(app: &mut App, event: AppEvent, bridge: &Bridge) -> bool {
    match event {
        AppEvent::Migration(event) => {
            let at = SystemTime::now();
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
        AppEvent::Prechecks {
            request_id,
            reports,
        } => app.on_precheck_reports(request_id, reports),
        AppEvent::Launch(plan) => {
            if let Ok(supervisor) = &bridge.supervisor {
                supervisor.submit(*plan);
            }
            false
        }
        AppEvent::Notice(message) => {
            app.notice = Some(message);
            true
        }
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
