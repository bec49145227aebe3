//! Which requested migrations may start now: a pure scheduler, no I/O and no clock.
//!
//! Two limits apply. Per source host, outbound migrations default to one at a time, as Nova's
//! `max_concurrent_live_migrations` does: every migration leaving a host shares that host's
//! migration network and memory bandwidth, and two at once tend to make both miss their
//! downtime target. Globally, a cap keeps a big evacuation from saturating the whole fabric.
//!
//! Requests start in the order they were queued, except that a request that cannot start
//! (its source host is busy) never holds back a request from another host behind it.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The limits are the config's (`[migration]`); the queue only applies them.
pub use crate::config::QueueLimits;
use crate::model::units::ordinal;
use crate::model::HostName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError<R: fmt::Debug> {
    #[error("request {0:?} is already queued or running; each request is queued once")]
    AlreadyQueued(R),
    #[error("request {0:?} is not known to the queue (never queued, finished or cancelled)")]
    Unknown(R),
    #[error("request {0:?} is not running: it is still queued, so cancel it instead")]
    NotRunning(R),
    #[error("request {0:?} is already running: abort the migration itself, not its queue entry")]
    AlreadyRunning(R),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMigration<R> {
    pub request_id: R,
    pub source_host: HostName,
    pub destination_host: HostName,
}

/// Where a request stands, for "queued, 2nd behind web-1".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueuePosition<R> {
    Running,
    Queued {
        /// 1-based place among the queued requests leaving the same source host: 1 starts
        /// next once that host has a free slot.
        place_for_source_host: usize,
        /// The request it waits behind: the one queued just before it from the same source
        /// host, else the latest running one leaving that host; None when nothing is ahead.
        behind: Option<R>,
        waiting_for: WaitingFor,
    },
}

impl<R: fmt::Display> QueuePosition<R> {
    /// "running", "queued, next to start", "queued, 2nd behind web-1".
    pub fn describe(&self) -> String {
        match self {
            QueuePosition::Running => "running".to_string(),
            QueuePosition::Queued {
                place_for_source_host,
                behind,
                waiting_for,
            } => {
                let place = ordinal(*place_for_source_host);
                match (waiting_for, behind) {
                    (WaitingFor::NextStart, _) => "queued, next to start".to_string(),
                    (WaitingFor::GlobalLimit, _) => {
                        format!("queued, {place} for its host, waiting for the global limit")
                    }
                    (_, Some(behind)) => format!("queued, {place} behind {behind}"),
                    (_, None) => format!("queued, {place}"),
                }
            }
        }
    }
}

/// Why a queued request has not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitingFor {
    /// Earlier requests from the same source host go first.
    EarlierRequestsFromSourceHost,
    /// Its source host already has `per_source_host_outbound` migrations leaving it.
    SourceHostLimit,
    /// `global` migrations are already running.
    GlobalLimit,
    /// Nothing holds it back: it starts on the next `next_startable`.
    NextStart,
}

#[derive(Debug, Clone)]
pub struct MigrationQueue<R> {
    limits: QueueLimits,
    /// Waiting requests, oldest first.
    queued: Vec<QueuedMigration<R>>,
    /// Started requests, in the order they started.
    running: Vec<QueuedMigration<R>>,
}

impl<R: Clone + PartialEq + fmt::Debug> MigrationQueue<R> {
    pub fn new(limits: QueueLimits) -> MigrationQueue<R> {
        MigrationQueue {
            limits,
            queued: Vec::new(),
            running: Vec::new(),
        }
    }

    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// New limits apply from the next `next_startable`; migrations already running are not
    /// stopped when a limit is lowered below their number.
    pub fn set_limits(&mut self, limits: QueueLimits) {
        self.limits = limits;
    }

    pub fn enqueue(
        &mut self,
        request_id: R,
        source_host: HostName,
        destination_host: HostName,
    ) -> Result<(), QueueError<R>> {
        if self.is_known(&request_id) {
            return Err(QueueError::AlreadyQueued(request_id));
        }
        self.queued.push(QueuedMigration {
            request_id,
            source_host,
            destination_host,
        });
        Ok(())
    }

    /// Counts a migration that is already running (one a restarted ferry took over) against
    /// the limits without queueing it: it cannot wait, libvirt is already carrying it out.
    pub fn adopt_running(
        &mut self,
        request_id: R,
        source_host: HostName,
        destination_host: HostName,
    ) {
        if !self.is_known(&request_id) {
            self.running.push(QueuedMigration {
                request_id,
                source_host,
                destination_host,
            });
        }
    }

