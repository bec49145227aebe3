//! The launch dialog (`m` live, `c` cold on the instances list): every candidate destination
//! with its free memory, CPUs and precheck verdict, an `auto` entry, and the options of the
//! migration. Pure state: prechecks arrive as data (`App::on_precheck_reports`), and confirming
//! yields an [`Action`] for the runtime.

use crossterm::event::KeyCode;

use crate::config::MigrationDefaults;
use crate::engine::cold::resize::{parse_memory_mib, parse_vcpus};
use crate::engine::cold::{NewSize, DEFAULT_SHUTDOWN_TIMEOUT};
use crate::inventory::{Instance, Inventory};
use crate::model::migration::MigrationKind;
use crate::model::HostName;
use crate::policy::TimeoutAction;
use crate::precheck::{BlockMigrationChoice, CheckOutcome, PrecheckReport};

use super::instances::InstanceKey;
use crate::tui::action::{
    Action, ColdLaunchRequest, LaunchOptions, LaunchRequest, PrecheckRequest,
};
use crate::tui::keys::KeyAction;
use crate::tui::number_field::{NumberEdit, NumberField, MAX_DIGITS};

/// Shown wherever cold migration is offered while it cannot run: without the history there
/// is nowhere to keep the plan that confirm and revert need.
pub const COLD_NOT_AVAILABLE: &str =
    "unavailable: the history could not be opened (see the status bar)";

/// What is known of one destination's prechecks.
#[derive(Debug, Clone, PartialEq)]
pub enum DestinationCheck {
    /// Asked for, not answered yet.
    Checking,
    Report(Box<PrecheckReport>),
    /// The facts could not be gathered (say, the host did not answer), with why.
    Error(String),
    /// Not asked for: cold migration is not available, so nothing could be launched.
    NotChecked,
}

impl DestinationCheck {
    /// Why this destination cannot be chosen; None if it passed (or is still being checked).
    pub fn refusal(&self) -> Option<String> {
        match self {
            DestinationCheck::Report(report) => {
                let mut failures = report.failures();
                let first = failures.next()?;
                let reason = match &first.outcome {
                    CheckOutcome::Fail { reason } => reason.clone(),
                    _ => first.title.to_string(),
                };
                let more = failures.count();
                Some(if more == 0 {
                    reason
                } else {
                    format!("{reason} (+{more} more)")
                })
            }
            DestinationCheck::Error(error) => Some(error.clone()),
            DestinationCheck::Checking | DestinationCheck::NotChecked => None,
        }
    }

    pub fn passed_report(&self) -> Option<&PrecheckReport> {
        match self {
            DestinationCheck::Report(report) if report.passed() => Some(report),
            _ => None,
        }
    }

