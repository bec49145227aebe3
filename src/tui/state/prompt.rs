//! The operator's commands on a migration (`a` abort, `f` force-complete, `b` bandwidth, `d`
//! max downtime on a live one; `a` abort, `C` confirm, `R` revert on a cold one): whether the
//! key may act at all, the confirmation or number it asks for, and what it yields. Refusals
//! the TUI can already tell (abort in post-copy, confirm before the copy is verified) come at
//! once with the reason; the engine still has the last word.

use crossterm::event::KeyCode;

use crate::engine::cold::resize::size_words;
use crate::engine::live::{LiveOutcome, OperatorCommand};
use crate::model::migration::MigrationId;

use super::cold_detail::{ColdEnd, ColdStage, TrackedCold};
use super::migrations::{Listed, MigrationAlert, Stage, TrackedMigration};
use super::nova::{nova_prompt_for, nova_prompt_text, nova_prompt_title, NovaQuestion};
use crate::tui::keys::KeyAction;
use crate::tui::number_field::{NumberEdit, NumberField, MAX_DIGITS};

/// The commands, as keys name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorKey {
    Abort,
    ForceComplete,
    Bandwidth,
    MaxDowntime,
    /// Cold: keep the move, remove the source copy.
    Confirm,
    /// Cold: go back to the source, remove the destination copy.
    Revert,
    /// Live: resume a broken post-copy now.
    Recover,
}

impl OperatorKey {
    /// The command a key of the migrations screen asks for, if it asks for one.
    pub fn from_action(action: KeyAction) -> Option<OperatorKey> {
        Some(match action {
            KeyAction::Abort => OperatorKey::Abort,
            KeyAction::ForceComplete => OperatorKey::ForceComplete,
            KeyAction::Bandwidth => OperatorKey::Bandwidth,
            KeyAction::MaxDowntime => OperatorKey::MaxDowntime,
            KeyAction::Confirm => OperatorKey::Confirm,
            KeyAction::Revert => OperatorKey::Revert,
            KeyAction::Recover => OperatorKey::Recover,
            _ => return None,
        })
    }

    /// The key table's action for this command.
    pub fn action(self) -> KeyAction {
        match self {
            OperatorKey::Abort => KeyAction::Abort,
            OperatorKey::ForceComplete => KeyAction::ForceComplete,
            OperatorKey::Bandwidth => KeyAction::Bandwidth,
            OperatorKey::MaxDowntime => KeyAction::MaxDowntime,
            OperatorKey::Confirm => KeyAction::Confirm,
            OperatorKey::Revert => KeyAction::Revert,
            OperatorKey::Recover => KeyAction::Recover,
        }
    }

    pub(super) fn verb(self) -> &'static str {
        match self {
            OperatorKey::Abort => "abort",
            OperatorKey::ForceComplete => "force-complete",
            OperatorKey::Bandwidth => "set the bandwidth of",
            OperatorKey::MaxDowntime => "set the max downtime of",
            OperatorKey::Confirm => "confirm",
            OperatorKey::Revert => "revert",
            OperatorKey::Recover => "recover",
        }
    }
}

/// The question a cold migration's key asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdQuestion {
    Abort,
    Confirm,
    Revert,
}

/// What the operator is being asked, about which migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorPrompt {
    ConfirmAbort {
        id: MigrationId,
    },
    /// y/n: resume a broken post-copy now.
    ConfirmRecover {
        id: MigrationId,
    },
    ConfirmForceComplete {
        id: MigrationId,
        /// The plan permitted post-copy: force-complete switches to it. Otherwise the
        /// guest is paused.
        switches_to_post_copy: bool,
    },
    Bandwidth {
        id: MigrationId,
        typed: NumberField,
    },
    MaxDowntime {
        id: MigrationId,
        typed: NumberField,
    },
    /// y/n on a cold migration.
    Cold {
        id: MigrationId,
        question: ColdQuestion,
    },
    /// y/n on a migration Nova carries out: the answer is asked of Nova.
    Nova {
        id: MigrationId,
        question: NovaQuestion,
    },
}

/// What a key did to an open prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptOutcome {
    Unchanged,
    Changed,
    /// Show this and keep the prompt open.
    Flash(String),
    Cancelled,
    Send(OperatorCommand),
    /// The operator answered yes to a cold migration's question.
    ColdYes(ColdQuestion),
    /// The operator answered yes to a question about a Nova migration.
    NovaYes(NovaQuestion),
}

