//! Runs every migration a ferry process was asked for: queues them under the per-host and
//! global limits, starts (or, after a restart, takes over) each one, records it in the
//! history, serves its control socket for other terminals, and reports everything as one
//! stream of [`SupervisorEvent`]s for the CLI or the TUI.
//!
//! One tokio task owns the queue and the history connection; engines (each a task of its
//! own) and control sockets talk to it through its inbox, so nothing here is shared behind a
//! lock. The history is SQLite on local disk: its writes run under `block_in_place`, so the
//! runtime moves other tasks off the worker while one waits for the disk.
//!
//! The queue and its limits know migrations by id and hosts only; the live plan is carried
//! beside them, so another kind of migration can go through the same queue.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::control::{self, ControlServer};
use super::history::{self, EventKind, History, NewMigration, Outcome, OutcomeKind};
use super::live::{
    self, CommandReply, CommandSender, LiveMigrationPlan, LiveOutcome, MigrationUpdate,
    OperatorCommand,
};
use super::queue::{MigrationQueue, QueueLimits, QueuePosition};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;
use crate::progress::MigrationPhase;

/// Every migration is known by its history id from the moment it is submitted: the history
/// row is written first, so a queued or running migration is never unrecorded.
pub type RequestId = MigrationId;

/// What the supervisor reports, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum SupervisorEvent {
    /// Accepted and recorded: the first event of every migration.
    Queued {
        request: RequestId,
        plan: Box<LiveMigrationPlan>,
    },
    /// Where a waiting migration stands, sent whenever that changes.
    Waiting {
        request: RequestId,
        position: QueuePosition<RequestId>,
        /// "queued, 2nd behind 14".
        description: String,
    },
    /// The engine runs it now; `attached` when ferry took over a migration already running.
    Started { request: RequestId, attached: bool },
    /// Not accepted, nothing started, nothing recorded (the history could not be written).
    Rejected { instance: String, reason: String },
    Update {
        request: RequestId,
        update: MigrationUpdate,
    },
    /// Something went wrong around the migration, not in it (history, control socket).
    Notice {
        request: Option<RequestId>,
        message: String,
    },
    /// The request is over; for a started migration, after its `Finished` update.
    Done {
        request: RequestId,
        outcome: LiveOutcome,
    },
}

enum Inbox {
    Submit {
        plan: Box<LiveMigrationPlan>,
        resume: Option<MigrationId>,
    },
    Command {
        request: RequestId,
        command: OperatorCommand,
        reply: Option<oneshot::Sender<CommandReply>>,
    },
    Engine {
        request: RequestId,
        update: MigrationUpdate,
    },
    /// A migration of another kind (cold) asks for its turn under the same limits.
    Reserve {
        request: RequestId,
        source: HostName,
        destination: HostName,
        granted: oneshot::Sender<()>,
    },
    /// That migration is over, or gave up waiting: its place is free.
    Release { request: RequestId },
}

/// What a restarted ferry must take over: the live migrations the history shows unfinished
/// (a ferry that died left them to libvirt, which carried on).
#[derive(Debug, Default)]
pub struct Unfinished {
    pub resumable: Vec<(MigrationId, LiveMigrationPlan)>,
    /// Those whose stored plan cannot be read, each with why, for the operator to check.
    pub unreadable: Vec<String>,
}

pub fn unfinished_live_migrations(history: &History) -> Result<Unfinished, history::HistoryError> {
    let mut found = Unfinished::default();
    for record in history.unfinished()? {
        // An outcome here means a cold migration awaiting confirm, not a running job.
        if record.kind != MigrationKind::Live || record.outcome.is_some() {
            continue;
        }
        // Nova carries out its own migrations; `engine::nova` watches them again.
        if crate::engine::nova::NovaMigrationPlan::is_nova_record(&record.plan) {
            continue;
        }
        match serde_json::from_value::<LiveMigrationPlan>(record.plan) {
            Ok(plan) => found.resumable.push((record.id, plan)),
            Err(error) => found.unreadable.push(format!(
                "migration {} of {}: its stored plan cannot be read ({error}); check the guest \
                 with `ferry instances`",
                record.id, record.instance_name
            )),
        }
    }
    Ok(found)
}

