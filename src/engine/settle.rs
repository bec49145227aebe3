//! How a live migration ended, decided only from what both hosts answered (pure).
//!
//! The rule of the house: a host that does not answer is unknown, never absent. So silence
//! never yields a verdict, a rollback or a removal; it yields "wait, ask again". A job still
//! running on either host means the migration is not over, whatever the migrate call said
//! (its connection may have dropped while libvirt carried on).

use serde::Serialize;

use crate::model::standing::{HostAnswer, RunningJob};

/// What the outcome check concludes from one reading of both hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "settlement")]
pub enum Settlement {
    /// A host did not answer (or is still finishing its side): ask again later. `waiting_for`
    /// names what is awaited, in the operator's words.
    Unsettled { waiting_for: String },
    /// The source still runs the outgoing job: go on watching it.
    StillMigrating,
    /// The post-copy stream broke: the destination runs the guest without all its memory, the
    /// source holds the rest in a paused copy. Neither may be destroyed; it can be resumed.
    PostCopyBroken,
    /// Runs on the destination alone; `source_kept_definition` when the source still holds an
    /// inactive definition (UNDEFINE_SOURCE not carried out because its caller died).
    Moved { source_kept_definition: bool },
    /// Still runs on the source: the migration did not move it. Copies on the destination may be
    /// removed, but only those this attempt made.
    StayedOnSource,
    /// Both answered and what they hold contradicts every ending (both active after post-copy
    /// began, or neither runs it): nothing is touched; the operator decides.
    Contradiction { detail: String },
}

/// Judges one reading. `post_copy_started`: this migration switched to post-copy, after which
/// the source's copy is no longer a guest to fall back to.
pub fn settle(
    source_name: &str,
    source: &HostAnswer,
    destination_name: &str,
    destination: &HostAnswer,
    post_copy_started: bool,
) -> Settlement {
    let post_copy_failed =
        |answer: &HostAnswer| answer.standing().is_some_and(|s| s.post_copy_failed);
    // Either host saying "post-copy failed" is an answer about the whole migration, even if the
    // other is silent: nothing may be rolled back, and recovery needs both.
    // A source that answered with no running copy has handed everything over (its QEMU ended
    // "migrated"); a destination still saying "post-copy failed" then only lags behind.
    let source_gave_up_its_copy = source.holds_no_active_copy();
    if (post_copy_failed(source) || post_copy_failed(destination)) && !source_gave_up_its_copy {
        // Seen on the lab: a break a quarter second after the switch left the source's QEMU
        // "failed" (not paused for recovery) and running its own vCPUs again, while the
        // destination had run too. Two copies have run: nothing may be resumed or removed.
        if source.standing().is_some_and(|s| s.active && !s.paused) {
            return Settlement::Contradiction {
                detail: format!(
                    "split: {source_name} runs it again after its post-copy failed, while \
                     {destination_name} {}; both copies have run, so neither is resumed or \
                     removed: keep the one whose writes matter and destroy the other",
                    destination.describe()
                ),
            };
        }
        return Settlement::PostCopyBroken;
    }
    let silent: Vec<&str> = [(source_name, source), (destination_name, destination)]
        .into_iter()
        .filter(|(_, answer)| answer.is_silent())
        .map(|(name, _)| name)
        .collect();
    if !silent.is_empty() {
        return Settlement::Unsettled {
            waiting_for: format!("{} to answer", silent.join(" and ")),
        };
    }
    let source_job = source.standing().and_then(|s| s.job);
    let destination_job = destination.standing().and_then(|s| s.job);
    if source_job == Some(RunningJob::MigrationOut) {
        return Settlement::StillMigrating;
    }
    if destination_job == Some(RunningJob::MigrationIn) {
        return Settlement::Unsettled {
            waiting_for: format!("{destination_name} to finish its side of the migration"),
        };
    }
    if destination.is_active() && source.holds_no_active_copy() {
        return Settlement::Moved {
            source_kept_definition: source.standing().is_some(),
        };
    }
    if source.is_active() && !post_copy_started {
        return Settlement::StayedOnSource;
    }
    Settlement::Contradiction {
        detail: format!(
            "{source_name} {}, {destination_name} {}{}",
            source.describe(),
            destination.describe(),
            if post_copy_started {
                " after post-copy began"
            } else {
                ""
            }
        ),
    }
}

