//! The one engine API both front ends use. The TUI and the CLI send [`EngineRequest`]s and read
//! one stream of [`EngineEvent`]s; everything between — planning with the prechecks, the
//! queue, launching, operator commands, recording in the history, recovering what a stopped
//! ferry left — happens here, on the shared tokio runtime.
//!
//! One task, the engine's, owns the supervisor and the table of running cold migrations;
//! requests and the results of the work it hands out come back through its inbox, so nothing
//! is shared behind a lock. Work that waits (prechecks, a cold migration, confirm or revert)
//! runs in tasks of its own, and what blocks (the SQLite history, libvirt) runs off the
//! runtime's workers.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

mod cold_launch;
pub mod nova;
use cold_launch::{
    announce_awaiting, recover_cold_migrations, run_cold, settle_cold, ColdLaunch, ColdSurroundings,
};
use nova::{NovaDesk, NovaEvent, NovaRequest, NovaVerdicts};

use super::cold::{self, ColdCommand, ColdMigrationPlan, ColdOptions, ColdUpdate};
use super::history::{self, History};
use super::live::{LiveMigrationPlan, OperatorCommand};
use super::options::{self, LiveOptions};
use super::plan;
use super::supervisor::{
    unfinished_live_migrations, RequestId, Supervisor, SupervisorEvent, SupervisorSettings,
};
use crate::config::Config;
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;
use crate::precheck::{BlockMigrationChoice, PrecheckReport};

/// What a front end asks of the engine.
#[derive(Debug, Clone)]
pub enum EngineRequest {
    /// The checklist of each candidate destination, answered by [`EngineEvent::Prechecks`]
    /// with the same `request_id`. Live: one session to the source, candidates probed one
    /// after another. Cold: the cold migration's own checks, each candidate on its own.
    Prechecks {
        request_id: u64,
        kind: MigrationKind,
        instance: String,
        source: HostName,
        destinations: Vec<HostName>,
        block_migration: BlockMigrationChoice,
        /// Cold: the resize asked for; the guest's own host may then be a destination.
        new_size: Option<cold::NewSize>,
    },
    /// Checks again on fresh facts (a dialog's verdicts may be minutes old), reports them as
    /// [`EngineEvent::Planned`], then queues; or [`EngineEvent::Refused`]. `source` None: the
    /// host that holds the instance; given, the instance must still be there.
    LaunchLive {
        instance: String,
        source: Option<HostName>,
        destination: Destination,
        options: LiveOptions,
    },
    /// Plans on fresh facts, reports them, records the plan, and runs it under the queue to
    /// "awaiting confirm" or a rollback.
    LaunchCold {
        instance: String,
        source: Option<HostName>,
        /// As the operator typed it; the cold plan says why a name is refused.
        destination: String,
        options: ColdOptions,
    },
    /// Abort, force-complete, bandwidth, downtime or recover, to a live migration.
    Live {
        id: RequestId,
        command: OperatorCommand,
    },
    AbortCold {
        id: MigrationId,
    },
    /// Confirm (`keep`) or revert a cold migration awaiting the answer.
    SettleCold {
        id: MigrationId,
        keep: bool,
    },
    /// Everything asked of a Nova cloud: its pre-flight, a launch, abort, force-complete,
    /// confirm and revert, all carried out by Nova.
    Nova(NovaRequest),
}

/// Where a launch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// As the operator typed it: a name that is not a configured host (or not a host name at
    /// all) fails its check, with why, and nothing is contacted.
    Named(String),
    /// Every other configured host is checked; the passing one with the most free memory.
    Auto,
}

/// What a cold migration reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ColdEvent {
    /// Recorded in the history and handed to the engine: the first event of a cold migration
    /// launched through this engine.
    Launched(Box<ColdMigrationPlan>),
    /// Found in the history at start: it awaits confirm or revert (launched from the CLI, or
    /// by an earlier ferry).
    FoundAwaiting {
        plan: Box<ColdMigrationPlan>,
        started_at: SystemTime,
        total_time_ms: Option<u64>,
        downtime_ms: Option<u64>,
        bytes_copied: Option<u64>,
    },
    /// What the cold engine reported, in order.
    Engine(ColdUpdate),
    /// Waiting for its turn under the queue limits: "queued, 2nd behind 14".
    Queued { description: String },
    /// Confirm (`keep`) or revert was started.
    Settling { keep: bool },
    /// Its answer: the steps done, or why nothing (or not everything) was done. A failed
    /// answer leaves the migration awaiting one.
    Settled {
        keep: bool,
        result: Result<Vec<String>, String>,
    },
}

