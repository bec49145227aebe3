//! The engine's Nova half, for the TUI: migrations Nova carries out, launched, watched,
//! aborted, force-completed, confirmed and reverted through Nova's API (`engine::nova`), and
//! reported on the engine's one stream as [`EngineEvent::Nova`]. ferry never touches a Nova
//! server's domain itself: libvirt is only read, for the live figures Nova lacks.
//!
//! Every request runs in a task of its own, so one slow cloud holds up nothing else. One
//! logged-in session per cloud is kept and shared (the door logs in again on a 401); a cloud
//! that cannot be reached fails that request with why, and the next one tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Result;
use tokio::sync::mpsc::{self, UnboundedSender};

use super::EngineEvent;
use crate::config::Config;
use crate::engine::history::{unix_ms_now, MigrationRecord, OutcomeKind};
use crate::engine::nova::cold::{self, ColdRequest, WatchLine};
use crate::engine::nova::live::{self, NovaLiveOutcome, NovaLiveUpdate};
use crate::engine::nova::preflight::{
    any_destination, destination_refusal, server_refusal, CloudFacts, Needs, NovaMove,
};
use crate::engine::nova::{with_history, CloudSession, NovaMigrationPlan};
use crate::model::migration::{MigrationId, MigrationKind};

/// What the operator asks Nova to do with one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NovaMoveKind {
    Live,
    /// Cold migration, to `to` or where the scheduler chooses.
    Cold,
    /// Resize to this flavor; the scheduler places it (Nova's resize takes no host).
    Resize {
        flavor: String,
    },
}

impl NovaMoveKind {
    fn nova_move(&self) -> NovaMove {
        match self {
            NovaMoveKind::Live => NovaMove::Live,
            NovaMoveKind::Cold | NovaMoveKind::Resize { .. } => NovaMove::Cold,
        }
    }

    pub fn migration_kind(&self) -> MigrationKind {
        match self {
            NovaMoveKind::Live => MigrationKind::Live,
            NovaMoveKind::Cold | NovaMoveKind::Resize { .. } => MigrationKind::Cold,
        }
    }
}

/// One Nova server as a request names it: the cloud and the server's id (its name for the
/// messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NovaServerRef {
    pub cloud: String,
    pub server_id: String,
    pub server_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NovaRequest {
    /// ferry's checks of the server and of every compute host on fresh facts, answered by
    /// [`EngineEvent::NovaVerdicts`] with the same `request_id`.
    Preflight {
        request_id: u64,
        server: NovaServerRef,
        kind: NovaMoveKind,
    },
    /// Checked again on fresh facts, then asked of Nova; `destination` None lets the
    /// scheduler choose. A refusal comes back as [`EngineEvent::Refused`], nothing sent.
    Launch {
        server: NovaServerRef,
        kind: NovaMoveKind,
        destination: Option<String>,
    },
    /// Abort (or force-complete) the server's running live migration, through Nova.
    LiveCommand {
        id: MigrationId,
        server: NovaServerRef,
        abort: bool,
    },
    /// Confirm (`keep`) or revert a cold migration or resize waiting in VERIFY_RESIZE.
    Settle {
        id: MigrationId,
        server: NovaServerRef,
        keep: bool,
    },
    /// Take over what a stopped ferry left with every configured cloud: its live migrations
    /// are watched again, its cold ones awaiting an answer are listed. The TUI asks at start
    /// (`ferry resume` watches them its own way).
    TakeOver,
}

/// ferry's pre-flight of one server against its cloud's compute hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NovaVerdicts {
    /// Why the server cannot move at all now (its state, a task under way).
    pub server_refusal: Option<String>,
    /// Each compute host but the server's own, with why it cannot take the server.
    pub hosts: Vec<(String, Option<String>)>,
    /// Whether the scheduler has somewhere to put it.
    pub scheduler: Result<(), String>,
    /// The cloud's flavors (name, MiB, vCPUs), for a resize.
    pub flavors: Vec<(String, u64, u32)>,
}