/// Whether a copy found on the destination may be removed by this attempt's rollback: only
/// when this attempt is proven to have made it. The destination had no such domain before the
/// launch, the launch was not refused for a job already running, and the source reported a job
/// that started after this launch (ours, not another migration's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ownership {
    /// None: the destination could not be asked before the launch.
    pub destination_held_it_before: Option<bool>,
    pub launch_refused_for_another_job: bool,
    pub saw_this_attempts_job: bool,
}

impl Ownership {
    pub fn owns_destination_copy(&self) -> bool {
        self.destination_held_it_before == Some(false)
            && !self.launch_refused_for_another_job
            && self.saw_this_attempts_job
    }

    /// Why a destination copy is left alone, for the operator.
    pub fn why_not_ours(&self) -> &'static str {
        match self.destination_held_it_before {
            Some(true) => "it was there before this attempt began",
            None => "the destination could not be asked before the launch",
            Some(false) if self.launch_refused_for_another_job => {
                "libvirt refused this launch because another migration job runs on the guest"
            }
            Some(false) => "this attempt's job was never seen on the source",
        }
    }
}

/// Seconds to wait before the `attempt`-th retry (0-based): 1, 2, 4, 8, then 10 s.
pub fn backoff_seconds(attempt: u32) -> u64 {
    1u64.checked_shl(attempt).unwrap_or(u64::MAX).min(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::standing::DomainStanding;

    fn running() -> HostAnswer {
        HostAnswer::Holds(DomainStanding {
            active: true,
            persistent: true,
            ..DomainStanding::default()
        })
    }

    fn with_job(job: RunningJob) -> HostAnswer {
        HostAnswer::Holds(DomainStanding {
            active: true,
            job: Some(job),
            ..DomainStanding::default()
        })
    }

    fn shut_off() -> HostAnswer {
        HostAnswer::Holds(DomainStanding {
            persistent: true,
            ..DomainStanding::default()
        })
    }

    fn silent() -> HostAnswer {
        HostAnswer::Silent {
            why: "qemu+ssh://root@hv3/system: reading where busy stands: no answer within 10s"
                .into(),
        }
    }

    fn judge(source: HostAnswer, destination: HostAnswer, post_copy: bool) -> Settlement {
        settle("hv2", &source, "hv3", &destination, post_copy)
    }

    #[test]
    fn silence_is_never_absence() {
        // Seen on the lab: hv3's link down during post-copy; the old check read "split".
        assert_eq!(
            judge(HostAnswer::Absent, silent(), true),
            Settlement::Unsettled {
                waiting_for: "hv3 to answer".into()
            }
        );
        // Seen on the lab: ferry's ssh clients to hv3 (source) killed; the old check read
        // "the source holds no running copy".
        assert_eq!(
            judge(silent(), running(), false),
            Settlement::Unsettled {
                waiting_for: "hv2 to answer".into()
            }
        );
        assert_eq!(
            judge(silent(), silent(), false),
            Settlement::Unsettled {
                waiting_for: "hv2 and hv3 to answer".into()
            }
        );
        assert_eq!(
            judge(running(), silent(), false),
            Settlement::Unsettled {
                waiting_for: "hv3 to answer".into()
            }
        );
    }

    #[test]
    fn a_job_still_running_means_the_migration_is_not_over() {
        assert_eq!(
            judge(with_job(RunningJob::MigrationOut), running(), false),
            Settlement::StillMigrating
        );
        assert_eq!(
            judge(running(), with_job(RunningJob::MigrationIn), false),
            Settlement::Unsettled {
                waiting_for: "hv3 to finish its side of the migration".into()
            }
        );
    }

    #[test]
    fn post_copy_failed_on_either_host_is_broken_post_copy_even_with_the_other_silent() {
        let source = HostAnswer::Holds(DomainStanding {
            active: true,
            paused: true,
            post_copy_failed: true,
            ..DomainStanding::default()
        });
        let destination = HostAnswer::Holds(DomainStanding {
            active: true,
            post_copy_failed: true,
            ..DomainStanding::default()
        });
        assert_eq!(
            judge(source.clone(), destination.clone(), true),
            Settlement::PostCopyBroken
        );
        assert_eq!(
            judge(silent(), destination, true),
            Settlement::PostCopyBroken
        );
        assert_eq!(judge(source, silent(), true), Settlement::PostCopyBroken);
    }

    #[test]
    fn a_source_running_again_after_a_post_copy_failure_is_a_split_never_resumed() {
        let source = HostAnswer::Holds(DomainStanding {
            active: true,
            paused_for_post_copy: false,
            ..DomainStanding::default()
        });
        let destination = HostAnswer::Holds(DomainStanding {
            active: true,
            post_copy_failed: true,
            ..DomainStanding::default()
        });
        match judge(source, destination, true) {
            Settlement::Contradiction { detail } => {
                assert!(detail.starts_with("split: hv2 runs it again"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_destination_lagging_in_post_copy_failed_after_the_source_handed_over_has_moved() {
        let destination = HostAnswer::Holds(DomainStanding {
            active: true,
            post_copy_failed: true,
            ..DomainStanding::default()
        });
        assert_eq!(
            judge(shut_off(), destination.clone(), true),
            Settlement::Moved {
                source_kept_definition: true
            }
        );
        assert_eq!(
            judge(HostAnswer::Absent, destination, true),
            Settlement::Moved {
                source_kept_definition: false
            }
        );
    }

    #[test]
    fn moved_stayed_and_contradictions() {
        assert_eq!(
            judge(HostAnswer::Absent, running(), true),
            Settlement::Moved {
                source_kept_definition: false
            }
        );
        assert_eq!(
            judge(shut_off(), running(), false),
            Settlement::Moved {
                source_kept_definition: true
            }
        );
        assert_eq!(
            judge(running(), HostAnswer::Absent, false),
            Settlement::StayedOnSource
        );
        assert_eq!(
            judge(running(), shut_off(), false),
            Settlement::StayedOnSource
        );
        assert_eq!(
            judge(running(), running(), false),
            Settlement::StayedOnSource
        );
        assert_eq!(
            judge(running(), running(), true),
            Settlement::Contradiction {
                detail: "hv2 runs it, hv3 runs it after post-copy began".into()
            }
        );
        assert_eq!(
            judge(HostAnswer::Absent, HostAnswer::Absent, false),
            Settlement::Contradiction {
                detail: "hv2 does not have it, hv3 does not have it".into()
            }
        );
    }

    #[test]
    fn only_a_copy_this_attempt_made_is_ours_to_remove() {
        let ours = Ownership {
            destination_held_it_before: Some(false),
            launch_refused_for_another_job: false,
            saw_this_attempts_job: true,
        };
        assert!(ours.owns_destination_copy());
        // Seen on the lab: a second launch, refused because a first migration ran, removed the
        // first one's incoming domain on the destination.
        let second_launch = Ownership {
            destination_held_it_before: Some(true),
            launch_refused_for_another_job: true,
            saw_this_attempts_job: true,
        };
        assert!(!second_launch.owns_destination_copy());
        assert_eq!(
            second_launch.why_not_ours(),
            "it was there before this attempt began"
        );
        let refused = Ownership {
            launch_refused_for_another_job: true,
            ..ours
        };
        assert!(!refused.owns_destination_copy());
        let never_seen = Ownership {
            saw_this_attempts_job: false,
            ..ours
        };
        assert!(!never_seen.owns_destination_copy());
        let unasked = Ownership {
            destination_held_it_before: None,
            ..ours
        };
        assert!(!unasked.owns_destination_copy());
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let waits: Vec<u64> = (0..6).map(backoff_seconds).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff_seconds(200), 10);
    }
}