    /// The requests that may start now, oldest first, and marks them running: the caller
    /// starts each one and later reports it with `finished`.
    pub fn next_startable(&mut self) -> Vec<R> {
        let mut started = Vec::new();
        let mut index = 0;
        while index < self.queued.len() && self.running.len() < self.limits.global.get() {
            if self.running_from(&self.queued[index].source_host)
                < self.limits.per_source_host_outbound.get()
            {
                let request = self.queued.remove(index);
                started.push(request.request_id.clone());
                self.running.push(request);
            } else {
                // Its host is busy; look further down for another host's request.
                index += 1;
            }
        }
        started
    }

    /// A running migration ended, whatever its outcome; its slot is free for the next
    /// `next_startable`.
    pub fn finished(&mut self, request_id: &R) -> Result<QueuedMigration<R>, QueueError<R>> {
        if let Some(index) = self
            .running
            .iter()
            .position(|r| &r.request_id == request_id)
        {
            return Ok(self.running.remove(index));
        }
        if self.queued.iter().any(|r| &r.request_id == request_id) {
            return Err(QueueError::NotRunning(request_id.clone()));
        }
        Err(QueueError::Unknown(request_id.clone()))
    }

    /// Takes a request out of the queue before it started.
    pub fn cancel_queued(&mut self, request_id: &R) -> Result<QueuedMigration<R>, QueueError<R>> {
        if let Some(index) = self.queued.iter().position(|r| &r.request_id == request_id) {
            return Ok(self.queued.remove(index));
        }
        if self.running.iter().any(|r| &r.request_id == request_id) {
            return Err(QueueError::AlreadyRunning(request_id.clone()));
        }
        Err(QueueError::Unknown(request_id.clone()))
    }

    /// Where a request stands; None if the queue does not know it.
    pub fn position(&self, request_id: &R) -> Option<QueuePosition<R>> {
        if self.running.iter().any(|r| &r.request_id == request_id) {
            return Some(QueuePosition::Running);
        }
        let index = self
            .queued
            .iter()
            .position(|r| &r.request_id == request_id)?;
        let source_host = &self.queued[index].source_host;
        let ahead_from_same_host: Vec<&QueuedMigration<R>> = self.queued[..index]
            .iter()
            .filter(|r| &r.source_host == source_host)
            .collect();
        let running_from_host = self
            .running
            .iter()
            .rev()
            .find(|r| &r.source_host == source_host);
        let behind = ahead_from_same_host
            .last()
            .copied()
            .or(running_from_host)
            .map(|r| r.request_id.clone());
        let host_slots_free = self
            .limits
            .per_source_host_outbound
            .get()
            .saturating_sub(self.running_from(source_host));
        let waiting_for = if ahead_from_same_host.len() >= host_slots_free {
            if ahead_from_same_host.is_empty() {
                WaitingFor::SourceHostLimit
            } else {
                WaitingFor::EarlierRequestsFromSourceHost
            }
        } else if self.startable_ahead_of(index) + self.running.len() >= self.limits.global.get() {
            WaitingFor::GlobalLimit
        } else {
            WaitingFor::NextStart
        };
        Some(QueuePosition::Queued {
            place_for_source_host: ahead_from_same_host.len() + 1,
            behind,
            waiting_for,
        })
    }

    pub fn queued(&self) -> &[QueuedMigration<R>] {
        &self.queued
    }

    pub fn running(&self) -> &[QueuedMigration<R>] {
        &self.running
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.running.is_empty()
    }

    fn is_known(&self, request_id: &R) -> bool {
        self.queued
            .iter()
            .chain(&self.running)
            .any(|r| &r.request_id == request_id)
    }

    fn running_from(&self, source_host: &HostName) -> usize {
        self.running
            .iter()
            .filter(|r| &r.source_host == source_host)
            .count()
    }

