//! The instances pane's own state: how an instance is pointed at, the sort, the `/` filter.
//! Plain types, below the app, the launch dialog and the actions that all name an instance.

use crate::inventory::{Backend, Instance};
use crate::model::domain::DomainRunState;
use crate::model::HostName;

use crate::tui::filter::Matcher;

/// The pane that has the focus on the inventory screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Hosts,
    Instances,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceSort {
    Name,
    Host,
    State,
    Memory,
    Vcpus,
}

impl InstanceSort {
    pub fn label(self) -> &'static str {
        match self {
            InstanceSort::Name => "name",
            InstanceSort::Host => "host",
            InstanceSort::State => "state",
            InstanceSort::Memory => "memory",
            InstanceSort::Vcpus => "vcpus",
        }
    }
    pub fn next(self) -> InstanceSort {
        match self {
            InstanceSort::Name => InstanceSort::Host,
            InstanceSort::Host => InstanceSort::State,
            InstanceSort::State => InstanceSort::Memory,
            InstanceSort::Memory => InstanceSort::Vcpus,
            InstanceSort::Vcpus => InstanceSort::Name,
        }
    }
}

/// What the `/` line holds. `applied` is the last text that parsed, so a half-typed regex
/// never empties the list.
#[derive(Debug, Clone)]
pub struct FilterState {
    pub text: String,
    pub editing: bool,
    pub error: Option<String>,
    pub matcher: Matcher,
}

impl Default for FilterState {
    fn default() -> Self {
        FilterState {
            text: String::new(),
            editing: false,
            error: None,
            matcher: Matcher::Everything,
        }
    }
}

impl FilterState {
    pub fn set_text(&mut self, text: String) {
        match Matcher::parse(&text) {
            Ok(matcher) => {
                self.matcher = matcher;
                self.error = None;
            }
            Err(error) => self.error = Some(error),
        }
        self.text = text;
    }

    pub fn is_active(&self) -> bool {
        !matches!(self.matcher, Matcher::Everything)
    }
}

/// An instance as the operator points at it: this domain on this host, wherever the list
/// puts it. The UUID, not the name: a name can be reused after an undefine. The host too: while
/// a migration runs, the same UUID is listed on both hosts, and an action names one of them.
/// The backend too: Nova gives a server's domain the server's UUID, so its libvirt row and its
/// Nova row share host and UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceKey {
    pub host: HostName,
    pub uuid: String,
    pub backend: Backend,
}

impl InstanceKey {
    pub fn of(instance: &Instance) -> InstanceKey {
        InstanceKey {
            host: instance.host.clone(),
            uuid: instance.uuid.clone(),
            backend: instance.backend.clone(),
        }
    }

    pub fn is(&self, instance: &Instance) -> bool {
        self.uuid == instance.uuid && self.host == instance.host && self.backend == instance.backend
    }
}

/// Troubles first: an operator scanning by state wants what is not running on top.
pub fn state_rank(state: DomainRunState) -> u8 {
    match state {
        DomainRunState::Crashed => 0,
        DomainRunState::Unknown => 1,
        DomainRunState::Paused => 2,
        DomainRunState::Suspended => 3,
        DomainRunState::ShuttingDown => 4,
        DomainRunState::Blocked => 5,
        DomainRunState::Running => 6,
        DomainRunState::ShutOff => 7,
    }
}