/// The prompt for `key` on the migration of a list row, live or cold, or why the key cannot
/// act on it.
pub fn prompt_for_listed(key: OperatorKey, migration: Listed) -> Result<OperatorPrompt, String> {
    match migration {
        Listed::Live(live) => prompt_for(key, live),
        Listed::Cold(cold) => cold_prompt_for(key, cold),
        Listed::Nova(nova) => nova_prompt_for(key, nova),
    }
}

/// `a`, `C` and `R` on a cold migration.
pub fn cold_prompt_for(
    key: OperatorKey,
    migration: &TrackedCold,
) -> Result<OperatorPrompt, String> {
    let id = migration.id;
    let name = format!("#{id} {}", migration.instance_name());
    let question = match key {
        OperatorKey::Abort => ColdQuestion::Abort,
        OperatorKey::Confirm => ColdQuestion::Confirm,
        OperatorKey::Revert => ColdQuestion::Revert,
        OperatorKey::ForceComplete
        | OperatorKey::Bandwidth
        | OperatorKey::MaxDowntime
        | OperatorKey::Recover => {
            return Err(format!(
                "{name} is a cold migration: {} applies to live migrations only",
                key.verb().trim_end_matches(" of")
            ))
        }
    };
    let verb = key.verb();
    match (&migration.stage, question) {
        (ColdStage::Finished(end), _) => {
            let how = match end {
                ColdEnd::Confirmed => "was confirmed",
                ColdEnd::Reverted => "was reverted",
                ColdEnd::Engine(_) => "has ended",
            };
            Err(format!("{name} {how}: nothing to {verb}"))
        }
        (ColdStage::Settling { keep }, _) => Err(format!(
            "{name} is being {} right now",
            if *keep { "confirmed" } else { "reverted" }
        )),
        (ColdStage::Running, ColdQuestion::Abort) if migration.rolling_back() => Err(format!(
            "{name} is already rolling back to {}",
            migration.source()
        )),
        (ColdStage::Running, ColdQuestion::Abort) => Ok(OperatorPrompt::Cold { id, question }),
        (ColdStage::Running, _) => Err(format!(
            "{name} is still moving: {verb} once it awaits confirm (or a to abort)"
        )),
        (ColdStage::AwaitingConfirm, ColdQuestion::Abort) => Err(format!(
            "{name} already runs on {}: R reverts it to {}",
            migration.destination(),
            migration.source()
        )),
        (ColdStage::AwaitingConfirm, question) => Ok(OperatorPrompt::Cold { id, question }),
    }
}

/// The prompt for `key` on `migration`, or why the key cannot act on it.
pub fn prompt_for(
    key: OperatorKey,
    migration: &TrackedMigration,
) -> Result<OperatorPrompt, String> {
    let id = migration.id;
    let name = format!("#{id} {}", migration.instance_name());
    if matches!(key, OperatorKey::Confirm | OperatorKey::Revert) {
        return Err(format!(
            "{name} is a live migration: {} applies to a cold migration awaiting confirm",
            key.verb()
        ));
    }
    match &migration.stage {
        Stage::Finished(outcome) => {
            let how = match outcome {
                LiveOutcome::Completed { .. } => "has already completed",
                LiveOutcome::Cancelled { .. } => "was already cancelled",
                LiveOutcome::Failed { .. } => "has already failed",
                LiveOutcome::Unsettled { .. } => "is unsettled (a host did not answer)",
            };
            return Err(format!(
                "{name} {how}: nothing to {}",
                key.verb().trim_end_matches(" of")
            ));
        }
        Stage::Queued { .. } if key != OperatorKey::Abort => {
            return Err(format!(
                "{name} has not started yet; it can only be removed from the queue (a)"
            ));
        }
        _ => {}
    }
    match key {
        OperatorKey::Abort if migration.in_post_copy() => Err(format!(
            "abort refused: {name} is in post-copy; the guest already runs on {} and its \
             memory is split between both hosts, so it can only finish",
            migration.destination()
        )),
        OperatorKey::Abort => Ok(OperatorPrompt::ConfirmAbort { id }),
        OperatorKey::ForceComplete if migration.in_post_copy() => Err(format!(
            "force-complete: {name} is already in post-copy and finishing"
        )),
        OperatorKey::ForceComplete => Ok(OperatorPrompt::ConfirmForceComplete {
            id,
            switches_to_post_copy: migration.plan.post_copy_permitted,
        }),
        OperatorKey::Bandwidth => Ok(OperatorPrompt::Bandwidth {
            id,
            typed: NumberField::default(),
        }),
        OperatorKey::MaxDowntime => Ok(OperatorPrompt::MaxDowntime {
            id,
            typed: NumberField::default(),
        }),
        OperatorKey::Recover
            if migration
                .alert
                .as_ref()
                .is_some_and(MigrationAlert::is_severe) =>
        {
            Ok(OperatorPrompt::ConfirmRecover { id })
        }
        OperatorKey::Recover => Err(format!(
            "{name}: nothing to recover; r resumes a post-copy whose stream broke (ferry also \
             does it by itself as soon as both hosts answer)"
        )),
        OperatorKey::Confirm | OperatorKey::Revert => unreachable!("refused above"),
    }
}

