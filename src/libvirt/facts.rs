//! Reading what a host and its domains are, through the `virt` crate. Runs on worker threads
//! only (see `HostConnection::call`).

use virt::connect::Connect;
use virt::domain::Domain;

use super::LibvirtError;

use crate::model::domain::{DiskFacts, DiskSource, DomainFacts, DomainRunState, HostFacts};

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

/// libvirt's `VIR_DOMAIN_JOB_BOUNDED` and `VIR_DOMAIN_JOB_UNBOUNDED`: a job is in progress.
const JOB_TYPES_RUNNING: [i32; 2] = [1, 2];

/// A domain that vanished between listing and reading (migrated away, undefined) is skipped.
fn domain_facts(domain: &Domain) -> Option<DomainFacts> {
    let info = domain.info().ok()?;
    // `job_info` (virDomainGetJobInfo) fills a fixed struct, so it is safe with no job, unlike
    // `Domain::job_stats` (see LAB-NOTES). An inactive domain has no job and makes it fail.
    let job_running = domain
        .job_info()
        .is_ok_and(|job| JOB_TYPES_RUNNING.contains(&job.r#type));
    // The live XML of a running guest, the persistent one otherwise; no secrets are asked for.
    let xml = domain.xml_desc(0).unwrap_or_default();
    let disks = disks_from_domain_xml(&xml);
    let nova = super::nova_metadata::nova_ownership_from_domain_xml(&xml);
    Some(DomainFacts {
        name: domain.name().ok()?,
        uuid: domain.uuid_string().ok()?,
        state: DomainRunState::from_libvirt(info.state),
        vcpus: info.nr_virt_cpu,
        memory_bytes: info.max_mem * 1024,
        persistent: domain.is_persistent().ok()?,
        disks,
        job_running,
        nova,
    })
}

/// Reads `<devices><disk>` elements of a domain XML. Malformed XML gives no disks rather than
/// an error: the rest of the instance's facts are still worth showing.
pub fn disks_from_domain_xml(xml: &str) -> Vec<DiskFacts> {
    let Ok(document) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    let Some(devices) = document
        .root_element()
        .children()
        .find(|n| n.has_tag_name("devices"))
    else {
        return Vec::new();
    };
    devices
        .children()
        .filter(|n| n.has_tag_name("disk"))
        .map(|disk| {
            let source_node = disk.children().find(|n| n.has_tag_name("source"));
            let attribute = |name: &str| {
                source_node
                    .and_then(|n| n.attribute(name))
                    .unwrap_or_default()
                    .to_string()
            };
            let source = match (disk.attribute("type").unwrap_or("file"), source_node) {
                (_, None) => DiskSource::None,
                ("file", Some(_)) if !attribute("file").is_empty() => DiskSource::Path {
                    path: attribute("file"),
                },
                ("block", Some(_)) if !attribute("dev").is_empty() => DiskSource::Path {
                    path: attribute("dev"),
                },
                ("dir", Some(_)) if !attribute("dir").is_empty() => DiskSource::Path {
                    path: attribute("dir"),
                },
                ("network", Some(_)) => DiskSource::Network {
                    protocol: attribute("protocol"),
                    name: attribute("name"),
                },
                ("volume", Some(_)) => DiskSource::Volume {
                    pool: attribute("pool"),
                    volume: attribute("volume"),
                },
                _ => DiskSource::None,
            };
            let device = disk.attribute("device").unwrap_or("disk").to_string();
            DiskFacts {
                target: disk
                    .children()
                    .find(|n| n.has_tag_name("target"))
                    .and_then(|n| n.attribute("dev"))
                    .unwrap_or_default()
                    .to_string(),
                read_only: device == "cdrom" || disk.children().any(|n| n.has_tag_name("readonly")),
                device,
                source,
            }
        })
        .collect()
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

    #[test]
    fn disks_come_from_the_domain_xml() {
        let xml = r#"<domain type='qemu'><name>g1</name><devices>
            <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
              <source file='/var/lib/ferry-lab/shared/g1.qcow2'/><target dev='vda' bus='virtio'/></disk>
            <disk type='block' device='disk'><source dev='/dev/vg0/g1-data'/><target dev='vdb'/><readonly/></disk>
            <disk type='network' device='disk'><source protocol='rbd' name='pool/g1'/><target dev='vdc'/></disk>
            <disk type='volume' device='disk'><source pool='default' volume='g1.img'/><target dev='vdd'/></disk>
            <disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>
            <interface type='network'><source network='default'/></interface>
          </devices></domain>"#;
        let disks = disks_from_domain_xml(xml);
        let sources: Vec<_> = disks
            .iter()
            .map(|d| (d.target.as_str(), &d.source))
            .collect();
        assert_eq!(
            sources,
            [
                (
                    "vda",
                    &DiskSource::Path {
                        path: "/var/lib/ferry-lab/shared/g1.qcow2".into()
                    }
                ),
                (
                    "vdb",
                    &DiskSource::Path {
                        path: "/dev/vg0/g1-data".into()
                    }
                ),
                (
                    "vdc",
                    &DiskSource::Network {
                        protocol: "rbd".into(),
                        name: "pool/g1".into()
                    }
                ),
                (
                    "vdd",
                    &DiskSource::Volume {
                        pool: "default".into(),
                        volume: "g1.img".into()
                    }
                ),
                ("sda", &DiskSource::None),
            ]
        );
        assert_eq!(disks[4].device, "cdrom");
        let read_only: Vec<bool> = disks.iter().map(|d| d.read_only).collect();
        assert_eq!(read_only, [false, true, false, false, true]);
        assert!(disks_from_domain_xml("<domain").is_empty());
    }
}
