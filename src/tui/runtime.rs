//! The terminal side: raw mode, alternate screen, the event loop, and restoring the terminal
//! on every way out (quit, error, panic).
//!
//! Events arrive on one channel: keys and resizes (from a reader thread), inventory events
//! (from the host workers), migration events (from the supervisor), precheck reports (from
//! worker threads) and a tick each second (so "3s ago" ages). The loop folds each into the
//! app, carries out the actions the keys produced, and redraws only when something visible
//! changed. Nothing here waits on libvirt: prechecks run on their own threads, live
//! migrations in the supervisor's, each cold migration (and each confirm or revert) on a
//! worker of its own that records it in the history as the CLI does.

use std::collections::{HashMap, HashSet};
use std::io::{self, Stdout};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::config::Config;
use crate::engine::cold::{self, ColdCommand, ColdUpdate, Recovery};
use crate::engine::cold_record;
use crate::engine::history::{self, History, MigrationId};
use crate::engine::live::LiveMigrationPlan;
use crate::engine::options;
use crate::engine::supervisor::{
    unfinished_live_migrations, Supervisor, SupervisorEvent, SupervisorSettings,
};
use crate::inventory::{spawn_workers, Inventory, InventoryEvent};
use crate::libvirt::precheck_facts;
use crate::model::HostName;
use crate::precheck::PrecheckReport;

use super::action::{Action, ColdLaunchRequest, LaunchRequest, PrecheckRequest};
use super::app::App;
use super::cold_migrations::ColdChange;
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
    /// A cold migration's change, from its worker.
    Cold(MigrationId, ColdChange),
    Notice(String),
}

/// What the runtime keeps of the cold migrations its workers run.
#[derive(Default)]
struct ColdWorkers {
    /// The abort channel of each cold migration running now.
    commands: Mutex<HashMap<MigrationId, cold::ColdCommandSender>>,
    /// Confirm or revert under way: a second answer to the same migration is dropped.
    settling: Mutex<HashSet<MigrationId>>,
}

/// What carries out the app's actions: the supervisor for migrations, worker threads for
/// prechecks. Without a history there is no supervisor, and launching says why.
struct Bridge {
    config: Config,
    supervisor: Result<Supervisor, String>,
    events: mpsc::Sender<AppEvent>,
    cold: Arc<ColdWorkers>,
}

impl Bridge {
    fn start(config: &Config, events: mpsc::Sender<AppEvent>) -> Bridge {
        let mut unreadable = Vec::new();
        let supervisor = History::open(&history::default_path())
            .map_err(|e| format!("migrations are unavailable: {e}"))
            .map(|history| {
                let unfinished = unfinished_live_migrations(&history).unwrap_or_default();
                unreadable = unfinished.unreadable;
                // Cold migrations waiting for an answer are listed, so C or R can give it.
                match cold_record::all_awaiting(&history) {
                    Ok(awaiting) => {
                        for found in awaiting {
                            match found.plan {
                                Ok(plan) => {
                                    let record = found.record;
                                    let _ = events.send(AppEvent::Cold(
                                        record.id,
                                        ColdChange::FoundAwaiting {
                                            plan: Box::new(plan),
                                            started_at: SystemTime::UNIX_EPOCH
                                                + Duration::from_millis(
                                                    record.started_at_unix_ms.max(0) as u64,
                                                ),
                                            total_time_ms: record.total_time_ms,
                                            downtime_ms: record.downtime_ms,
                                            bytes_copied: record.bytes_transferred,
                                        },
                                    ));
                                }
                                Err(problem) => unreadable.push(problem),
                            }
                        }
                    }
                    Err(error) => unreadable.push(format!("cold migrations: {error}")),
                }
                recover_cold_migrations(events.clone());
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
            cold: Arc::default(),
        }
    }

    /// Cold migrations keep their plan in the history for confirm and revert: without it
    /// they cannot start.
    fn cold_available(&self) -> bool {
        self.supervisor.is_ok()
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
            Action::LaunchColdMigration(request) => self.launch_cold(request),
            Action::AbortCold { id } => {
                let sent = self
                    .cold
                    .commands
                    .lock()
                    .expect("cold commands lock")
                    .get(&id)
                    .map(|commands| commands.send(ColdCommand::Abort).is_ok());
                if sent != Some(true) {
                    let _ = self.events.send(AppEvent::Notice(format!(
                        "#{id}: not aborted: the cold migration is no longer running"
                    )));
                }
            }
            Action::SettleCold { id, keep } => self.settle_cold(id, keep),
            Action::Operator { id, command } => match &self.supervisor {
                Ok(supervisor) => supervisor.command(id, command),
                Err(reason) => {
                    let _ = self.events.send(AppEvent::Notice(reason.clone()));
                }
            },
        }
    }

