//! Reading what a host and its domains are, through the `virt` crate. Runs on worker threads
//! only (see `HostConnection::call`).

use serde::Serialize;
use virt::connect::Connect;
use virt::domain::Domain;

use super::LibvirtError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFacts {
    pub hostname: String,
    /// The host UUID libvirt reports in its capabilities; migration refuses two hosts that share one.
    pub host_uuid: String,
    pub hypervisor_type: String,
    pub hypervisor_version: String,
    pub libvirt_version: String,
    pub cpu_arch: String,
    pub cpu_model: String,
    pub cpu_count: u32,
    pub memory_total_bytes: u64,
    pub memory_free_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainRunState {
    Running,
    Blocked,
    Paused,
    ShuttingDown,
    ShutOff,
    Crashed,
    Suspended,
    Unknown,
}

impl DomainRunState {
    pub fn from_libvirt(state: virt::domain::DomainStateEnum) -> DomainRunState {
        use virt::domain::DomainState as S;
        match state.unwrap_or(S::NoState) {
            S::Running => DomainRunState::Running,
            S::Blocked => DomainRunState::Blocked,
            S::Paused => DomainRunState::Paused,
            S::Shutdown => DomainRunState::ShuttingDown,
            S::Shutoff => DomainRunState::ShutOff,
            S::Crashed => DomainRunState::Crashed,
            S::PMSuspended => DomainRunState::Suspended,
            S::NoState => DomainRunState::Unknown,
        }
    }

    /// The words `virsh list` uses, so operators can compare.
    pub fn as_virsh_str(self) -> &'static str {
        match self {
            DomainRunState::Running => "running",
            DomainRunState::Blocked => "idle",
            DomainRunState::Paused => "paused",
            DomainRunState::ShuttingDown => "in shutdown",
            DomainRunState::ShutOff => "shut off",
            DomainRunState::Crashed => "crashed",
            DomainRunState::Suspended => "pmsuspended",
            DomainRunState::Unknown => "no state",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainFacts {
    pub name: String,
    pub uuid: String,
    pub state: DomainRunState,
    pub vcpus: u32,
    pub memory_bytes: u64,
    pub persistent: bool,
}

/// libvirt packs versions as major * 1,000,000 + minor * 1,000 + release.
pub fn version_string(packed: u32) -> String {
    format!(
        "{}.{}.{}",
        packed / 1_000_000,
        (packed / 1_000) % 1_000,
        packed % 1_000
    )
}

pub fn read_host_facts(connect: &Connect) -> Result<HostFacts, LibvirtError> {
    let fail = |what: &'static str| move |e| LibvirtError::call(what, e);
    let capabilities = connect
        .capabilities()
        .map_err(fail("reading capabilities"))?;
    let node = connect.node_info().map_err(fail("reading node info"))?;
    let parsed = capabilities_host(&capabilities);
    Ok(HostFacts {
        hostname: connect.hostname().map_err(fail("reading hostname"))?,
        host_uuid: parsed.uuid,
        hypervisor_type: connect
            .driver_type()
            .map_err(fail("reading hypervisor type"))?,
        hypervisor_version: version_string(
            connect
                .hyp_version()
                .map_err(fail("reading hypervisor version"))?,
        ),
        libvirt_version: version_string(
            connect
                .lib_version()
                .map_err(fail("reading libvirt version"))?,
        ),
        cpu_arch: parsed.arch,
        cpu_model: parsed.cpu_model,
        cpu_count: node.cpus,
        memory_total_bytes: node.memory * 1024,
        memory_free_bytes: connect.free_memory().map_err(fail("reading free memory"))?,
    })
}

pub fn read_domains(connect: &Connect) -> Result<Vec<DomainFacts>, LibvirtError> {
    let domains = connect
        .list_all_domains(0)
        .map_err(|e| LibvirtError::call("listing domains", e))?;
    let mut facts: Vec<DomainFacts> = domains.iter().filter_map(domain_facts).collect();
    facts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(facts)
}

/// A domain that vanished between listing and reading (migrated away, undefined) is skipped.
fn domain_facts(domain: &Domain) -> Option<DomainFacts> {
    let info = domain.info().ok()?;
    Some(DomainFacts {
        name: domain.name().ok()?,
        uuid: domain.uuid_string().ok()?,
        state: DomainRunState::from_libvirt(info.state),
        vcpus: info.nr_virt_cpu,
        memory_bytes: info.max_mem * 1024,
        persistent: domain.is_persistent().ok()?,
    })
}

#[derive(Debug, Default, PartialEq)]
pub struct CapabilitiesHost {
    pub uuid: String,
    pub arch: String,
    pub cpu_model: String,
}

/// Pulls `<host><uuid>` and `<host><cpu><arch>/<model>` out of the capabilities XML.
pub fn capabilities_host(xml: &str) -> CapabilitiesHost {
    let mut host = CapabilitiesHost::default();
    let Ok(document) = roxmltree::Document::parse(xml) else {
        return host;
    };
    let Some(host_node) = document
        .root_element()
        .children()
        .find(|n| n.has_tag_name("host"))
    else {
        return host;
    };
    let text_of = |parent: roxmltree::Node, tag: &str| {
        parent
            .children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    host.uuid = text_of(host_node, "uuid");
    if let Some(cpu) = host_node.children().find(|n| n.has_tag_name("cpu")) {
        host.arch = text_of(cpu, "arch");
        host.cpu_model = text_of(cpu, "model");
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_unpack() {
        assert_eq!(version_string(11_003_000), "11.3.0");
        assert_eq!(version_string(10_000_002), "10.0.2");
    }

    #[test]
    fn capabilities_host_reads_uuid_and_cpu() {
        let xml = "<capabilities><host><uuid>00000000-0000-4000-8000-000000000001</uuid>\
                   <cpu><arch>x86_64</arch><model>Skylake-Client-IBRS</model></cpu></host>\
                   <guest><arch name='x86_64'/></guest></capabilities>";
        assert_eq!(
            capabilities_host(xml),
            CapabilitiesHost {
                uuid: "00000000-0000-4000-8000-000000000001".into(),
                arch: "x86_64".into(),
                cpu_model: "Skylake-Client-IBRS".into(),
            }
        );
        assert_eq!(capabilities_host("not xml"), CapabilitiesHost::default());
    }
}