/// What happened to one Nova migration, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum NovaEvent {
    /// The history holds it and Nova carries it out. `found`: a restarted ferry took it over.
    Started {
        plan: Box<NovaMigrationPlan>,
        kind: MigrationKind,
        source: String,
        /// Where Nova sends it, when known.
        destination: Option<String>,
        started_at: SystemTime,
        found: bool,
    },
    /// The live watch's reports (never `Launched`/`Attached`: those are `Started`).
    Live(NovaLiveUpdate),
    /// A cold migration's look at the server, when anything but the clock changed.
    ColdWatch(WatchLine),
    /// The cold migration waits in VERIFY_RESIZE on `host`.
    AwaitingConfirm {
        host: String,
    },
    /// The cold migration ended without reaching VERIFY_RESIZE: Nova's reason, or what ferry
    /// waited for when its bound ran out (then `unsettled`).
    ColdFailed {
        detail: String,
        unsettled: bool,
    },
    Settling {
        keep: bool,
    },
    /// A confirm or revert's answer: the host it is settled on, or why not (still awaiting).
    Settled {
        keep: bool,
        result: Result<String, String>,
    },
    /// What Nova answered to an abort or force-complete.
    Answer {
        said: Result<String, String>,
    },
}

/// The Nova desk: the config and the logged-in sessions, shared by the request tasks.
#[derive(Clone)]
pub(super) struct NovaDesk {
    config: Config,
    sessions: Arc<Mutex<HashMap<String, CloudSession>>>,
    events: UnboundedSender<EngineEvent>,
}

impl NovaDesk {
    pub(super) fn new(config: Config, events: UnboundedSender<EngineEvent>) -> NovaDesk {
        NovaDesk {
            config,
            sessions: Arc::default(),
            events,
        }
    }

    fn send(&self, id: MigrationId, event: NovaEvent) {
        let _ = self.events.send(EngineEvent::Nova(id, event));
    }

    async fn session(&self, cloud: &str) -> Result<CloudSession> {
        let kept = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(cloud)
            .cloned();
        if let Some(session) = kept {
            return Ok(session);
        }
        let session = CloudSession::connect(&self.config, Some(cloud)).await?;
        self.sessions
            .lock()
            .expect("sessions lock")
            .insert(cloud.to_string(), session.clone());
        Ok(session)
    }

    pub(super) fn on_request(&self, request: NovaRequest) {
        if request == NovaRequest::TakeOver {
            return self.take_over();
        }
        let desk = self.clone();
        crate::runtime::handle().spawn(async move {
            match request {
                NovaRequest::Preflight {
                    request_id,
                    server,
                    kind,
                } => {
                    let verdicts = desk
                        .preflight(&server, &kind)
                        .await
                        .map_err(|error| format!("{error:#}"));
                    let _ = desk.events.send(EngineEvent::NovaVerdicts {
                        request_id,
                        verdicts,
                    });
                }
                NovaRequest::Launch {
                    server,
                    kind,
                    destination,
                } => desk.launch(server, kind, destination).await,
                NovaRequest::LiveCommand { id, server, abort } => {
                    let said = match desk.session(&server.cloud).await {
                        Ok(session) => live::operator_command(&session, &server.server_id, abort)
                            .await
                            .map_err(|error| format!("{error:#}")),
                        Err(error) => Err(format!("{error:#}")),
                    };
                    desk.send(id, NovaEvent::Answer { said });
                }
                NovaRequest::Settle { id, server, keep } => desk.settle(id, server, keep).await,
                NovaRequest::TakeOver => {}
            }
        });
    }

