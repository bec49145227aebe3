//! What a guest's domain XML says about the platform it needs (hypervisor type, machine,
//! kernel, CPU model), and how libvirt's CPU comparison answers map to the precheck's result.
//! Pure parsing: the comparison call itself is `job_stats::compare_hypervisor_cpu`.

use virt::sys;

use super::job_stats::HypervisorCpuQuery;
use super::storage::xml_escape;
use crate::precheck::CpuCompareResult;

/// What the domain XML says about the hypervisor the guest needs and the CPU it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlatform {
    /// `<domain type>`: `kvm`, or `qemu` for TCG (QEMU emulating the CPU in software).
    pub virt_type: Option<String>,
    pub arch: Option<String>,
    pub machine: Option<String>,
    pub emulator: Option<String>,
    /// `<os><kernel>` of a direct kernel boot: a host file the guest needs on either host.
    pub kernel: Option<String>,
    pub cpu: GuestCpu,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestCpu {
    /// A named model: custom mode, or host-model as a running guest's XML shows it, expanded
    /// into a model and features. `cpu_xml` is a custom-mode definition ready to compare.
    Named { cpu_xml: String },
    /// Nothing named to compare: `host-passthrough` or `maximum`, a host-model not expanded
    /// (an inactive guest), or no `<cpu>` element (`mode` is then "none").
    NoModel { mode: String },
}

/// Reads the guest's platform from its domain XML; malformed XML gives no model and no
/// platform details, which the CPU check reports as not made.
pub fn guest_platform(domain_xml: &str) -> GuestPlatform {
    let mut platform = GuestPlatform {
        virt_type: None,
        arch: None,
        machine: None,
        emulator: None,
        kernel: None,
        cpu: GuestCpu::NoModel {
            mode: "none".into(),
        },
    };
    let Ok(document) = roxmltree::Document::parse(domain_xml) else {
        return platform;
    };
    let domain = document.root_element();
    platform.virt_type = domain.attribute("type").map(str::to_string);
    if let Some(os) = child(domain, "os") {
        let os_type = child(os, "type");
        platform.arch = os_type
            .and_then(|n| n.attribute("arch"))
            .map(str::to_string);
        platform.machine = os_type
            .and_then(|n| n.attribute("machine"))
            .map(str::to_string);
        platform.kernel = text(child(os, "kernel"));
    }
    platform.emulator = text(child(domain, "devices").and_then(|d| child(d, "emulator")));
    if let Some(cpu) = child(domain, "cpu") {
        let mode = cpu.attribute("mode").unwrap_or("custom");
        let has_model = text(child(cpu, "model")).is_some();
        platform.cpu = match mode {
            "custom" | "host-model" if has_model => GuestCpu::Named {
                cpu_xml: named_cpu_xml(domain_xml, cpu),
            },
            _ => GuestCpu::NoModel {
                mode: mode.to_string(),
            },
        };
    }
    platform
}

fn child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    tag: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    parent
        .children()
        .find(|n| n.is_element() && n.has_tag_name(tag))
}