    /// How many of the requests queued before `index` would start before it if the global
    /// limit were not in the way: what `next_startable` takes first.
    fn startable_ahead_of(&self, index: usize) -> usize {
        let mut taken_per_host: HashMap<&HostName, usize> = HashMap::new();
        let mut startable = 0;
        for request in &self.queued[..index] {
            let taken = taken_per_host.entry(&request.source_host).or_insert(0);
            if self.running_from(&request.source_host) + *taken
                < self.limits.per_source_host_outbound.get()
            {
                *taken += 1;
                startable += 1;
            }
        }
        startable
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    fn host(name: &str) -> HostName {
        HostName::parse(name).unwrap()
    }

    fn limits(per_source_host_outbound: usize, global: usize) -> QueueLimits {
        QueueLimits {
            per_source_host_outbound: NonZeroUsize::new(per_source_host_outbound).unwrap(),
            global: NonZeroUsize::new(global).unwrap(),
        }
    }

    /// A queue with requests named after their instance, each "instance:source>destination".
    fn queue_of(limits: QueueLimits, requests: &[&str]) -> MigrationQueue<String> {
        let mut queue = MigrationQueue::new(limits);
        for request in requests {
            let (name, route) = request.split_once(':').unwrap();
            let (source, destination) = route.split_once('>').unwrap();
            queue
                .enqueue(name.to_string(), host(source), host(destination))
                .unwrap();
        }
        queue
    }

    fn queued(
        place_for_source_host: usize,
        behind: Option<&str>,
        waiting_for: WaitingFor,
    ) -> Option<QueuePosition<String>> {
        Some(QueuePosition::Queued {
            place_for_source_host,
            behind: behind.map(str::to_string),
            waiting_for,
        })
    }

    #[test]
    fn defaults_follow_nova_one_outbound_per_host() {
        let defaults = QueueLimits::default();
        assert_eq!(defaults.per_source_host_outbound.get(), 1);
        assert_eq!(defaults.global.get(), 4);
    }

    #[test]
    fn one_migration_leaves_a_host_at_a_time_by_default() {
        let mut queue = queue_of(
            QueueLimits::default(),
            &["a:hv1>hv2", "b:hv1>hv3", "c:hv1>hv2"],
        );
        assert_eq!(queue.next_startable(), ["a"]);
        assert!(queue.next_startable().is_empty(), "a still runs");
        queue.finished(&"a".to_string()).unwrap();
        assert_eq!(queue.next_startable(), ["b"]);
        queue.finished(&"b".to_string()).unwrap();
        assert_eq!(queue.next_startable(), ["c"]);
        queue.finished(&"c".to_string()).unwrap();
        assert!(queue.is_empty());
    }

    #[test]
    fn a_busy_host_does_not_hold_back_other_hosts() {
        let mut queue = queue_of(
            QueueLimits::default(),
            &["a:hv1>hv2", "b:hv1>hv3", "c:hv2>hv3", "d:hv3>hv1"],
        );
        // b waits for hv1, but c and d, queued after it, leave other hosts and start now.
        assert_eq!(queue.next_startable(), ["a", "c", "d"]);
        assert_eq!(queue.queued().len(), 1);
    }

    #[test]
    fn the_global_limit_caps_all_hosts_together_in_fifo_order() {
        let mut queue = queue_of(
            limits(1, 2),
            &["a:hv1>hv9", "b:hv2>hv9", "c:hv3>hv9", "d:hv4>hv9"],
        );
        assert_eq!(queue.next_startable(), ["a", "b"]);
        assert!(queue.next_startable().is_empty());
        queue.finished(&"b".to_string()).unwrap();
        // The oldest waiting request takes the freed slot, whichever host it leaves.
        assert_eq!(queue.next_startable(), ["c"]);
        queue.finished(&"a".to_string()).unwrap();
        queue.finished(&"c".to_string()).unwrap();
        assert_eq!(queue.next_startable(), ["d"]);
    }

    #[test]
    fn a_higher_per_host_limit_lets_several_leave_one_host() {
        let mut queue = queue_of(
            limits(2, 4),
            &["a:hv1>hv2", "b:hv1>hv3", "c:hv1>hv2", "d:hv2>hv1"],
        );
        assert_eq!(queue.next_startable(), ["a", "b", "d"]);
        queue.finished(&"a".to_string()).unwrap();
        assert_eq!(queue.next_startable(), ["c"]);
    }

    #[test]
    fn the_per_host_limit_counts_only_outbound_migrations() {
        // hv2 receiving a migration does not stop a migration leaving hv2.
        let mut queue = queue_of(QueueLimits::default(), &["a:hv1>hv2", "b:hv2>hv1"]);
        assert_eq!(queue.next_startable(), ["a", "b"]);
    }

    #[test]
    fn lowering_a_limit_stops_new_starts_but_not_running_migrations() {
        let mut queue = queue_of(limits(1, 4), &["a:hv1>hv9", "b:hv2>hv9", "c:hv3>hv9"]);
        assert_eq!(queue.next_startable(), ["a", "b", "c"]);
        queue
            .enqueue("d".to_string(), host("hv4"), host("hv9"))
            .unwrap();
        queue.set_limits(limits(1, 2));
        assert!(
            queue.next_startable().is_empty(),
            "3 running ≥ new global limit 2"
        );
        assert_eq!(queue.running().len(), 3);
        queue.finished(&"a".to_string()).unwrap();
        assert!(
            queue.next_startable().is_empty(),
            "2 running = new global limit 2"
        );
        queue.finished(&"b".to_string()).unwrap();
        assert_eq!(queue.next_startable(), ["d"]);
    }

    #[test]
    fn positions_say_what_a_request_waits_for() {
        let mut queue = queue_of(
            limits(1, 2),
            &[
                "a:hv1>hv2",
                "b:hv1>hv3",
                "c:hv1>hv2",
                "d:hv2>hv3",
                "e:hv3>hv1",
            ],
        );
        assert_eq!(queue.next_startable(), ["a", "d"]);
        let position = |queue: &MigrationQueue<String>, id: &str| queue.position(&id.to_string());
        assert_eq!(position(&queue, "a"), Some(QueuePosition::Running));
        assert_eq!(
            position(&queue, "b"),
            queued(1, Some("a"), WaitingFor::SourceHostLimit)
        );
        assert_eq!(
            position(&queue, "c"),
            queued(2, Some("b"), WaitingFor::EarlierRequestsFromSourceHost)
        );
        assert_eq!(
            position(&queue, "e"),
            queued(1, None, WaitingFor::GlobalLimit)
        );
        assert_eq!(position(&queue, "zz"), None);

        queue.finished(&"d".to_string()).unwrap();
        assert_eq!(
            position(&queue, "e"),
            queued(1, None, WaitingFor::NextStart)
        );
    }

    #[test]
    fn the_global_limit_is_reported_only_once_earlier_startable_requests_are_counted() {
        // One slot free globally: b (hv2) takes it before c (hv3), so c waits for the global
        // limit while b starts next.
        let mut queue = queue_of(limits(1, 2), &["a:hv1>hv9", "b:hv2>hv9", "c:hv3>hv9"]);
        queue.set_limits(limits(1, 1));
        assert_eq!(queue.next_startable(), ["a"]);
        queue.set_limits(limits(1, 2));
        let position = |id: &str| queue.position(&id.to_string());
        assert_eq!(position("b"), queued(1, None, WaitingFor::NextStart));
        assert_eq!(position("c"), queued(1, None, WaitingFor::GlobalLimit));
    }

    #[test]
    fn positions_read_as_the_operator_sees_them() {
        let mut queue = queue_of(
            limits(1, 2),
            &[
                "web-1:hv1>hv2",
                "web-2:hv1>hv3",
                "web-3:hv1>hv2",
                "db-1:hv2>hv3",
                "db-2:hv3>hv1",
            ],
        );
        queue.next_startable();
        let describe = |id: &str| queue.position(&id.to_string()).unwrap().describe();
        assert_eq!(describe("web-1"), "running");
        assert_eq!(describe("web-2"), "queued, 1st behind web-1");
        assert_eq!(describe("web-3"), "queued, 2nd behind web-2");
        assert_eq!(
            describe("db-2"),
            "queued, 1st for its host, waiting for the global limit"
        );
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(22), "22nd");
        assert_eq!(ordinal(103), "103rd");
    }