    /// Warnings of a passing report: checks that could not really be made.
    pub fn warnings(&self) -> Vec<&str> {
        match self {
            DestinationCheck::Report(report) => report
                .checks
                .iter()
                .filter_map(|c| match &c.outcome {
                    CheckOutcome::Warn { reason } => Some(reason.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub host: HostName,
    pub check: DestinationCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogFocus {
    Destinations,
    Options,
}

/// The options rows, in the order the dialog lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchField {
    Policy,
    Bandwidth,
    MaxDowntime,
    PostCopy,
    AutoConverge,
    BlockMigration,
    TimeoutAction,
    HardPowerOff,
    ShutdownTimeout,
    /// Cold: resize to this many vCPUs (empty keeps them).
    NewVcpus,
    /// Cold: resize to this much memory, MiB (empty keeps it).
    NewMemoryMib,
}

impl LaunchField {
    pub const LIVE: [LaunchField; 7] = [
        LaunchField::Policy,
        LaunchField::Bandwidth,
        LaunchField::MaxDowntime,
        LaunchField::PostCopy,
        LaunchField::AutoConverge,
        LaunchField::BlockMigration,
        LaunchField::TimeoutAction,
    ];
    /// A cold migration copies every local disk (there is no memory to move), so only the
    /// shutdown, the copy's speed and a new size (a resize) are the operator's to choose.
    pub const COLD: [LaunchField; 5] = [
        LaunchField::ShutdownTimeout,
        LaunchField::HardPowerOff,
        LaunchField::Bandwidth,
        LaunchField::NewVcpus,
        LaunchField::NewMemoryMib,
    ];

    /// The options rows of a dialog of this kind, in order.
    pub fn of(kind: MigrationKind) -> &'static [LaunchField] {
        match kind {
            MigrationKind::Live => &LaunchField::LIVE,
            MigrationKind::Cold => &LaunchField::COLD,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LaunchField::Policy => "policy",
            LaunchField::Bandwidth => "bandwidth MiB/s",
            LaunchField::MaxDowntime => "max downtime ms",
            LaunchField::PostCopy => "post-copy",
            LaunchField::AutoConverge => "auto-converge",
            LaunchField::BlockMigration => "block migration",
            LaunchField::TimeoutAction => "at timeout",
            LaunchField::HardPowerOff => "hard power-off",
            LaunchField::ShutdownTimeout => "shutdown s",
            LaunchField::NewVcpus => "new vCPUs",
            LaunchField::NewMemoryMib => "new memory MiB",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            LaunchField::Bandwidth
                | LaunchField::MaxDowntime
                | LaunchField::ShutdownTimeout
                | LaunchField::NewVcpus
                | LaunchField::NewMemoryMib
        )
    }
}

/// What a key did to the dialog, for the app to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogOutcome {
    Unchanged,
    Changed,
    /// Show this reason; nothing else changes.
    Flash(String),
    Close,
    /// The block-migration choice changed: the verdicts are stale, ask again.
    RecheckNeeded,
    /// Boxed: a launch request carries the config's whole `[migration]` table.
    Confirmed(Box<Action>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LaunchDialog {
    pub kind: MigrationKind,
    /// False while ferry cannot cold-migrate: a cold dialog then only shows why.
    pub cold_available: bool,
    pub instance: InstanceKey,
    pub instance_name: String,
    pub instance_memory_bytes: u64,
    pub instance_vcpus: u32,
    pub candidates: Vec<Candidate>,
    pub precheck_request_id: u64,
    pub focus: DialogFocus,
    /// 0 is `auto`; 1.. index `candidates`.
    pub destination_cursor: usize,
    /// Index into [`LaunchDialog::fields`].
    pub option_cursor: usize,
    pub options: LaunchOptions,
    /// What the operator typed; empty means no limit.
    pub bandwidth: NumberField,
    pub max_downtime: NumberField,
    /// Cold: seconds the guest gets to shut down by itself.
    pub shutdown_timeout: NumberField,
    /// Cold: power the guest off hard when the shutdown timeout passes.
    pub hard_power_off_allowed: bool,
    /// Cold: the resize typed; empty keeps the size. With either given, the guest's own host
    /// is offered as a destination (a resize in place).
    pub new_vcpus: NumberField,
    pub new_memory_mib: NumberField,
    /// Set once typed: switching the policy then keeps the operator's ceiling.
    max_downtime_edited: bool,
    auto_converge_edited: bool,
}

impl LaunchDialog {
    /// A dialog for `instance`, listing every other host of the inventory in config order
    /// (operators group hosts there on purpose).
    pub fn open(
        kind: MigrationKind,
        cold_available: bool,
        instance: &Instance,
        inventory: &Inventory,
        precheck_request_id: u64,
        defaults: &MigrationDefaults,
    ) -> LaunchDialog {
        let checkable = kind == MigrationKind::Live || cold_available;
        let candidates = inventory
            .hosts
            .iter()
            .filter(|h| h.name != instance.host)
            .map(|h| Candidate {
                host: h.name.clone(),
                check: if checkable {
                    DestinationCheck::Checking
                } else {
                    DestinationCheck::NotChecked
                },
            })
            .collect();
        let options = LaunchOptions::from_config(defaults);
        LaunchDialog {
            kind,
            cold_available,
            instance: InstanceKey::of(instance),
            instance_name: instance.name.clone(),
            instance_memory_bytes: instance.memory_bytes,
            instance_vcpus: instance.vcpus,
            candidates,
            precheck_request_id,
            focus: DialogFocus::Destinations,
            destination_cursor: 0,
            option_cursor: 0,
            max_downtime: NumberField::with_value(options.max_downtime_ceiling_ms),
            bandwidth: options
                .bandwidth_mib_per_second
                .map_or_else(NumberField::default, NumberField::with_value),
            // The engine's default (Nova's `shutdown_timeout`), not a copy of it.
            shutdown_timeout: NumberField::with_value(DEFAULT_SHUTDOWN_TIMEOUT.as_secs()),
            hard_power_off_allowed: false,
            new_vcpus: NumberField::default(),
            new_memory_mib: NumberField::default(),
            options,
            max_downtime_edited: false,
            auto_converge_edited: false,
        }
    }

    /// Nothing can be launched from this dialog: it is there to say why.
    pub fn is_disabled(&self) -> bool {
        self.kind == MigrationKind::Cold && !self.cold_available
    }

    /// The request the runtime needs to fill the verdicts; None for a disabled dialog.
    pub fn precheck_request(&self) -> Option<PrecheckRequest> {
        if self.is_disabled() {
            return None;
        }
        Some(PrecheckRequest {
            request_id: self.precheck_request_id,
            kind: self.kind,
            instance: self.instance.clone(),
            instance_name: self.instance_name.clone(),
            destinations: self.candidates.iter().map(|c| c.host.clone()).collect(),
            block_migration: self.options.block_migration,
            new_size: self.new_size().ok().flatten(),
        })
    }

    /// The resize typed, if any, or why it is not one.
    pub fn new_size(&self) -> Result<Option<NewSize>, String> {
        if self.kind != MigrationKind::Cold {
            return Ok(None);
        }
        let vcpus = match self.new_vcpus.value() {
            None => None,
            Some(n) => Some(parse_vcpus(&n.to_string())?),
        };
        let memory_mib = match self.new_memory_mib.value() {
            None => None,
            Some(mib) => Some(parse_memory_mib(&mib.to_string())?),
        };
        let new_size = NewSize { vcpus, memory_mib };
        Ok((!new_size.is_empty()).then_some(new_size))
    }

    /// The guest's own host is a destination exactly while a size is typed: listed last, so
    /// the other rows keep their places.
    fn offer_own_host_for_a_resize(&mut self) {
        let own = &self.instance.host;
        let resizing = self.new_size().is_ok_and(|n| n.is_some());
        let listed = self.candidates.iter().position(|c| &c.host == own);
        match (resizing, listed) {
            (true, None) => self.candidates.push(Candidate {
                host: own.clone(),
                check: DestinationCheck::Checking,
            }),
            (false, Some(index)) => {
                self.candidates.remove(index);
                self.destination_cursor = self.destination_cursor.min(self.candidates.len());
            }
            _ => {}
        }
    }

    /// Every verdict back to "checking…" under a new request id.
    pub fn restart_prechecks(&mut self, request_id: u64) {
        self.precheck_request_id = request_id;
        for candidate in &mut self.candidates {
            candidate.check = DestinationCheck::Checking;
        }
    }

    /// Fills in the verdicts that came back; reports for another request or host are
    /// dropped. True if anything changed.
    pub fn on_precheck_reports(
        &mut self,
        request_id: u64,
        reports: Vec<(HostName, Result<PrecheckReport, String>)>,
    ) -> bool {
        if request_id != self.precheck_request_id || self.is_disabled() {
            return false;
        }
        let mut changed = false;
        for (host, result) in reports {
            if let Some(candidate) = self.candidates.iter_mut().find(|c| c.host == host) {
                candidate.check = match result {
                    Ok(report) => DestinationCheck::Report(Box::new(report)),
                    Err(error) => DestinationCheck::Error(error),
                };
                changed = true;
            }
        }
        changed
    }

    pub fn still_checking(&self) -> Vec<&HostName> {
        self.candidates
            .iter()
            .filter(|c| c.check == DestinationCheck::Checking)
            .map(|c| &c.host)
            .collect()
    }

    /// `auto`: the passing destination with the most free memory, once every verdict is in
    /// (an answer still on its way could be the better host). Err says why there is none.
    pub fn auto_destination(&self, inventory: &Inventory) -> Result<&Candidate, String> {
        if self.candidates.is_empty() {
            return Err(format!(
                "no other host in the inventory to move {} to",
                self.instance_name
            ));
        }
        let checking = self.still_checking();
        if !checking.is_empty() {
            let names: Vec<&str> = checking.iter().map(|h| h.as_str()).collect();
            return Err(format!(
                "auto picks once every precheck is in; still checking {}",
                names.join(", ")
            ));
        }
        let free_memory = |c: &Candidate| {
            inventory
                .host(&c.host)
                .and_then(|h| h.facts.as_ref())
                .map_or(0, |f| f.memory_free_bytes)
        };
        let mut best: Option<&Candidate> = None;
        // A resize in place is the operator's choice, never auto's: auto moves the guest.
        for candidate in self
            .candidates
            .iter()
            .filter(|c| c.check.passed_report().is_some() && c.host != self.instance.host)
        {
            // Strictly more: on a tie the host listed first (config order) wins.
            if best.is_none_or(|b| free_memory(candidate) > free_memory(b)) {
                best = Some(candidate);
            }
        }
        best.ok_or_else(|| "auto: no destination passed its prechecks".to_string())
    }

    /// The highlighted destination and whether `auto` chose it, or why it cannot be used.
    fn chosen_destination(&self, inventory: &Inventory) -> Result<(&Candidate, bool), String> {
        if self.destination_cursor == 0 {
            return self.auto_destination(inventory).map(|c| (c, true));
        }
        let candidate = self
            .candidates
            .get(self.destination_cursor - 1)
            .ok_or_else(|| "no destination selected".to_string())?;
        match &candidate.check {
            DestinationCheck::Checking => {
                Err(format!("{}: prechecks are still running", candidate.host))
            }
            check => match check.refusal() {
                Some(reason) => Err(reason),
                None => Ok((candidate, false)),
            },
        }
    }

    /// What confirming would launch, or why it cannot: the dialog's summary line and Enter
    /// both come from here.
    pub fn request(&self, inventory: &Inventory) -> Result<Action, String> {
        if self.is_disabled() {
            return Err(COLD_NOT_AVAILABLE.to_string());
        }
        let (candidate, automatic) = self.chosen_destination(inventory)?;
        if self.kind == MigrationKind::Cold {
            let shutdown_timeout_seconds = match self.shutdown_timeout.value() {
                Some(seconds) if seconds > 0 => seconds,
                _ => {
                    return Err(
                        "type the shutdown timeout in seconds (at least 1), e.g. 60".to_string()
                    )
                }
            };
            if self.options.bandwidth_mib_per_second == Some(0) {
                return Err(
                    "bandwidth 0 MiB/s would never copy a byte; leave it empty for no limit".into(),
                );
            }
            let new_size = self.new_size()?;
            return Ok(Action::LaunchColdMigration(ColdLaunchRequest {
                instance: self.instance.clone(),
                instance_name: self.instance_name.clone(),
                destination: candidate.host.clone(),
                destination_chosen_automatically: automatic,
                hard_power_off_allowed: self.hard_power_off_allowed,
                shutdown_timeout_seconds,
                copy_bandwidth_mib_per_second: self.options.bandwidth_mib_per_second,
                new_size,
            }));
        }
        if self.max_downtime.is_empty() {
            return Err("type a max downtime in ms, e.g. 2000".to_string());
        }
        self.options.validate()?;
        let report = candidate
            .check
            .passed_report()
            .ok_or_else(|| format!("{}: no passing precheck report", candidate.host))?;
        Ok(Action::LaunchLiveMigration(LaunchRequest {
            instance: self.instance.clone(),
            instance_name: self.instance_name.clone(),
            instance_memory_bytes: self.instance_memory_bytes,
            destination: candidate.host.clone(),
            destination_chosen_automatically: automatic,
            options: self.options.clone(),
            copy_plan: report.plan.clone(),
        }))
    }

    /// The line above the keys: exactly what Enter will do, or why it will not.
    pub fn summary(&self, inventory: &Inventory) -> Result<String, String> {
        match self.request(inventory)? {
            Action::LaunchLiveMigration(request) => Ok(request.summary()),
            Action::LaunchColdMigration(request) => Ok(request.summary()),
            other => Err(format!("unexpected launch action {other:?}")),
        }
    }

    /// The options rows this dialog lists.
    pub fn fields(&self) -> &'static [LaunchField] {
        LaunchField::of(self.kind)
    }

    pub fn field(&self) -> LaunchField {
        let fields = self.fields();
        fields[self.option_cursor.min(fields.len() - 1)]
    }

    /// The value of an option as the dialog prints it.
    pub fn value_text(&self, field: LaunchField) -> String {
        let options = &self.options;
        match field {
            LaunchField::Policy => options.policy.name().to_string(),
            LaunchField::Bandwidth if self.bandwidth.is_empty() => "no limit".to_string(),
            LaunchField::Bandwidth => self.bandwidth.to_string(),
            LaunchField::MaxDowntime => self.max_downtime.to_string(),
            LaunchField::PostCopy => {
                if options.post_copy_permitted {
                    "permitted".to_string()
                } else {
                    "not permitted".to_string()
                }
            }
            LaunchField::AutoConverge => on_off(options.auto_converge).to_string(),
            LaunchField::BlockMigration => block_choice_name(options.block_migration).to_string(),
            LaunchField::TimeoutAction => match options.timeout_action {
                TimeoutAction::Abort => "abort".to_string(),
                TimeoutAction::ForceComplete => "force-complete".to_string(),
            },
            LaunchField::HardPowerOff => if self.hard_power_off_allowed {
                "allowed after the timeout"
            } else {
                "never (refuse instead)"
            }
            .to_string(),
            LaunchField::ShutdownTimeout => self.shutdown_timeout.to_string(),
            LaunchField::NewVcpus if self.new_vcpus.is_empty() => {
                format!("keep ({})", self.instance_vcpus)
            }
            LaunchField::NewVcpus => self.new_vcpus.to_string(),
            LaunchField::NewMemoryMib if self.new_memory_mib.is_empty() => {
                format!("keep ({} MiB)", self.instance_memory_bytes >> 20)
            }
            LaunchField::NewMemoryMib => self.new_memory_mib.to_string(),
        }
    }

    /// One key: `action` is what the key table makes of it in the dialog, `code` the key
    /// itself for a number field.
    pub fn handle_key(
        &mut self,
        action: Option<KeyAction>,
        code: KeyCode,
        inventory: &Inventory,
    ) -> DialogOutcome {
        match action {
            Some(KeyAction::Close) => return DialogOutcome::Close,
            Some(KeyAction::Launch) => {
                return match self.request(inventory) {
                    Ok(action) => DialogOutcome::Confirmed(Box::new(action)),
                    Err(reason) => DialogOutcome::Flash(reason),
                }
            }
            Some(KeyAction::SwitchFocus) => {
                if self.is_disabled() {
                    return DialogOutcome::Unchanged;
                }
                self.focus = match self.focus {
                    DialogFocus::Destinations => DialogFocus::Options,
                    DialogFocus::Options => DialogFocus::Destinations,
                };
                return DialogOutcome::Changed;
            }
            Some(KeyAction::MoveUp) => return self.move_cursor(-1),
            Some(KeyAction::MoveDown) => return self.move_cursor(1),
            _ => {}
        }
        if self.focus == DialogFocus::Options {
            return self.edit_option(action, code);
        }
        DialogOutcome::Unchanged
    }

    fn move_cursor(&mut self, delta: isize) -> DialogOutcome {
        let (cursor, rows) = match self.focus {
            DialogFocus::Destinations => (&mut self.destination_cursor, self.candidates.len() + 1),
            DialogFocus::Options => (&mut self.option_cursor, LaunchField::of(self.kind).len()),
        };
        let moved = (*cursor as isize + delta).clamp(0, rows as isize - 1) as usize;
        if moved == *cursor {
            return DialogOutcome::Unchanged;
        }
        *cursor = moved;
        DialogOutcome::Changed
    }

    fn edit_option(&mut self, action: Option<KeyAction>, code: KeyCode) -> DialogOutcome {
        let field = self.field();
        if field.is_numeric() {
            return self.edit_number(field, code);
        }
        let forward = match action {
            Some(KeyAction::NextValue) => true,
            Some(KeyAction::PreviousValue) => false,
            _ => return DialogOutcome::Unchanged,
        };
        let options = &mut self.options;
        match field {
            LaunchField::Policy => {
                let policy = options.policy.other();
                options.policy = policy;
                // The other policy's own defaults, unless the operator chose otherwise.
                if !self.max_downtime_edited {
                    options.max_downtime_ceiling_ms = policy.downtime_ceiling_ms(&options.defaults);
                    self.max_downtime.set(options.max_downtime_ceiling_ms);
                }
                if !self.auto_converge_edited {
                    options.auto_converge = policy.auto_converge(&options.defaults);
                }
            }
            LaunchField::PostCopy => options.post_copy_permitted = !options.post_copy_permitted,
            LaunchField::AutoConverge => {
                options.auto_converge = !options.auto_converge;
                self.auto_converge_edited = true;
            }
            LaunchField::BlockMigration => {
                let order = [
                    BlockMigrationChoice::Auto,
                    BlockMigrationChoice::Yes,
                    BlockMigrationChoice::No,
                ];
                let index = order
                    .iter()
                    .position(|c| *c == options.block_migration)
                    .unwrap_or(0);
                let next = if forward {
                    index + 1
                } else {
                    index + order.len() - 1
                };
                options.block_migration = order[next % order.len()];
                return DialogOutcome::RecheckNeeded;
            }
            LaunchField::TimeoutAction => {
                options.timeout_action = match options.timeout_action {
                    TimeoutAction::Abort => TimeoutAction::ForceComplete,
                    TimeoutAction::ForceComplete => TimeoutAction::Abort,
                }
            }
            LaunchField::HardPowerOff => self.hard_power_off_allowed = !self.hard_power_off_allowed,
            LaunchField::Bandwidth
            | LaunchField::MaxDowntime
            | LaunchField::ShutdownTimeout
            | LaunchField::NewVcpus
            | LaunchField::NewMemoryMib => {}
        }
        DialogOutcome::Changed
    }

    fn edit_number(&mut self, field: LaunchField, code: KeyCode) -> DialogOutcome {
        let number = match field {
            LaunchField::Bandwidth => &mut self.bandwidth,
            LaunchField::ShutdownTimeout => &mut self.shutdown_timeout,
            LaunchField::NewVcpus => &mut self.new_vcpus,
            LaunchField::NewMemoryMib => &mut self.new_memory_mib,
            _ => &mut self.max_downtime,
        };
        match number.edit(code) {
            NumberEdit::Changed => {}
            NumberEdit::Unchanged | NumberEdit::NotForTheField => return DialogOutcome::Unchanged,
            NumberEdit::TooManyDigits => {
                return DialogOutcome::Flash(format!(
                    "{} takes at most {MAX_DIGITS} digits",
                    field.label()
                ))
            }
            NumberEdit::NotADigit(c) => {
                return DialogOutcome::Flash(format!(
                    "{} takes a whole number: {c:?} is not a digit",
                    field.label()
                ))
            }
        }
        let value = number.value();
        match field {
            LaunchField::Bandwidth => self.options.bandwidth_mib_per_second = value,
            // Read from the field at launch, where an empty or zero value is refused.
            LaunchField::ShutdownTimeout => {}
            // The verdicts depend on the size, and so does whether the own host is listed.
            LaunchField::NewVcpus | LaunchField::NewMemoryMib => {
                self.offer_own_host_for_a_resize();
                return DialogOutcome::RecheckNeeded;
            }
            _ => {
                self.options.max_downtime_ceiling_ms = value.unwrap_or(0);
                self.max_downtime_edited = true;
            }
        }
        DialogOutcome::Changed
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

pub fn block_choice_name(choice: BlockMigrationChoice) -> &'static str {
    match choice {
        BlockMigrationChoice::Auto => "auto",
        BlockMigrationChoice::Yes => "yes",
        BlockMigrationChoice::No => "no",
    }
}