    /// Every candidate's checklist, gathered on a worker: one libvirt session to the source,
    /// candidates probed one after another. A cold migration's checks are its own (no CPU
    /// or memory-copy checks, room for every local disk), one worker per candidate.
    fn prechecks(&self, request: PrecheckRequest) {
        if request.kind == crate::engine::history::MigrationKind::Cold {
            return self.cold_prechecks(request);
        }
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

impl Bridge {
    fn notice(&self, message: String) {
        let _ = self.events.send(AppEvent::Notice(message));
    }

    fn cold_prechecks(&self, request: PrecheckRequest) {
        for destination in request.destinations.clone() {
            let config = self.config.clone();
            let events = self.events.clone();
            let instance = request.instance_name.clone();
            let request_id = request.request_id;
            let spawned = thread::Builder::new()
                .name("cold-prechecks".into())
                .spawn(move || {
                    let report = crate::runtime::wait(cold::plan(
                        &config,
                        &instance,
                        destination.as_str(),
                        &cold::ColdOptions::default(),
                    ))
                    .map(|planning| planning.report)
                    .map_err(|error| error.to_string());
                    let _ = events.send(AppEvent::Prechecks {
                        request_id,
                        reports: vec![(destination, report)],
                    });
                });
            if let Err(error) = spawned {
                self.notice(format!("prechecks not started: {error}"));
            }
        }
    }

    /// Plans on fresh facts, records the plan in the history, then runs the migration and
    /// records each phase, as `ferry migrate --cold` does. Its changes reach the app as
    /// `AppEvent::Cold`.
    fn launch_cold(&self, request: ColdLaunchRequest) {
        if let Err(reason) = &self.supervisor {
            return self.notice(reason.clone());
        }
        let config = self.config.clone();
        let events = self.events.clone();
        let workers = Arc::clone(&self.cold);
        let spawned = thread::Builder::new()
            .name(format!("cold-{}", request.instance_name))
            .spawn(move || {
                let name = &request.instance_name;
                let notice = |message: String| {
                    let _ = events.send(AppEvent::Notice(message));
                };
                let planning = match crate::runtime::wait(cold::plan(
                    &config,
                    name,
                    request.destination.as_str(),
                    &request.cold_options(),
                )) {
                    Ok(planning) => planning,
                    Err(error) => return notice(format!("{name} not started: {error}")),
                };
                let Some(plan) = planning.plan else {
                    return notice(format!(
                        "{name} not started: {}",
                        planning.report.failure_reasons()
                    ));
                };
                if plan.source.name != request.source().as_str() {
                    return notice(format!(
                        "{name} not started: it is on {} now, not on {}",
                        plan.source.name,
                        request.source()
                    ));
                }
                let mut history = match History::open(&history::default_path()) {
                    Ok(history) => history,
                    Err(error) => return notice(format!("{name} not started: {error}")),
                };
                // Held until the outcome is recorded: a recovery (`ferry resume`, another
                // TUI) leaves this migration alone meanwhile.
                let _running = match cold_record::lock_run(&plan) {
                    Ok(lock) => lock,
                    Err(error) => return notice(format!("{name} not started: {error}")),
                };
                let id = match cold_record::record_start(&mut history, &plan) {
                    Ok(id) => id,
                    Err(error) => return notice(format!("{name} not started: {error}")),
                };
                let send = |change: ColdChange| events.send(AppEvent::Cold(id, change)).is_ok();
                send(ColdChange::Launched(Box::new(plan.clone())));
                let started = Instant::now();
                let mut handle = cold::start(plan);
                workers
                    .commands
                    .lock()
                    .expect("cold commands lock")
                    .insert(id, handle.commands.clone());
                while let Some(update) = handle.updates.blocking_recv() {
                    let at_ms = started.elapsed().as_millis() as u64;
                    if let Err(error) = cold_record::record_update(&mut history, id, at_ms, &update)
                    {
                        notice(format!("#{id} {name}: {error}"));
                    }
                    if let ColdUpdate::Finished(outcome) = &update {
                        if let Err(error) = cold_record::record_outcome(&mut history, id, outcome) {
                            notice(format!("#{id} {name}: {error}"));
                        }
                    }
                    // The TUI may be gone (quit): the migration still runs to its end and is
                    // recorded, so nothing is left half-done.
                    send(ColdChange::Engine(update));
                }
                workers
                    .commands
                    .lock()
                    .expect("cold commands lock")
                    .remove(&id);
                let _ = crate::runtime::wait(handle.task);
            });
        if let Err(error) = spawned {
            self.notice(format!("cold migration not started: {error}"));
        }
    }

    /// Confirm (`keep`) or revert on a worker, with the plan the history kept: the same path
    /// as `ferry confirm` and `ferry revert`.
    fn settle_cold(&self, id: MigrationId, keep: bool) {
        if !self
            .cold
            .settling
            .lock()
            .expect("cold settling lock")
            .insert(id)
        {
            return;
        }
        let events = self.events.clone();
        let workers = Arc::clone(&self.cold);
        let call_timeout = self.config.call_timeout();
        let _ = events.send(AppEvent::Cold(id, ColdChange::Settling { keep }));
        let spawned = thread::Builder::new()
            .name("cold-settle".into())
            .spawn(move || {
                let result = (|| -> Result<Vec<String>, String> {
                    let mut history =
                        History::open(&history::default_path()).map_err(|e| e.to_string())?;
                    let plan =
                        cold_record::awaiting_by_id(&history, id).map_err(|e| e.to_string())?;
                    cold_record::settle(&mut history, id, &plan, keep, call_timeout)
                        .map(|report| report.steps)
                        .map_err(|e| e.to_string())
                })();
                let _ = events.send(AppEvent::Cold(id, ColdChange::Settled { keep, result }));
                workers
                    .settling
                    .lock()
                    .expect("cold settling lock")
                    .remove(&id);
            });
        if let Err(error) = spawned {
            self.notice(format!("#{id}: not settled: {error}"));
            self.cold
                .settling
                .lock()
                .expect("cold settling lock")
                .remove(&id);
        }
    }
}

/// Settles, on a worker, the cold migrations a ferry left mid-way when it stopped (no outcome
/// recorded): one recovered as awaiting confirm is listed like those found awaiting, a
/// rolled-back one or one left as it is gets a notice.
fn recover_cold_migrations(events: Sender<AppEvent>) {
    let notice_events = events.clone();
    let spawned = thread::Builder::new()
        .name("cold-recovery".into())
        .spawn(move || {
            let notice = |message: String| {
                let _ = events.send(AppEvent::Notice(message));
            };
            let interrupted = History::open(&history::default_path())
                .map_err(|e| e.to_string())
                .and_then(|mut history| {
                    cold_record::recover_interrupted(&mut history).map_err(|e| e.to_string())
                });
            let interrupted = match interrupted {
                Ok(interrupted) => interrupted,
                Err(error) => return notice(format!("interrupted cold migrations: {error}")),
            };
            for found in interrupted {
                let record = found.record;
                let heading = format!(
                    "cold migration #{} of {} ({} → {}) was interrupted when ferry stopped",
                    record.id, record.instance_name, record.source_host, record.destination_host
                );
                match found.result {
                    Ok((plan, Recovery::AwaitingConfirm { .. })) => {
                        let _ =
                            events.send(AppEvent::Cold(
                                record.id,
                                ColdChange::FoundAwaiting {
                                    plan: Box::new(plan),
                                    started_at: SystemTime::UNIX_EPOCH
                                        + Duration::from_millis(
                                            record.started_at_unix_ms.max(0) as u64
                                        ),
                                    total_time_ms: None,
                                    downtime_ms: None,
                                    bytes_copied: None,
                                },
                            ));
                        notice(format!(
                            "{heading}; its verified copy awaits confirm or revert"
                        ));
                    }
                    Ok((_, Recovery::RolledBack { leftovers, .. })) => notice(format!(
                        "{heading}; rolled back: {} is on {} as before{}",
                        record.instance_name,
                        record.source_host,
                        if leftovers.is_empty() {
                            String::new()
                        } else {
                            format!(" (left on the destination: {})", leftovers.join(", "))
                        }
                    )),
                    Err(reason) => notice(format!("{heading}; not recovered: {reason}")),
                }
            }
        });
    if let Err(error) = spawned {
        let _ = notice_events.send(AppEvent::Notice(format!(
            "interrupted cold migrations not recovered: {error}"
        )));
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
    app.cold_migration_available = bridge.cold_available();
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
        AppEvent::Cold(id, change) => app.on_migration_event(MigrationEvent {
            id,
            at: SystemTime::now(),
            change: MigrationChange::Cold(change),
        }),
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