    async fn preflight(&self, server: &NovaServerRef, kind: &NovaMoveKind) -> Result<NovaVerdicts> {
        let session = self.session(&server.cloud).await?;
        let timeout = session.call_timeout();
        let bounded = |what: &'static str| {
            move |error: tokio::time::error::Elapsed| {
                anyhow::anyhow!("{what}: no answer within {timeout:?} ({error})")
            }
        };
        let client = &session.client;
        let (found, services, hypervisors, flavors) = tokio::try_join!(
            async {
                tokio::time::timeout(timeout, client.server(&server.server_id))
                    .await
                    .map_err(bounded("read the server"))?
                    .map_err(anyhow::Error::from)
            },
            async {
                tokio::time::timeout(timeout, client.compute_services())
                    .await
                    .map_err(bounded("list compute services"))?
                    .map_err(anyhow::Error::from)
            },
            async {
                tokio::time::timeout(timeout, client.hypervisors())
                    .await
                    .map_err(bounded("list hypervisors"))?
                    .map_err(anyhow::Error::from)
            },
            async {
                tokio::time::timeout(timeout, client.flavors())
                    .await
                    .map_err(bounded("list flavors"))?
                    .map_err(anyhow::Error::from)
            },
        )?;
        let facts = CloudFacts {
            services: &services,
            hypervisors: &hypervisors,
        };
        let needs = match kind {
            NovaMoveKind::Resize { flavor } => flavors
                .iter()
                .find(|f| &f.name == flavor || &f.id == flavor)
                .map_or(Needs::of(&found), |f| Needs {
                    memory_mib: f.memory_mib,
                    vcpus: f.vcpus,
                }),
            _ => Needs::of(&found),
        };
        let source = found.host.clone().unwrap_or_default();
        let mut hosts: Vec<(String, Option<String>)> = services
            .iter()
            .filter(|s| s.binary == "nova-compute" && s.host != source)
            .map(|s| {
                let refusal = match kind {
                    NovaMoveKind::Resize { .. } => Some(
                        "Nova's resize takes no destination: the scheduler places it".to_string(),
                    ),
                    _ => destination_refusal(&facts, &found, &s.host, needs, false),
                };
                (s.host.clone(), refusal)
            })
            .collect();
        hosts.sort();
        Ok(NovaVerdicts {
            server_refusal: server_refusal(&found, kind.nova_move()),
            hosts,
            scheduler: any_destination(&facts, &found, needs),
            flavors: flavors
                .iter()
                .map(|f| (f.name.clone(), f.memory_mib, f.vcpus))
                .collect(),
        })
    }

    fn refused(&self, kind: MigrationKind, server: &NovaServerRef, reason: String) {
        let _ = self.events.send(EngineEvent::Refused {
            kind,
            instance: server.server_name.clone(),
            reason,
        });
    }

    async fn launch(&self, server: NovaServerRef, kind: NovaMoveKind, destination: Option<String>) {
        let migration_kind = kind.migration_kind();
        let session = match self.session(&server.cloud).await {
            Ok(session) => session,
            Err(error) => return self.refused(migration_kind, &server, format!("{error:#}")),
        };
        match kind {
            NovaMoveKind::Live => self.launch_live(session, server, destination).await,
            NovaMoveKind::Cold => {
                let request = ColdRequest::Migrate { to: destination };
                self.launch_cold(session, server, request).await
            }
            NovaMoveKind::Resize { flavor } => {
                let request = ColdRequest::Resize {
                    flavor,
                    to: destination,
                };
                self.launch_cold(session, server, request).await
            }
        }
    }

    async fn launch_live(
        &self,
        session: CloudSession,
        server: NovaServerRef,
        destination: Option<String>,
    ) {
        let (updates, mut received) = mpsc::unbounded_channel();
        let launched = live::launch(
            &session,
            &server.server_id,
            destination.as_deref(),
            &updates,
        )
        .await;
        let watched = match launched {
            Ok(watched) => watched,
            Err(error) => {
                return self.refused(MigrationKind::Live, &server, format!("{error:#}"));
            }
        };
        let id = watched.history_id;
        let desk = self.clone();
        let forward = tokio::spawn(async move {
            while let Some(update) = received.recv().await {
                desk.forward_live(&live_plan_of(&server), id, update);
            }
        });
        live::watch(&session, &watched, &updates).await;
        drop(updates);
        let _ = forward.await;
    }

    /// A live watch's report as the TUI takes it: `Launched` and `Attached` start the row.
    fn forward_live(&self, plan: &NovaMigrationPlan, id: MigrationId, update: NovaLiveUpdate) {
        let event = match update {
            NovaLiveUpdate::Launched {
                source,
                destination,
                nova_migration_id,
                requested_destination,
                ..
            } => NovaEvent::Started {
                plan: Box::new(NovaMigrationPlan {
                    nova_migration_id: Some(nova_migration_id),
                    requested_host: requested_destination,
                    ..plan.clone()
                }),
                kind: MigrationKind::Live,
                source,
                destination,
                started_at: SystemTime::now(),
                found: false,
            },
            // The row of an attached watch was started from the history already.
            NovaLiveUpdate::Attached { .. } => return,
            update => NovaEvent::Live(update),
        };
        self.send(id, event);
    }

    async fn launch_cold(
        &self,
        session: CloudSession,
        server: NovaServerRef,
        request: ColdRequest,
    ) {
        let began_unix_ms = unix_ms_now();
        let announced: Arc<Mutex<Option<MigrationId>>> = Arc::default();
        let (desk, server_id, row) = (self.clone(), server.server_id.clone(), announced.clone());
        // The history id comes with the record the launch makes once Nova has accepted the
        // request; every look at the server is reported after that.
        let mut report = move |line: &WatchLine| {
            let id = desk.announce_cold(&row, &server_id, began_unix_ms);
            if let Some(id) = id {
                desk.send(id, NovaEvent::ColdWatch(line.clone()));
            }
        };
        let result = cold::launch(&session, &server.server_id, &request, &mut report).await;
        match result {
            Ok(done) => {
                let id = MigrationId(done.history_id);
                self.announce_cold(&announced, &server.server_id, began_unix_ms);
                let event = match done.outcome {
                    OutcomeKind::AwaitingConfirm => NovaEvent::AwaitingConfirm {
                        host: done.destination_host,
                    },
                    // Nova confirmed it itself (resize_confirm_window).
                    _ => NovaEvent::Settled {
                        keep: true,
                        result: Ok(done.destination_host),
                    },
                };
                self.send(id, event);
            }
            Err(error) => {
                let detail = format!("{error:#}");
                match self.announce_cold(&announced, &server.server_id, began_unix_ms) {
                    // Nova had accepted it: the row says how it ended.
                    Some(id) => {
                        let unsettled = record_outcome(id).is_none();
                        self.send(id, NovaEvent::ColdFailed { detail, unsettled });
                    }
                    // ferry refused it, or Nova did at once: nothing was recorded.
                    None => self.refused(MigrationKind::Cold, &server, detail),
                }
            }
        }
    }

    /// Starts the row of the cold migration this launch recorded, once the history holds it;
    /// its id (None while there is no record yet).
    fn announce_cold(
        &self,
        announced: &Mutex<Option<MigrationId>>,
        server_id: &str,
        began_unix_ms: i64,
    ) -> Option<MigrationId> {
        let mut announced = announced.lock().expect("announced lock");
        if announced.is_none() {
            if let Some(record) = record_made_since(server_id, began_unix_ms) {
                let plan = NovaMigrationPlan::from_history(&record.plan)?;
                self.send(
                    record.id,
                    NovaEvent::Started {
                        plan: Box::new(plan),
                        kind: MigrationKind::Cold,
                        source: record.source_host,
                        destination: None,
                        started_at: SystemTime::now(),
                        found: false,
                    },
                );
                *announced = Some(record.id);
            }
        }
        *announced
    }

    async fn settle(&self, id: MigrationId, server: NovaServerRef, keep: bool) {
        self.send(id, NovaEvent::Settling { keep });
        let result = match self.session(&server.cloud).await {
            Ok(session) => cold::settle(&session, &server.server_id, keep, &mut |_| {})
                .await
                .map(|done| done.host)
                .map_err(|error| format!("{error:#}")),
            Err(error) => Err(format!("{error:#}")),
        };
        self.send(id, NovaEvent::Settled { keep, result });
    }

    /// What a stopped ferry left with Nova: live migrations are watched again, cold ones
    /// awaiting an answer are listed. A cloud that cannot be reached says so and leaves them.
    fn take_over(&self) {
        for cloud in self.config.clouds.clone() {
            let desk = self.clone();
            crate::runtime::handle().spawn(async move {
                if let Err(error) = desk.take_over_cloud(&cloud.name).await {
                    let _ = desk.events.send(EngineEvent::Notice(format!(
                        "cloud {}: its unfinished migrations are not watched: {error:#}",
                        cloud.name
                    )));
                }
            });
        }
    }

    async fn take_over_cloud(&self, cloud: &str) -> Result<()> {
        let records = with_history(|history| Ok(history.unfinished()?))?;
        let ours: Vec<_> = records
            .into_iter()
            .filter_map(|record| {
                let plan = NovaMigrationPlan::from_history(&record.plan)?;
                (plan.cloud == cloud).then_some((record, plan))
            })
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        let session = self.session(cloud).await?;
        for (record, plan) in ours {
            let started_at = SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(record.started_at_unix_ms.max(0) as u64);
            // "auto" stands in the record until Nova's scheduler has chosen.
            let destination =
                (record.destination_host != "auto").then(|| record.destination_host.clone());
            self.send(
                record.id,
                NovaEvent::Started {
                    plan: Box::new(plan.clone()),
                    kind: record.kind,
                    source: record.source_host.clone(),
                    destination: destination.clone(),
                    started_at,
                    found: true,
                },
            );
            match (record.kind, record.outcome) {
                (MigrationKind::Cold, Some(OutcomeKind::AwaitingConfirm)) => self.send(
                    record.id,
                    NovaEvent::AwaitingConfirm {
                        host: destination.unwrap_or_else(|| "?".to_string()),
                    },
                ),
                (MigrationKind::Cold, _) => self.send(
                    record.id,
                    NovaEvent::ColdFailed {
                        detail: "its watch ended before Nova decided: `ferry resume` settles it"
                            .to_string(),
                        unsettled: true,
                    },
                ),
                (MigrationKind::Live, _) => {
                    let desk = self.clone();
                    let session = session.clone();
                    tokio::spawn(async move {
                        desk.watch_again(session, record.id, plan, record.source_host)
                            .await
                    });
                }
            }
        }
        Ok(())
    }

    async fn watch_again(
        &self,
        session: CloudSession,
        id: MigrationId,
        plan: NovaMigrationPlan,
        source: String,
    ) {
        let (updates, mut received) = mpsc::unbounded_channel();
        let watched = match live::attach(&session, id, &plan, &source, &updates).await {
            Ok(watched) => watched,
            Err(error) => {
                return self.send(
                    id,
                    NovaEvent::Live(NovaLiveUpdate::Finished(NovaLiveOutcome::Unsettled {
                        detail: format!("{error:#}"),
                    })),
                );
            }
        };
        let desk = self.clone();
        let forward = tokio::spawn(async move {
            while let Some(update) = received.recv().await {
                desk.forward_live(&plan, id, update);
            }
        });
        live::watch(&session, &watched, &updates).await;
        drop(updates);
        let _ = forward.await;
    }
}