impl OperatorPrompt {
    pub fn id(&self) -> MigrationId {
        match self {
            OperatorPrompt::ConfirmAbort { id }
            | OperatorPrompt::ConfirmForceComplete { id, .. }
            | OperatorPrompt::Bandwidth { id, .. }
            | OperatorPrompt::MaxDowntime { id, .. }
            | OperatorPrompt::ConfirmRecover { id }
            | OperatorPrompt::Cold { id, .. }
            | OperatorPrompt::Nova { id, .. } => *id,
        }
    }

    /// The key that asked this.
    pub fn key(&self) -> OperatorKey {
        match self {
            OperatorPrompt::ConfirmAbort { .. } => OperatorKey::Abort,
            OperatorPrompt::ConfirmRecover { .. } => OperatorKey::Recover,
            OperatorPrompt::ConfirmForceComplete { .. } => OperatorKey::ForceComplete,
            OperatorPrompt::Bandwidth { .. } => OperatorKey::Bandwidth,
            OperatorPrompt::MaxDowntime { .. } => OperatorKey::MaxDowntime,
            OperatorPrompt::Cold { question, .. } => match question {
                ColdQuestion::Abort => OperatorKey::Abort,
                ColdQuestion::Confirm => OperatorKey::Confirm,
                ColdQuestion::Revert => OperatorKey::Revert,
            },
            OperatorPrompt::Nova { question, .. } => question.key(),
        }
    }

    pub fn is_confirmation(&self) -> bool {
        matches!(
            self,
            OperatorPrompt::ConfirmAbort { .. }
                | OperatorPrompt::ConfirmRecover { .. }
                | OperatorPrompt::ConfirmForceComplete { .. }
                | OperatorPrompt::Cold { .. }
                | OperatorPrompt::Nova { .. }
        )
    }

    /// The last paragraph is a warning of what cannot be undone.
    pub fn ends_with_warning(&self) -> bool {
        matches!(
            self,
            OperatorPrompt::ConfirmForceComplete {
                switches_to_post_copy: true,
                ..
            } | OperatorPrompt::Cold {
                question: ColdQuestion::Confirm | ColdQuestion::Revert,
                ..
            } | OperatorPrompt::Nova {
                question: NovaQuestion::ForceComplete
                    | NovaQuestion::Confirm
                    | NovaQuestion::Revert,
                ..
            }
        )
    }

    /// The title over the prompt, for the migration it asks about.
    pub fn title_for(&self, migration: Listed) -> String {
        match migration {
            Listed::Live(live) => self.title(live),
            Listed::Cold(cold) => {
                let name = format!("#{} {}", cold.id, cold.instance_name());
                match self {
                    OperatorPrompt::Cold { question, .. } => match question {
                        ColdQuestion::Abort => format!(" Abort the cold migration of {name}? "),
                        ColdQuestion::Confirm => {
                            format!(" Confirm {name} on {}? ", cold.destination())
                        }
                        ColdQuestion::Revert => format!(" Revert {name} to {}? ", cold.source()),
                    },
                    _ => format!(" {name} "),
                }
            }
            Listed::Nova(nova) => nova_prompt_title(self, nova),
        }
    }

