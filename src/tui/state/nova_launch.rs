//! The launch dialog of a Nova server (`m` live, `c` cold on a Nova row): the cloud's other
//! compute hosts with ferry's pre-flight verdict for each, an `auto` entry (Nova's scheduler
//! chooses), and the move: live, cold, or a resize to another flavor. The verdicts come from
//! the engine on fresh facts (`App::on_nova_verdicts`); confirming yields an [`Action`]. Nova
//! still runs its own prechecks after it accepts: the row says what Nova answered.

use crate::engine::service::nova::{NovaMoveKind, NovaRequest, NovaServerRef, NovaVerdicts};
use crate::inventory::Instance;
use crate::tui::action::Action;
use crate::tui::keys::KeyAction;

/// The three moves, in the order `←`/`→` steps through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NovaMoveChoice {
    Live,
    Cold,
    Resize,
}

impl NovaMoveChoice {
    pub fn name(self) -> &'static str {
        match self {
            NovaMoveChoice::Live => "live migration",
            NovaMoveChoice::Cold => "cold migration",
            NovaMoveChoice::Resize => "resize (cold, to another flavor)",
        }
    }

    fn step(self, forward: bool) -> NovaMoveChoice {
        use NovaMoveChoice::*;
        match (self, forward) {
            (Live, true) | (Resize, false) => Cold,
            (Cold, true) | (Live, false) => Resize,
            (Resize, true) | (Cold, false) => Live,
        }
    }
}

/// Which part of the dialog the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NovaFocus {
    Destinations,
    /// Row 0: the move; row 1: the flavor (resize only).
    Options {
        row: usize,
    },
}

