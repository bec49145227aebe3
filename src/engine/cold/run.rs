//! The cold migration itself, a task on the process's runtime: prechecks again on fresh facts,
//! power off, copy and verify every local disk, define (and start) on the destination; on a
//! failure or the operator's abort, the rollback that puts the instance back on its source.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use super::door;
use super::in_place::edit_to_size;
use super::plan::{gather, plan_drift};
use super::{
    ColdCommand, ColdDisk, ColdMigrationPlan, ColdOutcome, ColdPhase, ColdUpdate, CopiedDisk,
    CopyProgress, DiskCopy, CLEANUP_RETRY_PAUSE, DEFAULT_COPY_CHUNK_BYTES,
};
use crate::libvirt::lifecycle::{edit_disk_sources, DiskSourceEdit};
use crate::libvirt::volume_copy::{
    copy_volume, volume_digest, CopyError, CopySettings, NewVolume, StreamDigest, VolumeRef,
};
use crate::libvirt::HostConnection;
use crate::model::units::format_bytes;
use crate::precheck;

/// How often the guest's state is read while it powers off.
const SHUTDOWN_POLL: Duration = Duration::from_millis(500);
/// Copy progress reaches the watchers at most this often (and once at the end of each disk).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Where the operator's commands for one running cold migration go. Sending never blocks, so
/// any thread or task may send.
pub type ColdCommandSender = UnboundedSender<ColdCommand>;

/// A running cold migration: its command channel, its updates (ending with
/// [`ColdUpdate::Finished`]) and its task. A synchronous reader takes updates with
/// `updates.blocking_recv()` (never on a runtime thread), a task with `updates.recv().await`.
pub struct ColdMigrationHandle {
    pub commands: ColdCommandSender,
    pub updates: UnboundedReceiver<ColdUpdate>,
    pub task: JoinHandle<ColdOutcome>,
}

/// Starts the cold migration as a task on the process's runtime and returns at once; callable
/// from any thread. The prechecks run again on fresh facts; a plan the instance no longer
/// matches is refused.
pub fn start(plan: ColdMigrationPlan) -> ColdMigrationHandle {
    let (command_tx, mut command_rx) = mpsc::unbounded_channel();
    let (update_tx, update_rx) = mpsc::unbounded_channel();
    let task = crate::runtime::handle().spawn(async move {
        let outcome = run(&plan, &mut command_rx, &update_tx).await;
        let phase = match &outcome {
            ColdOutcome::AwaitingConfirm { .. } => ColdPhase::AwaitingConfirm,
            ColdOutcome::RolledBack { .. } => ColdPhase::RolledBack,
            ColdOutcome::Refused { .. } | ColdOutcome::Failed { .. } => ColdPhase::Failed,
        };
        let _ = update_tx.send(ColdUpdate::Phase(phase));
        let _ = update_tx.send(ColdUpdate::Finished(outcome.clone()));
        outcome
    });
    ColdMigrationHandle {
        commands: command_tx,
        updates: update_rx,
        task,
    }
}

/// Rate and ETA of one stream, over a sliding window so a stall shows within seconds.
#[derive(Debug, Clone)]
pub struct CopyMeter {
    window: Duration,
    samples: Vec<(Duration, u64)>,
}

impl CopyMeter {
    pub fn new(window: Duration) -> CopyMeter {
        CopyMeter {
            window,
            samples: Vec::new(),
        }
    }

    /// Records `bytes_done` at `elapsed` since the stream began; returns (rate, ETA).
    pub fn record(
        &mut self,
        elapsed: Duration,
        bytes_done: u64,
        bytes_total: u64,
    ) -> (Option<u64>, Option<u64>) {
        self.samples.push((elapsed, bytes_done));
        // Keep one sample at or before the window's start, so the rate spans the whole window.
        while self.samples.len() > 2 && elapsed.saturating_sub(self.samples[1].0) >= self.window {
            self.samples.remove(0);
        }
        let (first_at, first_bytes) = self.samples[0];
        let span = elapsed.saturating_sub(first_at);
        if span.is_zero() {
            return (None, None);
        }
        let rate = ((bytes_done - first_bytes.min(bytes_done)) as f64 / span.as_secs_f64()) as u64;
        let eta_ms = (rate > 0).then(|| {
            (bytes_total.saturating_sub(bytes_done) as f64 / rate as f64 * 1000.0).round() as u64
        });
        (Some(rate), eta_ms)
    }
}