/// The handle on the supervisor task. Its methods are plain sends, callable from synchronous
/// code (the CLI, the TUI) and from tasks alike; the events come out in order on `events`
/// (`blocking_recv` from synchronous code).
pub struct Supervisor {
    inbox: mpsc::UnboundedSender<Inbox>,
    pub events: mpsc::UnboundedReceiver<SupervisorEvent>,
}

/// Where the supervisor keeps its record. Opening the history happens before anything starts,
/// so an unwritable history stops ferry before any migration does.
pub struct SupervisorSettings {
    pub history: History,
    pub limits: QueueLimits,
}

impl Supervisor {
    /// Starts the supervisor as a task on the shared runtime. The task ends when every sender
    /// of its inbox is gone: this handle, the engines' forwarders and the control sockets.
    pub fn start(settings: SupervisorSettings) -> Supervisor {
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let state = State {
            history: settings.history,
            queue: MigrationQueue::new(settings.limits),
            requests: HashMap::new(),
            reserved: HashMap::new(),
            inbox: inbox_tx.clone(),
            events: events_tx,
        };
        crate::runtime::handle().spawn(state.run(inbox_rx));
        Supervisor {
            inbox: inbox_tx,
            events: events_rx,
        }
    }

    /// Queues a new migration; its `Queued` event carries its history id.
    pub fn submit(&self, plan: LiveMigrationPlan) {
        let _ = self.inbox.send(Inbox::Submit {
            plan: Box::new(plan),
            resume: None,
        });
    }

    /// Takes over a migration the history shows unfinished (its ferry died): monitors it from
    /// where it stands. It counts against the limits at once, since it is already running.
    pub fn resume(&self, migration_id: MigrationId, plan: LiveMigrationPlan) {
        let _ = self.inbox.send(Inbox::Submit {
            plan: Box::new(plan),
            resume: Some(migration_id),
        });
    }

    /// Asks a turn under the limits for a migration the supervisor does not run (a cold one):
    /// `granted` is answered when it may start, and dropped when it was not queued or was
    /// released while waiting. Its
    /// `Waiting` events carry `request`. [`Supervisor::release`] gives the place back.
    pub fn reserve(
        &self,
        request: RequestId,
        source: HostName,
        destination: HostName,
        granted: oneshot::Sender<()>,
    ) {
        let _ = self.inbox.send(Inbox::Reserve {
            request,
            source,
            destination,
            granted,
        });
    }

    /// The reserved migration is over, or no longer waits.
    pub fn release(&self, request: RequestId) {
        let _ = self.inbox.send(Inbox::Release { request });
    }

    /// An operator command; the answer also comes as an `Update` (OperatorAction or Refused).
    pub fn command(&self, request: RequestId, command: OperatorCommand) {
        let _ = self.inbox.send(Inbox::Command {
            request,
            command,
            reply: None,
        });
    }
}

struct Request {
    plan: LiveMigrationPlan,
    attach: bool,
    commands: Option<CommandSender>,
    /// Kept for its Drop, which removes the socket.
    _control: Option<ControlServer>,
    /// Submission time: history events count from here.
    started_at: Instant,
    phase: Option<MigrationPhase>,
    /// Hosts silent right now (recorded once per silence).
    silent_hosts: std::collections::HashSet<String>,
    /// What the outcome check last waited for (recorded when it changes).
    unsettled: Option<String>,
    /// Held until the request is over; the kernel drops it if this process dies.
    _run_lock: std::fs::File,
}