/// What a key did to the dialog.
#[derive(Debug, Clone, PartialEq)]
pub enum NovaDialogOutcome {
    Unchanged,
    Changed,
    Flash(String),
    Close,
    /// The move or the flavor changed: the verdicts are stale, ask again.
    RecheckNeeded,
    Confirmed(Box<Action>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NovaLaunchDialog {
    pub server: NovaServerRef,
    /// The server's compute host.
    pub source: String,
    pub flavor_now: Option<String>,
    pub choice: NovaMoveChoice,
    /// Resize: the flavor chosen among the verdicts' flavors (index into them).
    pub flavor_index: usize,
    pub focus: NovaFocus,
    /// 0 is `auto`; 1.. index the verdicts' hosts.
    pub cursor: usize,
    pub request_id: u64,
    /// None while the engine reads the cloud.
    pub verdicts: Option<Result<NovaVerdicts, String>>,
    /// The cloud's flavors as last read (name, MiB, vCPUs): kept while a new question is out,
    /// so the flavor chosen stays the one asked about.
    pub flavors: Vec<(String, u64, u32)>,
}

impl NovaLaunchDialog {
    /// The dialog for a Nova server row; `cold`: opened with `c`.
    pub fn open(
        cloud: &str,
        instance: &Instance,
        cold: bool,
        request_id: u64,
    ) -> Option<NovaLaunchDialog> {
        let facts = instance.nova_server.as_ref()?;
        Some(NovaLaunchDialog {
            server: NovaServerRef {
                cloud: cloud.to_string(),
                server_id: facts.server_id.clone(),
                server_name: instance.name.clone(),
            },
            source: facts
                .hypervisor_hostname
                .clone()
                .unwrap_or_else(|| instance.host.to_string()),
            flavor_now: facts.flavor.name.clone(),
            choice: if cold {
                NovaMoveChoice::Cold
            } else {
                NovaMoveChoice::Live
            },
            flavor_index: 0,
            focus: NovaFocus::Destinations,
            cursor: 0,
            request_id,
            verdicts: None,
            flavors: Vec::new(),
        })
    }

    /// The flavors a resize may go to: every flavor but the server's own.
    pub fn resize_flavors(&self) -> Vec<&(String, u64, u32)> {
        self.flavors
            .iter()
            .filter(|(name, _, _)| Some(name) != self.flavor_now.as_ref())
            .collect()
    }

    pub fn chosen_flavor(&self) -> Option<String> {
        let flavors = self.resize_flavors();
        flavors
            .get(self.flavor_index.min(flavors.len().saturating_sub(1)))
            .map(|(name, _, _)| name.clone())
    }

    fn kind(&self) -> Option<NovaMoveKind> {
        Some(match self.choice {
            NovaMoveChoice::Live => NovaMoveKind::Live,
            NovaMoveChoice::Cold => NovaMoveKind::Cold,
            // Until the flavors are known the check is of the server's own size.
            NovaMoveChoice::Resize => NovaMoveKind::Resize {
                flavor: self
                    .chosen_flavor()
                    .or_else(|| self.flavor_now.clone())
                    .unwrap_or_default(),
            },
        })
    }

    pub fn preflight_request(&self) -> Action {
        Action::Nova(NovaRequest::Preflight {
            request_id: self.request_id,
            server: self.server.clone(),
            kind: self.kind().expect("a move is always chosen"),
        })
    }

    /// Takes the engine's answer, if it answers this dialog's latest question.
    pub fn on_verdicts(&mut self, request_id: u64, verdicts: Result<NovaVerdicts, String>) -> bool {
        if request_id != self.request_id {
            return false;
        }
        if let Ok(verdicts) = &verdicts {
            self.flavors = verdicts.flavors.clone();
        }
        self.verdicts = Some(verdicts);
        self.cursor = self.cursor.min(self.hosts().len());
        true
    }

    pub fn restart(&mut self, request_id: u64) {
        self.request_id = request_id;
        self.verdicts = None;
    }

    /// The cloud's other compute hosts with why each cannot take the server.
    pub fn hosts(&self) -> &[(String, Option<String>)] {
        match &self.verdicts {
            Some(Ok(verdicts)) => &verdicts.hosts,
            _ => &[],
        }
    }

    /// The highlighted destination: None is `auto`.
    pub fn destination(&self) -> Option<&str> {
        self.cursor
            .checked_sub(1)
            .and_then(|index| self.hosts().get(index))
            .map(|(host, _)| host.as_str())
    }

    /// Why Enter would not launch now; None when it would.
    pub fn refusal(&self) -> Option<String> {
        let verdicts = match &self.verdicts {
            None => return Some("still reading the cloud: wait for the verdicts".to_string()),
            Some(Err(error)) => return Some(format!("cannot check: {error}")),
            Some(Ok(verdicts)) => verdicts,
        };
        if let Some(refusal) = &verdicts.server_refusal {
            return Some(refusal.clone());
        }
        if self.choice == NovaMoveChoice::Resize && self.chosen_flavor().is_none() {
            return Some("the cloud has no other flavor to resize to".to_string());
        }
        match self.destination() {
            None => verdicts.scheduler.clone().err(),
            Some(host) => self
                .hosts()
                .iter()
                .find(|(name, _)| name == host)
                .and_then(|(_, refusal)| refusal.clone())
                .map(|refusal| format!("{host}: {refusal}")),
        }
    }

    /// One line of what Enter would ask of Nova.
    pub fn summary(&self) -> String {
        let to = self
            .destination()
            .map_or("where Nova's scheduler chooses".to_string(), |host| {
                format!("to {host}")
            });
        match self.choice {
            NovaMoveChoice::Resize => format!(
                "resize {} to {} ({to}), through cloud {}",
                self.server.server_name,
                self.chosen_flavor().unwrap_or_default(),
                self.server.cloud
            ),
            choice => format!(
                "{} of {} from {} {to}, through cloud {}",
                choice.name(),
                self.server.server_name,
                self.source,
                self.server.cloud
            ),
        }
    }

    pub fn handle_key(&mut self, action: Option<KeyAction>) -> NovaDialogOutcome {
        let Some(action) = action else {
            return NovaDialogOutcome::Unchanged;
        };
        match (action, self.focus) {
            (KeyAction::Close, _) => NovaDialogOutcome::Close,
            (KeyAction::SwitchFocus, NovaFocus::Destinations) => {
                self.focus = NovaFocus::Options { row: 0 };
                NovaDialogOutcome::Changed
            }
            (KeyAction::SwitchFocus, NovaFocus::Options { .. }) => {
                self.focus = NovaFocus::Destinations;
                NovaDialogOutcome::Changed
            }
            (KeyAction::MoveDown | KeyAction::MoveUp, NovaFocus::Destinations) => {
                let last = self.hosts().len();
                let moved = if action == KeyAction::MoveDown {
                    (self.cursor + 1).min(last)
                } else {
                    self.cursor.saturating_sub(1)
                };
                if moved == self.cursor {
                    return NovaDialogOutcome::Unchanged;
                }
                self.cursor = moved;
                NovaDialogOutcome::Changed
            }
            (KeyAction::MoveDown | KeyAction::MoveUp, NovaFocus::Options { row }) => {
                let rows = if self.choice == NovaMoveChoice::Resize {
                    2
                } else {
                    1
                };
                let moved = if action == KeyAction::MoveDown {
                    (row + 1).min(rows - 1)
                } else {
                    row.saturating_sub(1)
                };
                self.focus = NovaFocus::Options { row: moved };
                NovaDialogOutcome::Changed
            }
            (KeyAction::NextValue | KeyAction::PreviousValue, NovaFocus::Options { row }) => {
                let forward = action == KeyAction::NextValue;
                if row == 0 {
                    self.choice = self.choice.step(forward);
                    // A resize goes where the scheduler puts it: Nova's resize takes no host.
                    if self.choice == NovaMoveChoice::Resize {
                        self.cursor = 0;
                    }
                } else {
                    let count = self.resize_flavors().len().max(1);
                    self.flavor_index = if forward {
                        (self.flavor_index + 1) % count
                    } else {
                        (self.flavor_index + count - 1) % count
                    };
                }
                NovaDialogOutcome::RecheckNeeded
            }
            (KeyAction::Launch, _) => {
                if let Some(reason) = self.refusal() {
                    return NovaDialogOutcome::Flash(format!("not launched: {reason}"));
                }
                let kind = self.kind().expect("a move is always chosen");
                NovaDialogOutcome::Confirmed(Box::new(Action::Nova(NovaRequest::Launch {
                    server: self.server.clone(),
                    kind,
                    destination: self.destination().map(str::to_string),
                })))
            }
            _ => NovaDialogOutcome::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> NovaLaunchDialog {
        NovaLaunchDialog {
            server: NovaServerRef {
                cloud: "lab".into(),
                server_id: "a1".into(),
                server_name: "web".into(),
            },
            source: "hv1".into(),
            flavor_now: Some("ferry.small".into()),
            choice: NovaMoveChoice::Live,
            flavor_index: 0,
            focus: NovaFocus::Destinations,
            cursor: 0,
            request_id: 1,
            verdicts: None,
            flavors: Vec::new(),
        }
    }

    /// As the lab's cloud answered with hv3's compute service disabled.
    fn verdicts() -> NovaVerdicts {
        NovaVerdicts {
            server_refusal: None,
            hosts: vec![
                ("hv2".into(), None),
                (
                    "hv3".into(),
                    Some("hv3: its compute service is disabled (maintenance)".into()),
                ),
            ],
            scheduler: Ok(()),
            flavors: vec![
                ("ferry.small".into(), 256, 1),
                ("ferry.medium".into(), 512, 1),
                ("ferry.large".into(), 768, 2),
            ],
        }
    }

    #[test]
    fn nothing_launches_before_the_verdicts_or_to_a_refused_host() {
        let mut dialog = dialog();
        assert!(matches!(
            dialog.handle_key(Some(KeyAction::Launch)),
            NovaDialogOutcome::Flash(reason) if reason.contains("still reading")
        ));
        // An answer to an older question is dropped.
        assert!(!dialog.on_verdicts(0, Ok(verdicts())));
        assert!(dialog.on_verdicts(1, Ok(verdicts())));
        dialog.handle_key(Some(KeyAction::MoveDown));
        dialog.handle_key(Some(KeyAction::MoveDown));
        assert_eq!(dialog.destination(), Some("hv3"));
        assert!(matches!(
            dialog.handle_key(Some(KeyAction::Launch)),
            NovaDialogOutcome::Flash(reason) if reason.contains("disabled")
        ));
        dialog.handle_key(Some(KeyAction::MoveUp));
        let NovaDialogOutcome::Confirmed(action) = dialog.handle_key(Some(KeyAction::Launch))
        else {
            panic!("hv2 passed");
        };
        assert_eq!(
            *action,
            Action::Nova(NovaRequest::Launch {
                server: dialog.server.clone(),
                kind: NovaMoveKind::Live,
                destination: Some("hv2".into()),
            })
        );
    }

    #[test]
    fn a_server_nova_would_refuse_is_refused_with_its_reason() {
        let mut dialog = dialog();
        dialog.on_verdicts(
            1,
            Ok(NovaVerdicts {
                server_refusal: Some(
                    "server web is SHUTOFF: Nova live-migrates only ACTIVE or PAUSED servers"
                        .into(),
                ),
                ..verdicts()
            }),
        );
        assert!(matches!(
            dialog.handle_key(Some(KeyAction::Launch)),
            NovaDialogOutcome::Flash(reason) if reason.contains("SHUTOFF")
        ));
    }

    #[test]
    fn a_resize_picks_another_flavor_and_lets_the_scheduler_place_it() {
        let mut dialog = dialog();
        dialog.on_verdicts(1, Ok(verdicts()));
        dialog.cursor = 1;
        dialog.handle_key(Some(KeyAction::SwitchFocus));
        // live → cold → resize
        assert_eq!(
            dialog.handle_key(Some(KeyAction::NextValue)),
            NovaDialogOutcome::RecheckNeeded
        );
        dialog.handle_key(Some(KeyAction::NextValue));
        assert_eq!(dialog.choice, NovaMoveChoice::Resize);
        assert_eq!(
            dialog.cursor, 0,
            "a resize goes where the scheduler puts it"
        );
        // The server's own flavor is not offered.
        assert_eq!(dialog.chosen_flavor().as_deref(), Some("ferry.medium"));
        dialog.handle_key(Some(KeyAction::MoveDown));
        dialog.handle_key(Some(KeyAction::NextValue));
        assert_eq!(dialog.chosen_flavor().as_deref(), Some("ferry.large"));
        dialog.restart(2);
        dialog.on_verdicts(2, Ok(verdicts()));
        let NovaDialogOutcome::Confirmed(action) = dialog.handle_key(Some(KeyAction::Launch))
        else {
            panic!("the scheduler has room");
        };
        assert_eq!(
            *action,
            Action::Nova(NovaRequest::Launch {
                server: dialog.server.clone(),
                kind: NovaMoveKind::Resize {
                    flavor: "ferry.large".into()
                },
                destination: None,
            })
        );
        assert!(dialog.summary().starts_with("resize web to ferry.large"));
    }
}
