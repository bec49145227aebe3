//! The hosts pane's own state: the order it lists hosts in, and how a row is pointed at.
//! Which host is selected is the app's (`App::selected_host`), as it decides the instances
//! pane too.

use crate::inventory::{Backend, HostEntry};
use crate::model::HostName;

/// A row of the hosts pane as the operator points at it: the name and the backend, since a
/// machine in a cloud is listed twice, as a libvirt host and as Nova's hypervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub backend: Backend,
    pub name: HostName,
}

impl HostKey {
    pub fn of(host: &HostEntry) -> HostKey {
        HostKey {
            backend: host.backend.clone(),
            name: host.name.clone(),
        }
    }

    pub fn is(&self, host: &HostEntry) -> bool {
        self.name == host.name && self.backend == host.backend
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSort {
    /// The order of the config file: operators group hosts there on purpose.
    Config,
    Name,
    State,
    MemoryFree,
}

impl HostSort {
    pub fn label(self) -> &'static str {
        match self {
            HostSort::Config => "config",
            HostSort::Name => "name",
            HostSort::State => "state",
            HostSort::MemoryFree => "free mem",
        }
    }
    pub fn next(self) -> HostSort {
        match self {
            HostSort::Config => HostSort::Name,
            HostSort::Name => HostSort::State,
            HostSort::State => HostSort::MemoryFree,
            HostSort::MemoryFree => HostSort::Config,
        }
    }
}