/// The engine's one stream, for both kinds of migration.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    Live(Box<SupervisorEvent>),
    Cold(MigrationId, ColdEvent),
    Prechecks {
        request_id: u64,
        reports: Vec<(HostName, Result<PrecheckReport, String>)>,
    },
    /// A launch's checks on fresh facts, passed or not. For `auto`, `passed_over` names each
    /// other candidate with why it was not chosen.
    Planned {
        kind: MigrationKind,
        instance: String,
        source: String,
        destination: String,
        report: PrecheckReport,
        passed_over: Vec<(String, String)>,
    },
    /// A launch that did not start, with why; nothing was started or recorded.
    Refused {
        kind: MigrationKind,
        instance: String,
        reason: String,
    },
    /// Something the operator should read that belongs to no migration row.
    Notice(String),
    /// What happened to a migration Nova carries out.
    Nova(MigrationId, NovaEvent),
    /// The answer to a `NovaRequest::Preflight` with this `request_id`.
    NovaVerdicts {
        request_id: u64,
        verdicts: Result<NovaVerdicts, String>,
    },
}

/// The front ends' handle. Cloning it is cheap; the engine runs while any clone lives.
#[derive(Clone)]
pub struct Engine {
    inbox: UnboundedSender<Inbox>,
    /// Why migrations cannot run (no history), if they cannot.
    unavailable: Option<String>,
    /// The live migrations taken over at start: (history id, instance).
    resumed: Vec<(MigrationId, String)>,
}

/// What a starting engine takes over of what a stopped ferry left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOver {
    /// Every unfinished live migration is watched again, interrupted cold migrations are
    /// recovered, and those awaiting an answer are announced: the TUI, `ferry resume`.
    Everything,
    /// Only the unfinished live migration of this instance: `ferry recover NAME`.
    Only(String),
    /// Nothing: a `ferry migrate` runs what it was asked and leaves the rest to others.
    Nothing,
}

enum Inbox {
    Request(EngineRequest),
    /// A live launch passed its checks again: queue it.
    Submit(Box<LiveMigrationPlan>),
    ColdStarted {
        id: MigrationId,
        commands: cold::ColdCommandSender,
    },
    ColdEnded {
        id: MigrationId,
    },
    /// A cold migration asks for its turn under the limits the live ones obey.
    ColdReserve {
        id: MigrationId,
        source: HostName,
        destination: HostName,
        granted: tokio::sync::oneshot::Sender<()>,
    },
    Supervisor(Box<SupervisorEvent>),
    Settled {
        id: MigrationId,
    },
}

impl Engine {
    /// Opens the history, takes over what a stopped ferry left (live migrations libvirt
    /// carried on with, cold ones awaiting an answer or interrupted mid-way), and starts the
    /// supervisor. Without a history migrations are refused with why, and prechecks still run.
    pub fn start(config: &Config, take_over: TakeOver) -> (Engine, UnboundedReceiver<EngineEvent>) {
        let (events, events_rx) = mpsc::unbounded_channel();
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        let notice = |message: String| {
            let _ = events.send(EngineEvent::Notice(message));
        };
        let mut resumed = Vec::new();
        let supervisor = match History::open(&history::default_path()) {
            Err(error) => Err(format!("migrations are unavailable: {error}")),
            Ok(history) => {
                let unfinished = match take_over {
                    TakeOver::Nothing => Default::default(),
                    _ => unfinished_live_migrations(&history).unwrap_or_default(),
                };
                for problem in unfinished.unreadable {
                    notice(problem);
                }
                if take_over == TakeOver::Everything {
                    for problem in announce_awaiting(&history, &events) {
                        notice(problem);
                    }
                }
                let mut supervisor = Supervisor::start(SupervisorSettings {
                    history,
                    limits: config.migration.queue_limits(),
                });
                // A ferry that died left these to libvirt: watch them again.
                for (id, plan) in unfinished.resumable {
                    if let TakeOver::Only(instance) = &take_over {
                        if &plan.instance_name != instance {
                            continue;
                        }
                    }
                    resumed.push((id, plan.instance_name.clone()));
                    supervisor.resume(id, plan);
                }
                forward_supervisor_events(&mut supervisor, inbox.clone());
                Ok(supervisor)
            }
        };
        let unavailable = supervisor.as_ref().err().cloned();
        let nova = NovaDesk::new(config.clone(), events.clone());
        if supervisor.is_ok() && take_over == TakeOver::Everything {
            crate::runtime::handle().spawn(recover_cold_migrations(events.clone()));
        }
        let state = EngineTask {
            nova,
            config: config.clone(),
            supervisor,
            events,
            inbox: inbox.clone(),
            cold_commands: HashMap::new(),
            settling: HashSet::new(),
            cold_queued: HashSet::new(),
            checking: Default::default(),
        };
        crate::runtime::handle().spawn(state.run(inbox_rx));
        (
            Engine {
                inbox,
                unavailable,
                resumed,
            },
            events_rx,
        )
    }