    /// The body for the migration it asks about, one paragraph per entry.
    pub fn text_for(&self, migration: Listed) -> Vec<String> {
        match (self, migration) {
            (_, Listed::Live(live)) => self.text(live),
            (OperatorPrompt::Cold { question, .. }, Listed::Cold(cold)) => {
                cold_text(*question, cold)
            }
            (_, Listed::Cold(_)) => Vec::new(),
            (OperatorPrompt::Nova { question, .. }, Listed::Nova(nova)) => {
                nova_prompt_text(*question, nova)
            }
            (_, Listed::Nova(_)) => Vec::new(),
        }
    }

    pub fn title(&self, migration: &TrackedMigration) -> String {
        let name = format!("#{} {}", migration.id, migration.instance_name());
        match self {
            OperatorPrompt::ConfirmAbort { .. } if migration.is_queued() => {
                format!(" Remove {name} from the queue? ")
            }
            OperatorPrompt::ConfirmAbort { .. } => format!(" Abort {name}? "),
            OperatorPrompt::ConfirmRecover { .. } => {
                format!(" Resume the broken post-copy of {name}? ")
            }
            OperatorPrompt::ConfirmForceComplete { .. } => format!(" Force-complete {name}? "),
            OperatorPrompt::Bandwidth { .. } => format!(" Bandwidth of {name} "),
            OperatorPrompt::MaxDowntime { .. } => format!(" Max downtime of {name} "),
            OperatorPrompt::Cold { .. } | OperatorPrompt::Nova { .. } => format!(" {name} "),
        }
    }

    /// The body, one paragraph per entry (the view wraps them).
    pub fn text(&self, migration: &TrackedMigration) -> Vec<String> {
        let (source, destination) = (migration.source(), migration.destination());
        let route = format!("{} {source} → {destination}", migration.instance_name());
        match self {
            OperatorPrompt::ConfirmAbort { .. } if migration.is_queued() => vec![
                format!("Remove the live migration of {route} from the queue."),
                format!("It has not started: nothing was copied, and the guest stays on {source}."),
            ],
            OperatorPrompt::ConfirmAbort { .. } => vec![
                format!("Abort the live migration of {route}."),
                format!(
                    "The guest keeps running on {source}; what was copied to {destination} is discarded."
                ),
            ],
            OperatorPrompt::ConfirmRecover { .. } => vec![
                format!(
                    "Resume the post-copy of {route} now: {destination} fetches the memory it \
                     still lacks from {source} again."
                ),
                format!(
                    "Both copies are kept until it ends; neither is destroyed. {source}'s QEMU \
                     reconnects to {destination}'s listener (libvirt's own resume crashed the \
                     destination's libvirtd on libvirt 11.3)."
                ),
            ],
            OperatorPrompt::ConfirmForceComplete {
                switches_to_post_copy: true,
                ..
            } => vec![
                format!("Switch {route} to post-copy now."),
                format!(
                    "The guest starts running on {destination} at once and pulls its remaining \
                     memory from {source}."
                ),
                format!(
                    "Post-copy cannot be aborted, and if the network between {source} and \
                     {destination} fails before it ends, the VM is lost."
                ),
            ],
            OperatorPrompt::ConfirmForceComplete {
                switches_to_post_copy: false,
                ..
            } => vec![
                format!("Pause the VM on {source} so its memory stops changing and the copy of {route} can finish."),
                "The VM stays paused until the migration ends (that pause is downtime), then \
                 resumes wherever it ends."
                    .to_string(),
                "No post-copy: this migration was not started with post-copy permitted.".to_string(),
            ],
            OperatorPrompt::Bandwidth { typed, .. } => vec![
                format!(
                    "New limit in MiB/s (launched with {}):",
                    migration
                        .plan
                        .bandwidth_mib_per_second
                        .map_or("no limit".to_string(), |mib| format!("{mib} MiB/s"))
                ),
                format!("{typed}▏"),
            ],
            OperatorPrompt::MaxDowntime { typed, .. } => vec![
                format!(
                    "New max downtime in ms (policy rung in force: {}). The {} policy sets its \
                     next rung over it if it climbs again:",
                    migration
                        .downtime_rung()
                        .map_or("none yet".to_string(), |r| format!("{} ms", r.max_downtime_ms)),
                    migration.policy_name
                ),
                format!("{typed}▏"),
            ],
            OperatorPrompt::Cold { .. } | OperatorPrompt::Nova { .. } => Vec::new(),
        }
    }