/// Takes this process's claim on live-migrating `instance`, without waiting.
fn lock_live_run(instance: &str) -> Result<std::fs::File, String> {
    let dir = crate::logging::state_dir().join("live-locks");
    // Instance names are libvirt names; anything but these characters is kept out of the path.
    let file_name: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file_name}.lock"));
    let io = |error: std::io::Error| format!("the run lock {}: {error}", path.display());
    std::fs::create_dir_all(&dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{instance}: another ferry process is migrating it right now; `ferry abort \
             {instance}` stops that migration"
        )),
        Err(std::fs::TryLockError::Error(error)) => Err(io(error)),
    }
}

struct State {
    history: History,
    queue: MigrationQueue<RequestId>,
    requests: HashMap<RequestId, Request>,
    /// Migrations of another kind waiting for their turn, answered when it comes.
    reserved: HashMap<RequestId, oneshot::Sender<()>>,
    inbox: mpsc::UnboundedSender<Inbox>,
    events: mpsc::UnboundedSender<SupervisorEvent>,
}

impl State {
    fn emit(&self, event: SupervisorEvent) {
        let _ = self.events.send(event);
    }

    fn notice(&self, request: Option<RequestId>, message: String) {
        tracing::warn!("{message}");
        self.emit(SupervisorEvent::Notice { request, message });
    }

    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Inbox>) {
        while let Some(message) = inbox.recv().await {
            // History writes, run locks and control sockets touch the local disk.
            tokio::task::block_in_place(|| self.handle(message));
        }
    }

    fn handle(&mut self, message: Inbox) {
        match message {
            Inbox::Submit { plan, resume } => self.submit(*plan, resume),
            Inbox::Command {
                request,
                command,
                reply,
            } => self.command(request, command, reply),
            Inbox::Engine { request, update } => self.on_update(request, update),
            Inbox::Reserve {
                request,
                source,
                destination,
                granted,
            } => self.reserve(request, source, destination, granted),
            Inbox::Release { request } => self.release(request),
        }
    }

    /// Queues a migration the supervisor does not run itself (a cold one, run by the engine
    /// service): it counts against the same per-host and global limits as the live ones, and
    /// `granted` is answered when its turn comes.
    fn reserve(
        &mut self,
        request: RequestId,
        source: HostName,
        destination: HostName,
        granted: oneshot::Sender<()>,
    ) {
        if let Err(error) = self.queue.enqueue(request, source, destination) {
            self.notice(Some(request), format!("not queued: {error}"));
            // Dropping `granted` tells the waiting migration it will not get its turn.
            return;
        }
        self.reserved.insert(request, granted);
        self.start_ready();
        self.report_queue();
    }

    fn release(&mut self, request: RequestId) {
        if self.reserved.remove(&request).is_some() {
            let _ = self.queue.cancel_queued(&request);
        } else {
            let _ = self.queue.finished(&request);
        }
        self.start_ready();
        self.report_queue();
    }

    fn submit(&mut self, plan: LiveMigrationPlan, resume: Option<MigrationId>) {
        let instance = plan.instance_name.clone();
        let reject = |state: &State, reason: String| {
            state.emit(SupervisorEvent::Rejected {
                instance: instance.clone(),
                reason,
            })
        };
        let (source, destination) = match (
            HostName::parse(&plan.source.name),
            HostName::parse(&plan.destination.name),
        ) {
            (Ok(source), Ok(destination)) => (source, destination),
            (Err(error), _) | (_, Err(error)) => return reject(self, error.to_string()),
        };
        // One live migration per instance across ferry processes: the lock is taken before
        // anything is recorded or launched, so two `ferry migrate` started at once cannot
        // both reach libvirt (the control socket check below has a window between its test
        // and its bind; this lock has none).
        let run_lock = match lock_live_run(&instance) {
            Ok(lock) => lock,
            Err(reason) => return reject(self, reason),
        };
        // Refused before anything is recorded: another ferry already steers this instance.
        let socket = control::socket_path(&instance);
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return reject(
                self,
                control::ControlError::AlreadyWatched {
                    instance: instance.clone(),
                    path: socket,
                }
                .to_string(),
            );
        }
        let request = match resume {
            Some(id) => id,
            None => {
                let recorded = self.history.start_migration(&NewMigration {
                    kind: MigrationKind::Live,
                    instance_name: instance.clone(),
                    instance_uuid: String::new(),
                    source_host: source.clone(),
                    destination_host: destination.clone(),
                    policy: policy_name(&plan),
                    plan: serde_json::to_value(&plan).unwrap_or_default(),
                    started_at_unix_ms: history::unix_ms_now(),
                });
                match recorded {
                    Ok(id) => id,
                    // No record, no migration: a crash would leave nobody able to resume it.
                    Err(error) => return reject(self, format!("not started: {error}")),
                }
            }
        };
        // The socket exists from submission on, so `ferry abort` also takes a queued one out.
        let inbox = self.inbox.clone();
        let control = control::serve(
            &instance,
            // Called on the control socket's own thread, never on the runtime.
            Box::new(move |command| {
                let (reply_tx, reply_rx) = oneshot::channel();
                inbox
                    .send(Inbox::Command {
                        request,
                        command,
                        reply: Some(reply_tx),
                    })
                    .map_err(|_| "this ferry is shutting down".to_string())?;
                let answer = async { tokio::time::timeout(control::REPLY_TIMEOUT, reply_rx).await };
                match crate::runtime::wait(answer) {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) | Err(_) => Err("no answer from the migration".to_string()),
                }
            }),
        );
        let control = match control {
            Ok(server) => Some(server),
            Err(error) => {
                self.notice(
                    Some(request),
                    format!("other terminals cannot steer this migration: {error}"),
                );
                None
            }
        };
        if resume.is_some() {
            self.queue.adopt_running(request, source, destination);
        } else if let Err(error) = self.queue.enqueue(request, source, destination) {
            self.notice(Some(request), format!("not queued: {error}"));
            return;
        }
        self.emit(SupervisorEvent::Queued {
            request,
            plan: Box::new(plan.clone()),
        });
        self.requests.insert(
            request,
            Request {
                plan,
                attach: resume.is_some(),
                commands: None,
                _control: control,
                started_at: Instant::now(),
                phase: None,
                silent_hosts: Default::default(),
                unsettled: None,
                _run_lock: run_lock,
            },
        );
        if resume.is_some() {
            self.launch(request);
        }
        self.start_ready();
        self.report_queue();
    }

    fn report_queue(&self) {
        for waiting in self.queue.queued() {
            if let Some(position) = self.queue.position(&waiting.request_id) {
                self.emit(SupervisorEvent::Waiting {
                    request: waiting.request_id,
                    description: position.describe(),
                    position,
                });
            }
        }
    }

    fn start_ready(&mut self) {
        for request in self.queue.next_startable() {
            self.launch(request);
        }
    }

    fn launch(&mut self, request: RequestId) {
        if let Some(granted) = self.reserved.remove(&request) {
            // Its engine runs it; if it stopped waiting meanwhile, its place is free again.
            if granted.send(()).is_err() {
                let _ = self.queue.finished(&request);
            }
            return;
        }
        let Some(entry) = self.requests.get(&request) else {
            return;
        };
        let plan = entry.plan.clone();
        let attached = entry.attach;
        let handle = if attached {
            live::attach(plan.clone())
        } else {
            live::start(plan.clone())
        };
        let inbox = self.inbox.clone();
        let mut updates = handle.updates;
        crate::runtime::handle().spawn(async move {
            while let Some(update) = updates.recv().await {
                if inbox.send(Inbox::Engine { request, update }).is_err() {
                    break;
                }
            }
        });
        if let Some(entry) = self.requests.get_mut(&request) {
            entry.commands = Some(handle.commands);
        }
        self.emit(SupervisorEvent::Started { request, attached });
    }

    /// Carries out an operator command; its answer goes to `reply` (if someone waits for it)
    /// and comes as an `Update` (OperatorAction or Refused).
    fn command(
        &mut self,
        request: RequestId,
        command: OperatorCommand,
        reply: Option<oneshot::Sender<CommandReply>>,
    ) {
        let Some(entry) = self.requests.get(&request) else {
            answer(reply, Err("this migration has already ended".into()));
            return;
        };
        if let Some(commands) = &entry.commands {
            // Answered by the engine; the forwarder delivers the matching update. The answer
            // is awaited beside the supervisor, which goes on with its other messages.
            let commands = commands.clone();
            match reply {
                None => {
                    let _ = commands.send(command);
                }
                Some(reply) => {
                    crate::runtime::handle().spawn(async move {
                        let _ = reply.send(commands.ask(command, ENGINE_REPLY_TIMEOUT).await);
                    });
                }
            }
            return;
        }
        let result = self.command_queued(request, command);
        answer(reply, result);
    }

    /// A command to a migration still in the queue: only abort applies.
    fn command_queued(&mut self, request: RequestId, command: OperatorCommand) -> CommandReply {
        match command {
            OperatorCommand::Abort => {
                let _ = self.queue.cancel_queued(&request);
                let outcome = LiveOutcome::Cancelled {
                    detail: "taken out of the queue before it started".into(),
                };
                self.finish(request, &outcome);
                self.requests.remove(&request);
                self.emit(SupervisorEvent::Update {
                    request,
                    update: MigrationUpdate::Finished(outcome.clone()),
                });
                self.emit(SupervisorEvent::Done { request, outcome });
                self.report_queue();
                Ok("removed from the queue; nothing was started".into())
            }
            other => Err(format!(
                "{other:?}: the migration is still queued; only abort applies before it starts"
            )),
        }
    }

    fn record(&mut self, request: RequestId, kind: EventKind, message: &str) {
        let Some(entry) = self.requests.get(&request) else {
            return;
        };
        let at_ms = entry.started_at.elapsed().as_millis() as u64;
        if let Err(error) = self.history.record_event(request, at_ms, kind, message) {
            self.notice(Some(request), format!("history: {error}"));
        }
    }

    fn on_update(&mut self, request: RequestId, update: MigrationUpdate) {
        match &update {
            MigrationUpdate::Progress(progress) => {
                let changed = self
                    .requests
                    .get(&request)
                    .is_some_and(|entry| entry.phase != Some(progress.phase));
                if changed {
                    if let Some(entry) = self.requests.get_mut(&request) {
                        entry.phase = Some(progress.phase);
                    }
                    let words = match progress.phase {
                        MigrationPhase::CopyingMemory { iteration } => {
                            format!("copying memory, iteration {iteration}")
                        }
                        phase => phase.name().to_string(),
                    };
                    self.record(request, EventKind::Phase, &words);
                }
            }
            MigrationUpdate::Policy(event) => {
                self.record(request, EventKind::Policy, &event.reason.clone())
            }
            MigrationUpdate::OperatorAction { description } => {
                self.record(request, EventKind::Operator, &description.clone())
            }
            MigrationUpdate::Refused { reason } => {
                self.record(request, EventKind::Operator, &format!("refused: {reason}"))
            }
            MigrationUpdate::Warning { message } => {
                self.record(request, EventKind::Error, &message.clone())
            }
            MigrationUpdate::Attached {
                job_elapsed_ms,
                max_downtime_ms,
            } => {
                let words = format!(
                    "ferry resumed monitoring; the job had run {} s, max downtime {}",
                    job_elapsed_ms / 1000,
                    max_downtime_ms.map_or("unknown".to_string(), |ms| format!("{ms} ms"))
                );
                self.record(request, EventKind::Phase, &words);
            }
            // A silence is recorded when it begins and when it ends, not at every poll.
            MigrationUpdate::Silent { host, observed, .. } => {
                let first = self
                    .requests
                    .get_mut(&request)
                    .is_some_and(|entry| entry.silent_hosts.insert(host.clone()));
                if first {
                    self.record(
                        request,
                        EventKind::Error,
                        &format!("{host} did not answer ({observed}); reconnecting"),
                    );
                }
            }
            MigrationUpdate::Reconnected {
                host,
                silent_for_ms,
            } => {
                if let Some(entry) = self.requests.get_mut(&request) {
                    entry.silent_hosts.remove(host);
                }
                self.record(
                    request,
                    EventKind::Phase,
                    &format!(
                        "{host} answers again after {:.1} s; watching the same job",
                        *silent_for_ms as f64 / 1000.0
                    ),
                );
            }
            MigrationUpdate::Unsettled { waiting_for, .. } => {
                let changed = self.requests.get_mut(&request).is_some_and(|entry| {
                    let changed = entry.unsettled.as_deref() != Some(waiting_for.as_str());
                    entry.unsettled = Some(waiting_for.clone());
                    changed
                });
                if changed {
                    self.record(
                        request,
                        EventKind::Phase,
                        &format!("unsettled: {waiting_for}"),
                    );
                }
            }
            MigrationUpdate::PostCopyBroken { detail } => {
                self.record(request, EventKind::Error, &detail.clone())
            }
            MigrationUpdate::PostCopyRecovery { attempt, result } => {
                let words = match result {
                    Ok(done) => format!("post-copy recovery, attempt {attempt}: {done}"),
                    Err(error) => format!("post-copy recovery, attempt {attempt} failed: {error}"),
                };
                self.record(request, EventKind::Operator, &words)
            }
            MigrationUpdate::Finished(outcome) => self.finish(request, outcome),
            MigrationUpdate::Started { .. } | MigrationUpdate::Sample(_) => {}
        }
        let finished = match &update {
            MigrationUpdate::Finished(outcome) => Some(outcome.clone()),
            _ => None,
        };
        self.emit(SupervisorEvent::Update { request, update });
        if let Some(outcome) = finished {
            let _ = self.queue.finished(&request);
            self.requests.remove(&request);
            self.emit(SupervisorEvent::Done { request, outcome });
            self.start_ready();
            self.report_queue();
        }
    }

    fn finish(&mut self, request: RequestId, outcome: &LiveOutcome) {
        let id = request;
        let (kind, detail, downtime_ms, total_time_ms, bytes) = match outcome {
            LiveOutcome::Completed {
                downtime_ms,
                total_time_ms,
                data_transferred_bytes,
            } => (
                OutcomeKind::Completed,
                String::new(),
                *downtime_ms,
                Some(*total_time_ms),
                *data_transferred_bytes,
            ),
            LiveOutcome::Cancelled { detail } => {
                (OutcomeKind::Cancelled, detail.clone(), None, None, None)
            }
            LiveOutcome::Failed { detail } => {
                (OutcomeKind::Failed, detail.clone(), None, None, None)
            }
            LiveOutcome::Unsettled { detail } => {
                // Left unfinished on purpose: the next `ferry resume` looks again.
                self.record(request, EventKind::Error, &format!("unsettled: {detail}"));
                return;
            }
        };
        let result = self.history.finish_migration(
            id,
            &Outcome {
                kind,
                detail,
                finished_at_unix_ms: history::unix_ms_now(),
                downtime_ms,
                total_time_ms,
                bytes_transferred: bytes,
            },
        );
        if let Err(error) = result {
            self.notice(Some(request), format!("history: {error}"));
        }
    }
}

/// How long an operator command waits for the engine's answer: one libvirt call under the
/// call timeout, with room to spare.
const ENGINE_REPLY_TIMEOUT: Duration = Duration::from_secs(35);

fn answer(reply: Option<oneshot::Sender<CommandReply>>, result: CommandReply) {
    if let Some(reply) = reply {
        let _ = reply.send(result);
    }
}

fn policy_name(plan: &LiveMigrationPlan) -> String {
    match plan.policy {
        crate::policy::PolicyChoice::Adaptive(_) => "adaptive".into(),
        crate::policy::PolicyChoice::Nova(_) => "nova".into(),
    }
}