    /// The live migrations this engine took over at start: (history id, instance).
    pub fn resumed(&self) -> &[(MigrationId, String)] {
        &self.resumed
    }

    pub fn send(&self, request: EngineRequest) {
        let _ = self.inbox.send(Inbox::Request(request));
    }

    /// Why migrations cannot be launched in this process (the history could not be opened).
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }
}

/// Moves the supervisor's events into the engine's inbox, where cold migrations' places in
/// the queue are told apart from the live migrations' events.
fn forward_supervisor_events(supervisor: &mut Supervisor, inbox: UnboundedSender<Inbox>) {
    let (_, placeholder) = mpsc::unbounded_channel();
    let mut supervisor_events = std::mem::replace(&mut supervisor.events, placeholder);
    crate::runtime::handle().spawn(async move {
        while let Some(event) = supervisor_events.recv().await {
            if inbox.send(Inbox::Supervisor(Box::new(event))).is_err() {
                return;
            }
        }
    });
}

struct EngineTask {
    /// Requests to Nova clouds, each carried out in a task of its own.
    nova: NovaDesk,
    config: Config,
    supervisor: Result<Supervisor, String>,
    events: UnboundedSender<EngineEvent>,
    inbox: UnboundedSender<Inbox>,
    /// The abort channel of each cold migration running now.
    cold_commands: HashMap<MigrationId, cold::ColdCommandSender>,
    /// Confirm or revert under way: a second answer to the same migration is dropped.
    settling: HashSet<MigrationId>,
    /// Cold migrations waiting for their turn in the queue.
    cold_queued: HashSet<MigrationId>,
    /// Held while a launch checks its facts: launches asked for together are checked one
    /// after another, as the shared-storage probes of one directory collide when run at once.
    checking: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl EngineTask {
    async fn run(mut self, mut inbox: UnboundedReceiver<Inbox>) {
        while let Some(message) = inbox.recv().await {
            match message {
                Inbox::Request(request) => self.on_request(request),
                Inbox::Submit(plan) => {
                    if let Ok(supervisor) = &self.supervisor {
                        supervisor.submit(*plan);
                    }
                }
                Inbox::ColdStarted { id, commands } => {
                    self.cold_queued.remove(&id);
                    self.cold_commands.insert(id, commands);
                }
                Inbox::ColdEnded { id } => {
                    self.cold_commands.remove(&id);
                    self.cold_queued.remove(&id);
                    if let Ok(supervisor) = &self.supervisor {
                        supervisor.release(id);
                    }
                }
                Inbox::ColdReserve {
                    id,
                    source,
                    destination,
                    granted,
                } => {
                    if let Ok(supervisor) = &self.supervisor {
                        self.cold_queued.insert(id);
                        supervisor.reserve(id, source, destination, granted);
                    }
                }
                Inbox::Supervisor(event) => self.on_supervisor(*event),
                Inbox::Settled { id } => {
                    self.settling.remove(&id);
                }
            }
        }
    }

    fn notice(&self, message: String) {
        let _ = self.events.send(EngineEvent::Notice(message));
    }

    /// The supervisor's events go out as they are, but a cold migration's place in the queue
    /// is the cold migration's own event.
    fn on_supervisor(&self, event: SupervisorEvent) {
        let event = match event {
            SupervisorEvent::Waiting {
                request,
                description,
                ..
            } if self.cold_queued.contains(&request) => {
                EngineEvent::Cold(request, ColdEvent::Queued { description })
            }
            SupervisorEvent::Notice {
                request: Some(request),
                message,
            } if self.cold_queued.contains(&request) => EngineEvent::Notice(message),
            event => EngineEvent::Live(Box::new(event)),
        };
        let _ = self.events.send(event);
    }

    fn on_request(&mut self, request: EngineRequest) {
        let runtime = crate::runtime::handle();
        match request {
            EngineRequest::Prechecks {
                request_id,
                kind,
                instance,
                source,
                destinations,
                block_migration,
                new_size,
            } => {
                let (config, events) = (self.config.clone(), self.events.clone());
                runtime.spawn(async move {
                    let reports = match kind {
                        MigrationKind::Live => {
                            live_prechecks(
                                &config,
                                &instance,
                                &source,
                                &destinations,
                                block_migration,
                            )
                            .await
                        }
                        MigrationKind::Cold => {
                            cold_prechecks(&config, &instance, &destinations, new_size).await
                        }
                    };
                    let _ = events.send(EngineEvent::Prechecks {
                        request_id,
                        reports,
                    });
                });
            }
            EngineRequest::LaunchLive {
                instance,
                source,
                destination,
                options,
            } => {
                if let Err(reason) = &self.supervisor {
                    return self.notice(reason.clone());
                }
                let (config, events, inbox) =
                    (self.config.clone(), self.events.clone(), self.inbox.clone());
                let checking = std::sync::Arc::clone(&self.checking);
                runtime.spawn(async move {
                    let _checking = checking.lock().await;
                    let refused = |reason: String| {
                        let _ = events.send(EngineEvent::Refused {
                            kind: MigrationKind::Live,
                            instance: instance.clone(),
                            reason,
                        });
                    };
                    match checked_live_plan(
                        &config,
                        &instance,
                        source.as_ref(),
                        &destination,
                        &options,
                    )
                    .await
                    {
                        Err(reason) => refused(reason),
                        Ok(checked) => {
                            let passed = checked.report.passed();
                            let _ = events.send(EngineEvent::Planned {
                                kind: MigrationKind::Live,
                                instance: instance.clone(),
                                source: checked.facts.source_host.clone(),
                                destination: checked.facts.destination_host.clone(),
                                report: checked.report.clone(),
                                passed_over: checked.passed_over,
                            });
                            if !passed {
                                return refused(format!(
                                    "{}; fix the failed checks and retry",
                                    checked.report.failure_reasons()
                                ));
                            }
                            match options::live_plan(
                                &config,
                                &checked.facts,
                                &checked.report,
                                &options,
                            ) {
                                Some(plan) => {
                                    let _ = inbox.send(Inbox::Submit(Box::new(plan)));
                                }
                                None => refused("a host is missing from the config".to_string()),
                            }
                        }
                    }
                });
            }
            EngineRequest::LaunchCold {
                instance,
                source,
                destination,
                options,
            } => {
                if let Err(reason) = &self.supervisor {
                    return self.notice(reason.clone());
                }
                let around = ColdSurroundings {
                    config: self.config.clone(),
                    events: self.events.clone(),
                    inbox: self.inbox.clone(),
                    checking: std::sync::Arc::clone(&self.checking),
                };
                let launch = ColdLaunch {
                    instance,
                    source,
                    destination,
                    options,
                };
                runtime.spawn_blocking(move || run_cold(&around, &launch));
            }
            EngineRequest::Live { id, command } => match &self.supervisor {
                Ok(supervisor) => supervisor.command(id, command),
                Err(reason) => self.notice(reason.clone()),
            },
            EngineRequest::AbortCold { id } => {
                if self.cold_queued.remove(&id) {
                    // Still waiting for its turn: taken out of the queue, nothing started.
                    if let Ok(supervisor) = &self.supervisor {
                        supervisor.release(id);
                    }
                    return;
                }
                let sent = self
                    .cold_commands
                    .get(&id)
                    .is_some_and(|commands| commands.send(ColdCommand::Abort).is_ok());
                if !sent {
                    self.notice(format!(
                        "#{id}: not aborted: the cold migration is no longer running"
                    ));
                }
            }
            EngineRequest::Nova(request) => self.nova.on_request(request),
            EngineRequest::SettleCold { id, keep } => {
                if !self.settling.insert(id) {
                    return;
                }
                let (events, inbox) = (self.events.clone(), self.inbox.clone());
                let call_timeout = self.config.call_timeout();
                let _ = events.send(EngineEvent::Cold(id, ColdEvent::Settling { keep }));
                runtime.spawn_blocking(move || {
                    let result = settle_cold(id, keep, call_timeout);
                    let _ = events.send(EngineEvent::Cold(id, ColdEvent::Settled { keep, result }));
                    let _ = inbox.send(Inbox::Settled { id });
                });
            }
        }
    }
}

/// Every candidate's live checklist from one session to the source.
async fn live_prechecks(
    config: &Config,
    instance: &str,
    source: &HostName,
    destinations: &[HostName],
    block_migration: BlockMigrationChoice,
) -> Vec<(HostName, Result<PrecheckReport, String>)> {
    let found =
        plan::pick_auto_destination(config, instance, Some(source.as_str()), block_migration).await;
    destinations
        .iter()
        .map(|host| {
            let report = match &found {
                Ok(auto) => auto
                    .candidates
                    .iter()
                    .find(|candidate| candidate.host == host.as_str())
                    .map(|candidate| candidate.report.clone())
                    .ok_or_else(|| "not checked".to_string()),
                Err(error) => Err(error.to_string()),
            };
            (host.clone(), report)
        })
        .collect()
}

/// Every candidate's cold checklist, all at once.
async fn cold_prechecks(
    config: &Config,
    instance: &str,
    destinations: &[HostName],
    new_size: Option<cold::NewSize>,
) -> Vec<(HostName, Result<PrecheckReport, String>)> {
    let options = ColdOptions {
        new_size,
        ..ColdOptions::default()
    };
    let planning: Vec<_> = destinations
        .iter()
        .map(|destination| {
            let (config, instance, destination, options) = (
                config.clone(),
                instance.to_string(),
                destination.clone(),
                options.clone(),
            );
            tokio::spawn(async move {
                cold::plan(&config, &instance, destination.as_str(), &options)
                    .await
                    .map(|planning| planning.report)
                    .map_err(|error| error.to_string())
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(destinations.len());
    for (destination, planned) in destinations.iter().zip(planning) {
        let report = planned
            .await
            .unwrap_or_else(|error| Err(format!("the cold prechecks failed: {error}")));
        reports.push((destination.clone(), report));
    }
    reports
}

/// A live launch's checks, made now.
struct CheckedLive {
    facts: crate::precheck::PrecheckFacts,
    report: PrecheckReport,
    passed_over: Vec<(String, String)>,
}

/// The checks of a live launch on fresh facts; for `auto`, every other host is checked and
/// the passing one with the most free memory is taken. Err: no facts at all (why).
async fn checked_live_plan(
    config: &Config,
    instance: &str,
    source: Option<&HostName>,
    destination: &Destination,
    options: &LiveOptions,
) -> Result<CheckedLive, String> {
    let source = source.map(HostName::as_str);
    match destination {
        Destination::Named(destination) => {
            let (facts, report) = plan::precheck_live_migration(
                config,
                instance,
                source,
                destination.as_str(),
                options.block,
            )
            .await
            .map_err(|error| error.to_string())?;
            Ok(CheckedLive {
                facts,
                report,
                passed_over: Vec::new(),
            })
        }
        Destination::Auto => {
            let auto = plan::pick_auto_destination(config, instance, source, options.block)
                .await
                .map_err(|error| error.to_string())?;
            let chosen = auto.chosen.clone().ok_or_else(|| {
                format!(
                    "auto: no host passes the prechecks from {}; name one destination to see its \
                     full report",
                    auto.source_host
                )
            })?;
            let mut passed_over = Vec::new();
            let mut picked = None;
            for candidate in auto.candidates {
                if candidate.host == chosen {
                    picked = Some(candidate);
                } else {
                    let why = if candidate.report.passed() {
                        "passes, less free memory".to_string()
                    } else {
                        candidate.report.failure_reasons()
                    };
                    passed_over.push((candidate.host, why));
                }
            }
            let picked = picked.expect("the chosen host is a candidate");
            Ok(CheckedLive {
                facts: picked.facts,
                report: picked.report,
                passed_over,
            })
        }
    }
}