    /// The keys line under the text: the key table's actions, with what each does here.
    pub fn keys(&self) -> &'static [(&'static [KeyAction], &'static str)] {
        const NO: (&[KeyAction], &str) = (&[KeyAction::No, KeyAction::Cancel], "no");
        match self {
            OperatorPrompt::ConfirmAbort { .. } => &[(&[KeyAction::Yes], "yes, abort"), NO],
            OperatorPrompt::ConfirmRecover { .. } => &[(&[KeyAction::Yes], "yes, resume"), NO],
            OperatorPrompt::ConfirmForceComplete { .. } => {
                &[(&[KeyAction::Yes], "yes, force-complete"), NO]
            }
            OperatorPrompt::Cold { question, .. } => match question {
                ColdQuestion::Abort => &[(&[KeyAction::Yes], "yes, abort"), NO],
                ColdQuestion::Confirm => &[(&[KeyAction::Yes], "yes, remove the source copy"), NO],
                ColdQuestion::Revert => &[(&[KeyAction::Yes], "yes, revert"), NO],
            },
            OperatorPrompt::Nova { question, .. } => match question {
                NovaQuestion::Abort => &[(&[KeyAction::Yes], "yes, ask Nova to abort"), NO],
                NovaQuestion::ForceComplete => {
                    &[(&[KeyAction::Yes], "yes, ask Nova to force-complete"), NO]
                }
                NovaQuestion::Confirm => &[(&[KeyAction::Yes], "yes, ask Nova to confirm"), NO],
                NovaQuestion::Revert => &[(&[KeyAction::Yes], "yes, ask Nova to revert"), NO],
            },
            _ => &[
                (&[], "digits"),
                (&[KeyAction::Send], "send"),
                (&[KeyAction::Cancel], "cancel"),
            ],
        }
    }

    /// One key: `action` is what the key table makes of it on the prompt screen, `code` the
    /// key itself for the number field.
    pub fn handle_key(&mut self, action: Option<KeyAction>, code: KeyCode) -> PromptOutcome {
        match self {
            OperatorPrompt::Cold { question, .. } => match action {
                Some(KeyAction::Yes) => PromptOutcome::ColdYes(*question),
                Some(KeyAction::No | KeyAction::Cancel) => PromptOutcome::Cancelled,
                _ => PromptOutcome::Unchanged,
            },
            OperatorPrompt::Nova { question, .. } => match action {
                Some(KeyAction::Yes) => PromptOutcome::NovaYes(*question),
                Some(KeyAction::No | KeyAction::Cancel) => PromptOutcome::Cancelled,
                _ => PromptOutcome::Unchanged,
            },
            OperatorPrompt::ConfirmAbort { .. }
            | OperatorPrompt::ConfirmForceComplete { .. }
            | OperatorPrompt::ConfirmRecover { .. } => match action {
                Some(KeyAction::Yes) => PromptOutcome::Send(match self {
                    OperatorPrompt::ConfirmAbort { .. } => OperatorCommand::Abort,
                    OperatorPrompt::ConfirmRecover { .. } => OperatorCommand::RecoverPostCopy,
                    _ => OperatorCommand::ForceComplete,
                }),
                Some(KeyAction::No | KeyAction::Cancel) => PromptOutcome::Cancelled,
                _ => PromptOutcome::Unchanged,
            },
            OperatorPrompt::Bandwidth { typed, .. } => {
                edit_number(typed, action, code, NumberKind::Bandwidth)
            }
            OperatorPrompt::MaxDowntime { typed, .. } => {
                edit_number(typed, action, code, NumberKind::MaxDowntime)
            }
        }
    }
}