/// One stream's progress on its way to the watchers (at most every [`PROGRESS_INTERVAL`]), and
/// the operator's abort on its way in, checked after every chunk.
struct StreamProgress<'r> {
    updates: &'r UnboundedSender<ColdUpdate>,
    commands: &'r mut UnboundedReceiver<ColdCommand>,
    meter: CopyMeter,
    last_sent: Option<Instant>,
    started: Instant,
    /// The last sample sent: which disk, which stream, and its total.
    sample: CopyProgress,
    /// Also send the sample of the last chunk, however soon after the one before.
    reports_the_end: bool,
}

/// The progress of a stream not begun yet.
fn stream_sample(
    disk_number: usize,
    disk_count: usize,
    disk: &ColdDisk,
    verifying: bool,
    bytes_total: u64,
) -> CopyProgress {
    CopyProgress {
        disk_number,
        disk_count,
        target: disk.target.clone(),
        verifying,
        bytes_done: 0,
        bytes_total,
        rate_bytes_per_second: None,
        eta_ms: None,
    }
}

impl<'r> StreamProgress<'r> {
    fn new(
        updates: &'r UnboundedSender<ColdUpdate>,
        commands: &'r mut UnboundedReceiver<ColdCommand>,
        sample: CopyProgress,
        reports_the_end: bool,
    ) -> StreamProgress<'r> {
        StreamProgress {
            updates,
            commands,
            meter: CopyMeter::new(Duration::from_secs(3)),
            last_sent: None,
            started: Instant::now(),
            sample,
            reports_the_end,
        }
    }

    fn on_chunk(&mut self, bytes_done: u64) -> ControlFlow<String> {
        let total = self.sample.bytes_total;
        let (rate, eta_ms) = self.meter.record(self.started.elapsed(), bytes_done, total);
        let due = self
            .last_sent
            .is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL);
        if due || (self.reports_the_end && bytes_done >= total) {
            self.last_sent = Some(Instant::now());
            self.sample.bytes_done = bytes_done;
            self.sample.rate_bytes_per_second = rate;
            self.sample.eta_ms = eta_ms;
            let _ = self.updates.send(ColdUpdate::Progress(self.sample.clone()));
        }
        match self.commands.try_recv() {
            Ok(ColdCommand::Abort) => ControlFlow::Break("aborted by the operator".into()),
            Err(_) => ControlFlow::Continue(()),
        }
    }
}

/// What the migration has changed so far: exactly what a rollback undoes.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Ferry powered the guest off (it was running).
    pub(super) powered_off: bool,
    /// Volumes ferry created on the destination, in creation order.
    created_volumes: Vec<VolumeRef>,
    /// On the destination, or (a resize in place) the new size on the guest's own host.
    pub(super) defined_on_destination: bool,
    pub(super) started_on_destination: bool,
}

impl Changes {
    pub(super) fn any(&self) -> bool {
        self.powered_off || !self.created_volumes.is_empty() || self.defined_on_destination
    }
}

/// Why the forward path stopped.
pub(super) enum Stop {
    /// Nothing changed that needs undoing (the reason says why).
    Refused(String),
    /// Roll back what `Changes` records.
    RollBack(String),
}

pub(super) struct Run<'a> {
    pub(super) plan: &'a ColdMigrationPlan,
    commands: &'a mut UnboundedReceiver<ColdCommand>,
    updates: &'a UnboundedSender<ColdUpdate>,
    pub(super) source: HostConnection,
    destination: HostConnection,
    pub(super) changes: Changes,
    started: Instant,
}