/// The plan a live launch's row starts with; `Launched` adds Nova's migration id.
fn live_plan_of(server: &NovaServerRef) -> NovaMigrationPlan {
    NovaMigrationPlan {
        backend: crate::engine::nova::NOVA_BACKEND.into(),
        cloud: server.cloud.clone(),
        server_id: server.server_id.clone(),
        server_name: server.server_name.clone(),
        nova_migration_id: None,
        migration_type: "live-migration".into(),
        requested_host: None,
        flavor: None,
    }
}

/// The Nova record of this server the history got since `since_unix_ms` (the launch's own:
/// Nova runs one move of a server at a time, and ferry records only after Nova's 202).
fn record_made_since(server_id: &str, since_unix_ms: i64) -> Option<MigrationRecord> {
    // A look at the server happens every second, so the newest few records hold it.
    let records = with_history(|history| Ok(history.list_recent(20)?)).ok()?;
    records
        .into_iter()
        .filter(|record| record.started_at_unix_ms >= since_unix_ms - 1_000)
        .filter(|record| {
            NovaMigrationPlan::from_history(&record.plan).is_some_and(|p| p.server_id == server_id)
        })
        .max_by_key(|record| record.id)
}

/// How the history says the migration ended; None while it is unfinished.
fn record_outcome(id: MigrationId) -> Option<OutcomeKind> {
    with_history(|history| Ok(history.migration(id)?))
        .ok()
        .and_then(|record| record.outcome)
}