/// What answering yes does, in words: the copies each host keeps or loses.
fn cold_text(question: ColdQuestion, migration: &TrackedCold) -> Vec<String> {
    let (source, destination) = (migration.source(), migration.destination());
    let name = migration.instance_name();
    let copied: Vec<&str> = migration
        .plan
        .copied_disks()
        .map(|(disk, _)| disk.target.as_str())
        .collect();
    let copied = if copied.is_empty() {
        "no disk was copied (all on shared storage)".to_string()
    } else {
        format!("the copied disks ({})", copied.join(", "))
    };
    let running_again = if migration.plan.instance_was_running {
        format!("{name} is started on {source} again")
    } else {
        format!("{name} stays shut off on {source}, as it was")
    };
    if let Some(resize) = migration.plan.resizes_in_place() {
        let (old, new) = (size_words(resize.from), size_words(resize.to));
        return match question {
            ColdQuestion::Abort => vec![
                format!("Abort the resize of {name} in place on {source}."),
                format!(
                    "Its old definition ({old}) is defined again if the new one was written, \
                     and {running_again}. Its disks are never touched."
                ),
            ],
            ColdQuestion::Confirm => vec![
                format!(
                    "Keep {name} at {new} on {source}: its old definition ({old}) is forgotten."
                ),
                "Nothing is removed. After this there is no revert.".to_string(),
            ],
            ColdQuestion::Revert => vec![
                format!(
                    "Go back to {old}: {name} is stopped hard on {source}, its old definition \
                     defined again, and {running_again}."
                ),
                format!(
                    "Its disks stay as they are: what {name} wrote since it started at {new} is \
                     kept."
                ),
            ],
        };
    }
    match question {
        ColdQuestion::Abort => vec![
            format!("Abort the cold migration of {name} {source} → {destination}."),
            format!(
                "What was copied to {destination} is deleted and {running_again}. Nothing on \
                 {source} was changed but the guest's power."
            ),
        ],
        ColdQuestion::Confirm => vec![
            format!(
                "Keep {name} on {destination}: remove its source copy on {source}, that is the \
                 inactive definition and {copied}."
            ),
            format!(
                "The copies on {destination} were verified by checksum. After this there is no \
                 revert: {source} keeps nothing of {name}."
            ),
        ],
        ColdQuestion::Revert => vec![
            format!(
                "Go back to {source}: {name} is stopped and removed on {destination} with the \
                 disks the migration created there, and {running_again}."
            ),
            format!(
                "Whatever {name} wrote to its disks since it started on {destination} is lost: \
                 {source} has the disks as they were at the shutdown."
            ),
        ],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberKind {
    Bandwidth,
    MaxDowntime,
}

/// Digits only, checked as they are typed (the one [`NumberField`]); Enter sends a number
/// above 0. Anything libvirt still refuses (a value out of QEMU's range) comes back as the
/// engine's refusal.
fn edit_number(
    typed: &mut NumberField,
    action: Option<KeyAction>,
    code: KeyCode,
    kind: NumberKind,
) -> PromptOutcome {
    let (unit, example) = match kind {
        NumberKind::Bandwidth => ("MiB/s", "100"),
        NumberKind::MaxDowntime => ("ms", "1000"),
    };
    let typed_key = match action {
        Some(KeyAction::Send | KeyAction::Cancel) => NumberEdit::NotForTheField,
        _ => typed.edit(code),
    };
    match typed_key {
        NumberEdit::Changed => return PromptOutcome::Changed,
        NumberEdit::Unchanged => return PromptOutcome::Unchanged,
        NumberEdit::TooManyDigits => {
            return PromptOutcome::Flash(format!("at most {MAX_DIGITS} digits of {unit}"))
        }
        NumberEdit::NotADigit(c) => {
            return PromptOutcome::Flash(format!(
                "{c:?} is not a digit: type a whole number of {unit}"
            ))
        }
        NumberEdit::NotForTheField => {}
    }
    match action {
        Some(KeyAction::Cancel) => PromptOutcome::Cancelled,
        Some(KeyAction::Send) => {
            let Some(value) = typed.value() else {
                return PromptOutcome::Flash(format!(
                    "type a whole number of {unit} first, e.g. {example}"
                ));
            };
            if value == 0 {
                return PromptOutcome::Flash(format!(
                    "0 {unit} would keep the migration from ever finishing; type at least 1"
                ));
            }
            PromptOutcome::Send(match kind {
                NumberKind::Bandwidth => OperatorCommand::SetBandwidth {
                    mib_per_second: value,
                },
                NumberKind::MaxDowntime => OperatorCommand::SetMaxDowntime { downtime_ms: value },
            })
        }
        _ => PromptOutcome::Unchanged,
    }
}