async fn run(
    plan: &ColdMigrationPlan,
    commands: &mut UnboundedReceiver<ColdCommand>,
    updates: &UnboundedSender<ColdUpdate>,
) -> ColdOutcome {
    let started = Instant::now();
    let send = |update| {
        let _ = updates.send(update);
    };
    send(ColdUpdate::Phase(ColdPhase::Prechecks));
    let timeout = plan.call_timeout;
    let source = match door::open(&plan.source.uri, timeout).await {
        Ok(c) => c,
        Err(e) => {
            return ColdOutcome::Refused {
                detail: format!("{}: source unreachable: {e}", plan.source.name),
            }
        }
    };
    let destination = door::open(&plan.destination.uri, timeout).await;
    let gathered = match gather(
        &source,
        &plan.source,
        destination.as_ref(),
        &plan.destination,
        &plan.instance_name,
        &plan.shared_storage_prefixes,
        &plan.options,
        timeout,
    )
    .await
    {
        Ok(g) => g,
        Err(e) => {
            return ColdOutcome::Refused {
                detail: format!("{}: {e}", plan.source.name),
            }
        }
    };
    send(ColdUpdate::Prechecks {
        report: gathered.report.clone(),
    });
    if !gathered.report.passed() {
        return ColdOutcome::Refused {
            detail: gathered
                .report
                .failures()
                .map(|c| match &c.outcome {
                    precheck::CheckOutcome::Fail { reason } => reason.clone(),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    let fresh = gathered.plan.expect("a plan when the checks pass");
    if let Some(change) = plan_drift(plan, &fresh) {
        return ColdOutcome::Refused {
            detail: format!(
                "{}: {change} since the migration was planned; plan it again",
                plan.instance_name
            ),
        };
    }
    // Same disks and volumes as planned (checked above), with today's sizes: a guest that
    // wrote since planning streams more, and the progress should say so.
    let plan = &ColdMigrationPlan {
        disks: fresh.disks,
        ..plan.clone()
    };
    let mut run = Run {
        plan,
        commands,
        updates,
        source,
        destination: destination.expect("the destination answered the prechecks"),
        changes: Changes::default(),
        started,
    };
    match run.forward(&gathered.definition_xml).await {
        Ok(outcome) => outcome,
        Err(Stop::Refused(detail)) => ColdOutcome::Refused { detail },
        Err(Stop::RollBack(reason)) => run.roll_back(reason).await,
    }
}

impl Run<'_> {
    pub(super) fn send(&self, update: ColdUpdate) {
        let _ = self.updates.send(update);
    }

    pub(super) fn phase(&self, phase: ColdPhase) {
        self.send(ColdUpdate::Phase(phase));
    }

    pub(super) fn aborted(&mut self) -> bool {
        matches!(self.commands.try_recv(), Ok(ColdCommand::Abort))
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn forward(&mut self, definition_xml: &str) -> Result<ColdOutcome, Stop> {
        let plan = self.plan;
        if let Some(resize) = plan.resizes_in_place() {
            return self.resize_in_place(resize, definition_xml).await;
        }
        let timeout = plan.call_timeout;
        let key = plan.key();
        let mut shutdown_started = None;
        if plan.instance_was_running {
            shutdown_started = Some(Instant::now());
            self.power_off().await?;
        }
        if self.aborted() {
            return Err(Stop::RollBack("aborted by the operator".into()));
        }

        let copies: Vec<(&ColdDisk, &DiskCopy)> = plan.copied_disks().collect();
        let disk_count = copies.len();
        let mut digests = Vec::new();
        for (index, (disk, copy)) in copies.iter().enumerate() {
            let digest = self.copy_disk(index + 1, disk_count, disk, copy).await?;
            digests.push(digest);
        }
        let mut copied = Vec::new();
        let mut edits = Vec::new();
        for (index, ((disk, copy), (source_digest, created_path))) in
            copies.iter().zip(&digests).enumerate()
        {
            let verified = self
                .verify_disk(index + 1, disk_count, disk, copy, source_digest)
                .await?;
            copied.push(CopiedDisk {
                target: disk.target.clone(),
                destination_path: created_path.clone(),
                bytes: verified.bytes,
                sha256: verified.sha256,
            });
            let new_value = if copy.source_attribute == "pool" {
                copy.destination_volume.pool.clone()
            } else {
                created_path.clone()
            };
            let old_value = if copy.source_attribute == "pool" {
                copy.source_volume.pool.clone()
            } else {
                disk.source.clone()
            };
            if new_value != old_value {
                edits.push(DiskSourceEdit {
                    target: disk.target.clone(),
                    attribute: copy.source_attribute.clone(),
                    value: new_value,
                });
            }
        }

        // Someone may have started the source copy while its disks were being copied: two
        // running copies with diverging disks must never happen.
        match door::domain_presence(&self.source, &key, timeout).await {
            Ok(Some(presence)) if !presence.active => {}
            Ok(Some(_)) => {
                return Err(Stop::RollBack(format!(
                    "{}: {} was started there during the copy; the copy is discarded",
                    plan.source.name, plan.instance_name
                )))
            }
            Ok(None) => {
                return Err(Stop::RollBack(format!(
                    "{}: {} was undefined there during the copy",
                    plan.source.name, plan.instance_name
                )))
            }
            Err(e) => {
                return Err(Stop::RollBack(format!(
                    "{}: cannot make sure {} is still shut off: {e}",
                    plan.source.name, plan.instance_name
                )))
            }
        }

        self.phase(ColdPhase::Defining);
        let xml = edit_disk_sources(definition_xml, &edits).map_err(|e| {
            Stop::RollBack(format!("{}: rewriting disk paths: {e}", plan.instance_name))
        })?;
        let xml = match &plan.resize {
            Some(resize) => edit_to_size(&xml, resize)
                .map_err(|e| Stop::RollBack(format!("{}: {e}", plan.instance_name)))?,
            None => xml,
        };
        // Marked before the call: a define that timed out may still have happened. The
        // rollback removes by UUID, so a refused define never touches another domain that
        // holds the name there.
        self.changes.defined_on_destination = true;
        let defined = door::define_domain(&self.destination, &xml, timeout)
            .await
            .map_err(|e| {
                Stop::RollBack(format!(
                    "{}: the definition was refused: {e}",
                    plan.destination.name
                ))
            })?;
        if defined.uuid != plan.instance_uuid {
            return Err(Stop::RollBack(format!(
                "{}: defined with UUID {} instead of {}",
                plan.destination.name, defined.uuid, plan.instance_uuid
            )));
        }
        if self.aborted() {
            return Err(Stop::RollBack("aborted by the operator".into()));
        }

        let mut downtime_ms = None;
        if plan.instance_was_running {
            self.phase(ColdPhase::Starting);
            // Marked before the call: a start that timed out may still have happened.
            self.changes.started_on_destination = true;
            door::start_domain(&self.destination, &key, timeout)
                .await
                .map_err(|e| {
                    Stop::RollBack(format!(
                        "{}: starting {} failed: {e}",
                        plan.destination.name, plan.instance_name
                    ))
                })?;
            downtime_ms = shutdown_started.map(|t| t.elapsed().as_millis() as u64);
        }
        Ok(ColdOutcome::AwaitingConfirm {
            total_time_ms: self.elapsed_ms(),
            downtime_ms,
            bytes_copied: copied.iter().map(|d| d.bytes).sum(),
            disks: copied,
        })
    }

    /// ACPI request, then wait; a hard power off after the wait only if the plan allows it.
    pub(super) async fn power_off(&mut self) -> Result<(), Stop> {
        let plan = self.plan;
        let options = &plan.options;
        let timeout = plan.call_timeout;
        let key = plan.key();
        let source_name = &plan.source.name;
        self.phase(ColdPhase::ShuttingDown {
            timeout_ms: options.shutdown_timeout.as_millis() as u64,
            hard_power_off_allowed: options.hard_power_off_allowed,
        });
        door::request_shutdown(&self.source, &key, timeout)
            .await
            .map_err(|e| {
                Stop::Refused(format!(
                    "{source_name}: asking {} to shut down failed: {e}",
                    plan.instance_name
                ))
            })?;
        let deadline = Instant::now() + options.shutdown_timeout;
        loop {
            if tokio::time::timeout(SHUTDOWN_POLL, next_abort(self.commands))
                .await
                .is_ok()
            {
                // It may be powering off already: whether to start it again is the
                // rollback's question, from its real state.
                self.changes.powered_off = true;
                return Err(Stop::RollBack(
                    "aborted by the operator while the guest was shutting down".into(),
                ));
            }
            match door::domain_presence(&self.source, &key, timeout).await {
                Ok(Some(presence)) if !presence.active => {
                    self.changes.powered_off = true;
                    return Ok(());
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Stop::Refused(format!(
                        "{source_name}: {} vanished while shutting down",
                        plan.instance_name
                    )))
                }
                Err(e) => self.send(ColdUpdate::Warning {
                    message: format!("reading the guest's state: {e}"),
                }),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let waited = format!(
            "{} did not power off within {} s of an ACPI shutdown request",
            plan.instance_name,
            options.shutdown_timeout.as_secs()
        );
        if !options.hard_power_off_allowed {
            return Err(Stop::Refused(format!(
                "{source_name}: {waited} (the guest may ignore ACPI); it is left running on \
                 {source_name}, though it may still act on the request. Shut it down from \
                 inside, or allow a hard power off"
            )));
        }
        self.phase(ColdPhase::PoweringOffHard);
        self.changes.powered_off = true;
        door::power_off(&self.source, &key, timeout)
            .await
            .map_err(|e| {
                Stop::RollBack(format!(
                    "{source_name}: {waited}; hard power off failed: {e}"
                ))
            })
    }

    /// Creates the destination volume and streams the source into it. Returns the source
    /// stream's digest and the created volume's path.
    async fn copy_disk(
        &mut self,
        disk_number: usize,
        disk_count: usize,
        disk: &ColdDisk,
        copy: &DiskCopy,
    ) -> Result<(StreamDigest, String), Stop> {
        let plan = self.plan;
        let destination_name = &plan.destination.name;
        self.phase(ColdPhase::Copying {
            disk_number,
            disk_count,
            target: disk.target.clone(),
        });
        let created = self
            .destination
            .create_volume(
                &copy.destination_volume.pool,
                &NewVolume {
                    name: copy.destination_volume.name.clone(),
                    format: copy.format.clone(),
                    capacity_bytes: copy.capacity_bytes,
                },
                plan.call_timeout,
            )
            .await
            .map_err(|e| Stop::RollBack(format!("{destination_name}: {e}")))?;
        self.changes
            .created_volumes
            .push(copy.destination_volume.clone());
        let settings = self.copy_settings();
        let mut progress = StreamProgress::new(
            self.updates,
            &mut *self.commands,
            stream_sample(disk_number, disk_count, disk, false, copy.stream_bytes),
            true,
        );
        let digest = copy_volume(
            &self.source,
            &copy.source_volume,
            &self.destination,
            &copy.destination_volume,
            settings,
            &mut |bytes_done| progress.on_chunk(bytes_done),
        )
        .await
        .map_err(|e| {
            Stop::RollBack(match e {
                CopyError::Stopped { reason, .. } => reason,
                CopyError::Libvirt(error) => format!(
                    "copying {} ({}) from {} to {destination_name}: {error}",
                    disk.target, copy.source_volume, plan.source.name
                ),
            })
        })?;
        Ok((digest, created.path))
    }

    fn copy_settings(&self) -> CopySettings {
        let options = &self.plan.options;
        CopySettings {
            chunk_bytes: usize::try_from(options.copy_chunk_bytes.max(64 << 10))
                .unwrap_or(DEFAULT_COPY_CHUNK_BYTES as usize),
            call_timeout: self.plan.call_timeout,
            bandwidth_bytes_per_second: options
                .copy_bandwidth_mib_per_second
                .filter(|m| *m > 0)
                .map(|m| m << 20),
        }
    }

    /// Streams the copy back from the destination and compares it with the source's stream.
    async fn verify_disk(
        &mut self,
        disk_number: usize,
        disk_count: usize,
        disk: &ColdDisk,
        copy: &DiskCopy,
        source_digest: &StreamDigest,
    ) -> Result<StreamDigest, Stop> {
        let plan = self.plan;
        let destination_name = &plan.destination.name;
        self.phase(ColdPhase::Verifying {
            disk_number,
            disk_count,
            target: disk.target.clone(),
        });
        let mut settings = self.copy_settings();
        // The check reads at full speed: the cap protects the hosts during the copy itself.
        settings.bandwidth_bytes_per_second = None;
        // The verification ends with its own update (`Verified`), not a last sample.
        let mut progress = StreamProgress::new(
            self.updates,
            &mut *self.commands,
            stream_sample(disk_number, disk_count, disk, true, source_digest.bytes),
            false,
        );
        let landed = volume_digest(
            &self.destination,
            &copy.destination_volume,
            settings,
            &mut |bytes_done| progress.on_chunk(bytes_done),
        )
        .await
        .map_err(|e| {
            Stop::RollBack(match e {
                CopyError::Stopped { reason, .. } => reason,
                CopyError::Libvirt(error) => format!(
                    "{destination_name}: reading back {} to verify it: {error}",
                    copy.destination_volume
                ),
            })
        })?;
        if &landed != source_digest {
            return Err(Stop::RollBack(format!(
                "{}: the copy on {destination_name} differs from the source on {}: {} with sha256 \
                 {} there, {} with sha256 {} sent",
                disk.target,
                plan.source.name,
                format_bytes(landed.bytes),
                landed.sha256,
                format_bytes(source_digest.bytes),
                source_digest.sha256
            )));
        }
        self.send(ColdUpdate::Verified {
            target: disk.target.clone(),
            bytes: landed.bytes,
            sha256: landed.sha256.clone(),
        });
        Ok(landed)
    }

    pub(super) fn step(&self, description: String) {
        self.send(ColdUpdate::RollbackStep { description });
    }

    /// Puts the instance back on its source and removes what the migration made on the
    /// destination. The guest never runs in two places: if it may be running on the destination
    /// and that host cannot be reached, it is not started on the source.
    async fn roll_back(&mut self, reason: String) -> ColdOutcome {
        let plan = self.plan;
        let timeout = plan.call_timeout;
        let key = plan.key();
        let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
        if !self.changes.any() && !self.changes.started_on_destination {
            return ColdOutcome::Refused { detail: reason };
        }
        self.phase(ColdPhase::RollingBack {
            reason: reason.clone(),
        });
        // The source and the destination are one domain: removing "the destination copy"
        // would remove the guest.
        if let Some(resize) = plan.resizes_in_place() {
            return self.roll_back_in_place(resize, reason).await;
        }

        let mut domain_left = false;
        if self.changes.defined_on_destination || self.changes.started_on_destination {
            match &door::remove_domain_copy(&self.destination, &key, timeout).await {
                Ok(done) => {
                    for description in done {
                        self.step(format!("{destination_name}: {description}"));
                    }
                }
                Err(error) if self.changes.started_on_destination => {
                    return ColdOutcome::Failed {
                        detail: format!(
                            "{reason}; then {destination_name} stopped answering ({error}) after \
                             {} was started there: it is not started on {source_name} again, so \
                             that it never runs twice. Check {destination_name}, then revert",
                            plan.instance_name
                        ),
                    };
                }
                Err(error) => {
                    self.send(ColdUpdate::Warning {
                        message: format!(
                            "{destination_name}: removing the copied definition: {error}; retrying"
                        ),
                    });
                    domain_left = true;
                }
            }
        }

        let mut restart_failure = None;
        if plan.instance_was_running && self.changes.powered_off {
            let state = door::domain_presence(&self.source, &key, timeout).await;
            match state {
                Ok(Some(presence)) if presence.active => {
                    self.step(format!(
                        "{source_name}: {} still running (it had not powered off yet)",
                        plan.instance_name
                    ));
                }
                Ok(Some(_)) => match door::start_domain(&self.source, &key, timeout).await {
                    Ok(()) => self.step(format!(
                        "{source_name}: started {} again",
                        plan.instance_name
                    )),
                    Err(error) => restart_failure = Some(error.to_string()),
                },
                Ok(None) => {
                    restart_failure = Some(format!("{} is no longer defined", plan.instance_name))
                }
                Err(error) => restart_failure = Some(error.to_string()),
            }
        }

        let leftovers = self.clean_destination(domain_left).await;
        if let Some(error) = restart_failure {
            return ColdOutcome::Failed {
                detail: format!(
                    "{reason}; then starting {} again on {source_name} failed: {error}. Its \
                     definition and disks there are untouched; start it by hand{}",
                    plan.instance_name,
                    leftover_note(&leftovers)
                ),
            };
        }
        ColdOutcome::RolledBack {
            detail: reason,
            leftovers,
        }
    }

    /// Deletes the volumes the migration created (and the definition if still there), trying
    /// again for the plan's cleanup window when the destination does not answer. Returns what
    /// is still there at the end.
    async fn clean_destination(&mut self, mut domain_left: bool) -> Vec<String> {
        let plan = self.plan;
        let timeout = plan.call_timeout;
        let destination_name = &plan.destination.name;
        let deadline = Instant::now() + plan.options.destination_cleanup_window;
        let mut volumes_left = std::mem::take(&mut self.changes.created_volumes);
        let mut connection = Some(self.destination.clone());
        let mut warned = false;
        loop {
            if let Some(destination) = &connection {
                if domain_left {
                    match door::remove_domain_copy(destination, &plan.key(), timeout).await {
                        Ok(done) => {
                            domain_left = false;
                            for description in done {
                                self.step(format!("{destination_name}: {description}"));
                            }
                        }
                        Err(_) => connection = None,
                    }
                }
            }
            if let Some(destination) = &connection {
                let mut still_left = Vec::new();
                for volume in volumes_left {
                    match destination.delete_volume(&volume, timeout).await {
                        Ok(true) => {
                            self.step(format!("{destination_name}: deleted the copy {volume}"))
                        }
                        Ok(false) => {}
                        Err(error) => {
                            if !warned {
                                self.send(ColdUpdate::Warning {
                                    message: format!(
                                        "{destination_name}: deleting {volume}: {error}; \
                                         retrying for up to {} s",
                                        plan.options.destination_cleanup_window.as_secs()
                                    ),
                                });
                                warned = true;
                            }
                            still_left.push(volume);
                        }
                    }
                }
                volumes_left = still_left;
            }
            if (volumes_left.is_empty() && !domain_left) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(CLEANUP_RETRY_PAUSE).await;
            // A fresh connection each retry: the old one may be dead after a network outage.
            connection = door::open(&plan.destination.uri, timeout).await.ok();
            if connection.is_none() && !warned {
                self.send(ColdUpdate::Warning {
                    message: format!(
                        "{destination_name}: unreachable; retrying the cleanup for up to {} s",
                        plan.options.destination_cleanup_window.as_secs()
                    ),
                });
                warned = true;
            }
        }
        let mut leftovers: Vec<String> = volumes_left
            .iter()
            .map(|v| format!("{destination_name}: volume {v}"))
            .collect();
        if domain_left {
            leftovers.insert(
                0,
                format!(
                    "{destination_name}: definition of {} (UUID {})",
                    plan.instance_name, plan.instance_uuid
                ),
            );
        }
        leftovers
    }
}

fn leftover_note(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        String::new()
    } else {
        format!(". Left on the destination: {}", leftovers.join(", "))
    }
}

/// Waits for the operator's abort. A closed command channel (every sender dropped) is no abort:
/// it waits for ever, so that a caller's timeout decides.
async fn next_abort(commands: &mut UnboundedReceiver<ColdCommand>) {
    match commands.recv().await {
        Some(ColdCommand::Abort) => {}
        None => std::future::pending().await,
    }
}