    #[test]
    fn cancelling_a_queued_request_moves_the_ones_behind_it_up() {
        let mut queue = queue_of(
            QueueLimits::default(),
            &["a:hv1>hv2", "b:hv1>hv2", "c:hv1>hv2"],
        );
        assert_eq!(queue.next_startable(), ["a"]);
        let cancelled = queue.cancel_queued(&"b".to_string()).unwrap();
        assert_eq!(cancelled.destination_host, host("hv2"));
        assert_eq!(
            queue.position(&"c".to_string()),
            queued(1, Some("a"), WaitingFor::SourceHostLimit)
        );
        assert_eq!(queue.position(&"b".to_string()), None);
        queue.finished(&"a".to_string()).unwrap();
        assert_eq!(queue.next_startable(), ["c"]);
    }

    #[test]
    fn misuse_is_refused_with_a_reason() {
        let mut queue = queue_of(QueueLimits::default(), &["a:hv1>hv2", "b:hv1>hv2"]);
        assert_eq!(
            queue.enqueue("a".to_string(), host("hv3"), host("hv4")),
            Err(QueueError::AlreadyQueued("a".to_string()))
        );
        queue.next_startable();
        assert_eq!(
            queue.enqueue("a".to_string(), host("hv1"), host("hv2")),
            Err(QueueError::AlreadyQueued("a".to_string())),
            "a running request cannot be queued again either"
        );
        assert_eq!(
            queue.cancel_queued(&"a".to_string()),
            Err(QueueError::AlreadyRunning("a".to_string()))
        );
        assert_eq!(
            queue.finished(&"b".to_string()),
            Err(QueueError::NotRunning("b".to_string()))
        );
        assert_eq!(
            queue.finished(&"zz".to_string()),
            Err(QueueError::Unknown("zz".to_string()))
        );
        assert_eq!(
            queue.cancel_queued(&"zz".to_string()),
            Err(QueueError::Unknown("zz".to_string()))
        );
        queue.finished(&"a".to_string()).unwrap();
        assert_eq!(
            queue.finished(&"a".to_string()),
            Err(QueueError::Unknown("a".to_string())),
            "a request finishes once"
        );
        // A finished request's id may be queued again (a retry).
        queue
            .enqueue("a".to_string(), host("hv1"), host("hv2"))
            .unwrap();
    }
}