/// The trimmed text of an element, None when absent or blank.
fn text(node: Option<roxmltree::Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// A custom-mode `<cpu>` with the guest's model, vendor, topology and features, copied as
/// written. Mode becomes custom because libvirt treats a host-model CPU as matching any host,
/// and NUMA cells are left out: they describe guest memory, not the CPU.
fn named_cpu_xml(domain_xml: &str, cpu: roxmltree::Node<'_, '_>) -> String {
    let match_mode = cpu.attribute("match").unwrap_or("exact");
    let mut xml = format!("<cpu mode='custom' match='{}'>", xml_escape(match_mode));
    for child in cpu.children().filter(|n| n.is_element()) {
        if matches!(
            child.tag_name().name(),
            "model" | "vendor" | "topology" | "feature"
        ) {
            xml.push_str(&domain_xml[child.range()]);
        }
    }
    xml.push_str("</cpu>");
    xml
}

/// `<host><cpu>` of a capabilities XML, as written: libvirt's CPU comparisons accept a host
/// CPU definition as well as a guest one.
pub fn host_cpu_xml(capabilities_xml: &str) -> Option<String> {
    let document = roxmltree::Document::parse(capabilities_xml).ok()?;
    let host = document
        .root_element()
        .children()
        .find(|n| n.has_tag_name("host"))?;
    let cpu = host.children().find(|n| n.has_tag_name("cpu"))?;
    Some(capabilities_xml[cpu.range()].to_string())
}

/// What to ask the destination's `virConnectCompareHypervisorCPU`, following Nova's
/// `check_can_live_migrate_destination` / `_compare_cpu`:
/// - A named guest CPU is compared as it is, for the guest's virt type, architecture, machine
///   and emulator, so the destination answers for the hypervisor that would run it.
/// - No named model under KVM (host-passthrough, or no `<cpu>`): the guest sees the source
///   host's CPU, so that CPU is compared, as Nova compares the source's `cpu_info`.
/// - No named model under TCG: nothing to compare; the emulated CPU is QEMU's choice, not the
///   host's. Nova skips the comparison for every non-KVM guest because its older
///   `compareCPU` checked the physical CPU, which TCG never uses. `compareHypervisorCPU` asks
///   the destination's QEMU what it can emulate for this virt type instead, so ferry does
///   compare named CPUs of TCG guests (the lab's guests are such): an older QEMU that cannot
///   emulate a model or a feature is refused before the migration rather than during it.
pub fn cpu_comparison(
    platform: &GuestPlatform,
    source_host_cpu_xml: Option<&str>,
) -> Result<HypervisorCpuQuery, String> {
    let query = |cpu_xml: String| HypervisorCpuQuery {
        emulator: platform.emulator.clone(),
        arch: platform.arch.clone(),
        machine: platform.machine.clone(),
        virt_type: platform.virt_type.clone(),
        cpu_xml,
    };
    match (&platform.cpu, platform.virt_type.as_deref()) {
        (GuestCpu::Named { cpu_xml }, _) => Ok(query(cpu_xml.clone())),
        (GuestCpu::NoModel { .. }, Some("kvm")) => match source_host_cpu_xml {
            Some(host_cpu) => Ok(query(host_cpu.to_string())),
            None => Err(
                "the guest runs the source host's CPU, and the source's capabilities did not \
                 describe it"
                    .to_string(),
            ),
        },
        (GuestCpu::NoModel { mode }, virt_type) => Err(format!(
            "guest CPU mode {mode} under {} names no model: the CPU is emulated, not the host's, \
             so there is nothing to compare (libvirt still checks it when the guest arrives)",
            match virt_type {
                Some("qemu") => "TCG (domain type qemu)".to_string(),
                Some(other) => format!("domain type {other}"),
                None => "an unknown domain type".to_string(),
            }
        )),
    }
}

/// libvirt's answer, as `(error code, message)` on failure, as a check result. As in Nova,
/// only a hypervisor that cannot compare at all leaves the result unknown; any other error
/// means libvirt could not accept this CPU there.
pub fn cpu_compare_result(
    destination: &str,
    outcome: Result<sys::virCPUCompareResult, (sys::virErrorNumber, String)>,
) -> CpuCompareResult {
    match outcome {
        Ok(sys::VIR_CPU_COMPARE_IDENTICAL) => CpuCompareResult::Identical,
        Ok(sys::VIR_CPU_COMPARE_SUPERSET) => CpuCompareResult::Superset,
        Ok(sys::VIR_CPU_COMPARE_INCOMPATIBLE) => CpuCompareResult::Incompatible {
            detail: "libvirt reports the CPU incompatible".to_string(),
        },
        Ok(other) => CpuCompareResult::Unknown {
            reason: format!("libvirt on {destination} gave an unknown comparison result {other}"),
        },
        Err((code, message))
            if code == sys::VIR_ERR_NO_SUPPORT || code == sys::VIR_ERR_OPERATION_UNSUPPORTED =>
        {
            CpuCompareResult::Unknown {
                reason: format!("libvirt on {destination} cannot compare CPUs: {message}"),
            }
        }
        Err((code, message)) if code == sys::VIR_ERR_CPU_INCOMPATIBLE => {
            CpuCompareResult::Incompatible { detail: message }
        }
        Err((_, message)) => CpuCompareResult::Incompatible {
            detail: format!("libvirt could not check the guest's CPU: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB_DISK_GUEST_XML: &str = include_str!("../../tests/fixtures/lab_disk_guest.xml");

    #[test]
    fn a_named_cpu_is_taken_from_the_domain_xml_without_its_numa_cells() {
        let platform = guest_platform(LAB_DISK_GUEST_XML);
        assert_eq!(platform.virt_type.as_deref(), Some("qemu"));
        assert_eq!(platform.arch.as_deref(), Some("x86_64"));
        assert_eq!(platform.machine.as_deref(), Some("pc-i440fx-10.0"));
        assert_eq!(
            platform.emulator.as_deref(),
            Some("/usr/bin/qemu-system-x86_64")
        );
        assert_eq!(
            platform.kernel.as_deref(),
            Some("/var/lib/ferry-lab/shared/guest/vmlinuz")
        );
        let GuestCpu::Named { cpu_xml } = &platform.cpu else {
            panic!("{:?}", platform.cpu);
        };
        assert_eq!(
            cpu_xml,
            "<cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model>\
             <feature policy='require' name='hypervisor'/><feature policy='require' name='lahf_lm'/></cpu>"
        );
        let query = cpu_comparison(&platform, None).expect("a named CPU is compared");
        assert_eq!(query.virt_type.as_deref(), Some("qemu"));
        assert_eq!(&query.cpu_xml, cpu_xml);
    }

    #[test]
    fn an_expanded_host_model_is_compared_as_a_custom_cpu() {
        let xml = "<domain type='kvm'><cpu mode='host-model' check='partial'>\
                   <model fallback='forbid'>Skylake-Client-IBRS</model><vendor>Intel</vendor>\
                   <topology sockets='1' cores='2' threads='1'/>\
                   <feature policy='require' name='ss'/></cpu></domain>";
        let GuestCpu::Named { cpu_xml } = guest_platform(xml).cpu else {
            panic!("expanded host-model has a model");
        };
        assert!(cpu_xml.starts_with("<cpu mode='custom' match='exact'>"));
        assert!(cpu_xml.contains("<vendor>Intel</vendor>"));
        assert!(cpu_xml.contains("<topology sockets='1' cores='2' threads='1'/>"));
    }

    #[test]
    fn without_a_model_kvm_compares_the_source_host_cpu_and_tcg_does_not_compare() {
        let capabilities = "<capabilities><host><uuid>u</uuid><cpu><arch>x86_64</arch>\
                            <model>Skylake-Client-IBRS</model><vendor>Intel</vendor>\
                            <feature name='ss'/></cpu></host></capabilities>";
        let host_cpu = host_cpu_xml(capabilities).expect("host cpu");
        assert!(host_cpu.starts_with("<cpu><arch>x86_64</arch>") && host_cpu.ends_with("</cpu>"));

        let passthrough = guest_platform(
            "<domain type='kvm'><os><type arch='x86_64'>hvm</type></os>\
             <cpu mode='host-passthrough' check='none'/></domain>",
        );
        assert_eq!(
            passthrough.cpu,
            GuestCpu::NoModel {
                mode: "host-passthrough".into()
            }
        );
        let query = cpu_comparison(&passthrough, Some(&host_cpu)).expect("compared");
        assert_eq!(query.cpu_xml, host_cpu);
        assert_eq!(query.virt_type.as_deref(), Some("kvm"));
        assert!(cpu_comparison(&passthrough, None)
            .unwrap_err()
            .contains("source's capabilities"));

        let tcg_without_cpu = guest_platform("<domain type='qemu'><name>g</name></domain>");
        let reason = cpu_comparison(&tcg_without_cpu, Some(&host_cpu)).unwrap_err();
        assert!(
            reason.contains("mode none under TCG") && reason.contains("nothing to compare"),
            "{reason}"
        );
        assert_eq!(
            guest_platform("<domain").cpu,
            GuestCpu::NoModel {
                mode: "none".into()
            }
        );
    }

    #[test]
    fn libvirt_answers_map_to_check_results() {
        assert_eq!(
            cpu_compare_result("hv2", Ok(sys::VIR_CPU_COMPARE_SUPERSET)),
            CpuCompareResult::Superset
        );
        assert_eq!(
            cpu_compare_result("hv2", Ok(sys::VIR_CPU_COMPARE_IDENTICAL)),
            CpuCompareResult::Identical
        );
        let missing = "the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f";
        assert_eq!(
            cpu_compare_result("hv2", Err((sys::VIR_ERR_CPU_INCOMPATIBLE, missing.into()))),
            CpuCompareResult::Incompatible {
                detail: missing.into()
            }
        );
        assert!(matches!(
            cpu_compare_result("hv2", Err((sys::VIR_ERR_NO_SUPPORT, "this function is not supported".into()))),
            CpuCompareResult::Unknown { reason } if reason.contains("hv2 cannot compare CPUs")
        ));
        assert!(matches!(
            cpu_compare_result("hv2", Err((sys::VIR_ERR_INTERNAL_ERROR, "unknown CPU model Foo".into()))),
            CpuCompareResult::Incompatible { detail } if detail.contains("unknown CPU model Foo")
        ));
    }
}
