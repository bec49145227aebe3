//! The hosts pane's own state: the order it lists hosts in. Which host is selected is the
//! app's (`App::selected_host`), as it decides the instances pane too.

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
