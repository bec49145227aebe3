//! A domain's size as its XML defines it (`<vcpu>`, `<memory>`, `<currentMemory>`), read and
//! rewritten in place for a resize. Pure: the XML in, the XML out; everything else in the
//! definition stays byte for byte.
//!
//! Only what can be rewritten safely is: a definition whose vCPUs or memory are tied to
//! something else (hot-pluggable vCPUs, NUMA cells, memory slots, hugepages, a CPU topology or
//! pinning that names other vCPU counts) is refused with the element to change by hand.

use roxmltree::{Document, Node};
use serde::{Deserialize, Serialize};

/// What a definition gives the guest: its vCPUs (`<vcpu>`, the maximum, which is what it
/// boots with when no `current` is set) and its memory (`<memory>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinedSize {
    pub vcpus: u32,
    pub memory_kib: u64,
}

/// Bytes per unit of libvirt's `unit` attribute (domain XML format, "Memory Allocation").
fn unit_bytes(unit: &str) -> Option<u64> {
    Some(match unit {
        "b" | "bytes" => 1,
        "KB" => 1_000,
        "k" | "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "G" | "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "T" | "TiB" => 1 << 40,
        _ => return None,
    })
}

fn parse(xml: &str) -> Result<Document<'_>, String> {
    Document::parse(xml).map_err(|e| format!("domain XML does not parse: {e}"))
}

/// The direct child `tag` of the `<domain>` element.
fn domain_child<'a, 'input>(document: &'a Document<'input>, tag: &str) -> Option<Node<'a, 'input>> {
    document
        .root_element()
        .children()
        .find(|n| n.has_tag_name(tag))
}

fn text_of<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

/// A memory element's amount in KiB.
fn memory_kib(node: Node) -> Result<u64, String> {
    let unit = node.attribute("unit").unwrap_or("KiB");
    let per_unit = unit_bytes(unit)
        .ok_or_else(|| format!("<{}> has an unknown unit {unit:?}", node.tag_name().name()))?;
    let amount: u64 = text_of(node).parse().map_err(|_| {
        format!(
            "<{}> holds {:?}, not a whole number",
            node.tag_name().name(),
            text_of(node)
        )
    })?;
    Ok(amount.saturating_mul(per_unit) / 1024)
}

/// The size the definition gives the guest.
pub fn defined_size(xml: &str) -> Result<DefinedSize, String> {
    let document = parse(xml)?;
    let vcpu = domain_child(&document, "vcpu").ok_or("domain XML has no <vcpu>")?;
    let vcpus = text_of(vcpu)
        .parse()
        .map_err(|_| format!("<vcpu> holds {:?}, not a count", text_of(vcpu)))?;
    let memory = domain_child(&document, "memory").ok_or("domain XML has no <memory>")?;
    Ok(DefinedSize {
        vcpus,
        memory_kib: memory_kib(memory)?,
    })
}

/// The vCPU count a `<cpu><topology>` multiplies out to (attributes left out count 1).
fn topology_vcpus(topology: Node) -> u64 {
    ["sockets", "dies", "clusters", "cores", "threads"]
        .iter()
        .map(|a| {
            topology
                .attribute(*a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
        })
        .product()
}

/// Why the vCPU count cannot be rewritten to `vcpus`, if it cannot.
fn vcpu_refusal(document: &Document, vcpu: Node, vcpus: u32) -> Option<String> {
    if let Some(current) = vcpu.attribute("current") {
        if current.trim() != text_of(vcpu) {
            return Some(format!(
                "its <vcpu current='{current}'>{}</vcpu> boots fewer vCPUs than it may hot-plug; \
                 ferry does not rewrite hot-pluggable vCPUs (remove the current attribute, or \
                 resize with virsh setvcpus --config)",
                text_of(vcpu)
            ));
        }
    }
    if domain_child(document, "vcpus").is_some() {
        return Some(
            "its <vcpus> element configures each vCPU on its own; ferry does not rewrite it \
             (resize with virsh setvcpus --config)"
                .into(),
        );
    }
    let cpu = domain_child(document, "cpu");
    if let Some(topology) = cpu.and_then(|c| c.children().find(|n| n.has_tag_name("topology"))) {
        let counted = topology_vcpus(topology);
        if counted != u64::from(vcpus) {
            return Some(format!(
                "its <cpu><topology> makes {counted} vCPUs, and libvirt needs it to match the \
                 vCPU count; change the topology by hand for {vcpus} vCPUs"
            ));
        }
    }
    let cputune = domain_child(document, "cputune");
    for tuned in cputune.iter().flat_map(|t| t.children()) {
        if tuned.has_tag_name("vcpusched") {
            return Some(
                "its <cputune><vcpusched> names vCPUs by number; ferry does not rewrite it".into(),
            );
        }
        let pinned = tuned
            .has_tag_name("vcpupin")
            .then(|| tuned.attribute("vcpu")?.parse::<u32>().ok())
            .flatten();
        if let Some(pinned) = pinned.filter(|p| *p >= vcpus) {
            return Some(format!(
                "its <cputune><vcpupin vcpu='{pinned}'> pins a vCPU the new size does not have"
            ));
        }
    }
    None
}

/// Why the memory cannot be rewritten, if it cannot.
fn memory_refusal(document: &Document) -> Option<String> {
    if domain_child(document, "maxMemory").is_some() {
        return Some(
            "its <maxMemory> sets memory hot-plug slots; ferry does not rewrite hot-pluggable \
             memory (change <maxMemory> and the DIMMs by hand)"
                .into(),
        );
    }
    let hugepages = domain_child(document, "memoryBacking")
        .is_some_and(|b| b.children().any(|n| n.has_tag_name("hugepages")));
    hugepages.then(|| {
        "its memory is backed by hugepages, whose size and count on the host ferry does not \
         check; resize it by hand"
            .into()
    })
}

/// The definition with `<vcpu>` set to `vcpus` and `<memory>` (and `<currentMemory>`, if any)
/// set to `memory_kib`, each only when given. Refuses, saying which element is in the way,
/// what cannot be rewritten safely; NUMA cells tie both vCPUs and memory, so any resize of a
/// guest with `<cpu><numa>` is refused.
pub fn edit_guest_size(
    xml: &str,
    vcpus: Option<u32>,
    memory_kib: Option<u64>,
) -> Result<String, String> {
    let document = parse(xml)?;
    let has_numa = domain_child(&document, "cpu")
        .is_some_and(|c| c.children().any(|n| n.has_tag_name("numa")));
    if has_numa && (vcpus.is_some() || memory_kib.is_some()) {
        return Err(
            "cannot resize it: its <cpu><numa> cells bind vCPUs and memory to guest NUMA \
             nodes; change the cells by hand"
                .into(),
        );
    }
    let mut replacements = Vec::new();
    if let Some(vcpus) = vcpus {
        let vcpu = domain_child(&document, "vcpu").ok_or("domain XML has no <vcpu>")?;
        if let Some(refusal) = vcpu_refusal(&document, vcpu, vcpus) {
            return Err(format!("cannot set {vcpus} vCPUs: {refusal}"));
        }
        replacements.push((text_range(vcpu)?, vcpus.to_string()));
        if let Some(current) = vcpu.attribute_node("current") {
            replacements.push((current.range_value(), vcpus.to_string()));
        }
    }
    if let Some(memory_kib) = memory_kib {
        if let Some(refusal) = memory_refusal(&document) {
            return Err(format!("cannot set {memory_kib} KiB of memory: {refusal}"));
        }
        let memory = domain_child(&document, "memory").ok_or("domain XML has no <memory>")?;
        for node in [Some(memory), domain_child(&document, "currentMemory")]
            .into_iter()
            .flatten()
        {
            replacements.push((text_range(node)?, memory_kib.to_string()));
            if let Some(unit) = node.attribute_node("unit") {
                replacements.push((unit.range_value(), "KiB".to_string()));
            }
        }
    }
    replacements.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut edited = xml.to_string();
    for (range, value) in replacements {
        edited.replace_range(range, &value);
    }
    Ok(edited)
}

/// Where an element's text is in the XML.
fn text_range(node: Node) -> Result<std::ops::Range<usize>, String> {
    node.first_child()
        .filter(|n| n.is_text())
        .map(|n| n.range())
        .ok_or_else(|| format!("<{}> holds no value", node.tag_name().name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As libvirt 9 writes a small guest's inactive definition.
    const XML: &str = "<domain type='qemu'>\n  <name>cold-r</name>\n  \
        <memory unit='KiB'>131072</memory>\n  <currentMemory unit='KiB'>131072</currentMemory>\n  \
        <vcpu placement='static'>1</vcpu>\n  <os><type arch='x86_64'>hvm</type></os>\n  \
        <cpu mode='custom' match='exact' check='none'><model fallback='allow'>qemu64</model></cpu>\n  \
        <devices><disk type='file' device='disk'><source file='/srv/vcpu.qcow2'/>\
        <target dev='vdb'/></disk></devices>\n</domain>\n";

    #[test]
    fn the_size_is_read_in_kib_whatever_the_unit() {
        assert_eq!(
            defined_size(XML).unwrap(),
            DefinedSize {
                vcpus: 1,
                memory_kib: 128 << 10
            }
        );
        let in_mib = "<domain><memory unit='MiB'>384</memory><vcpu>2</vcpu></domain>";
        assert_eq!(
            defined_size(in_mib).unwrap(),
            DefinedSize {
                vcpus: 2,
                memory_kib: 384 << 10
            }
        );
        let no_unit = "<domain><memory>1024</memory><vcpu> 4 </vcpu></domain>";
        assert_eq!(defined_size(no_unit).unwrap().memory_kib, 1024);
        assert!(defined_size("<domain><vcpu>1</vcpu></domain>")
            .unwrap_err()
            .contains("no <memory>"));
        assert!(
            defined_size("<domain><memory unit='parsec'>1</memory><vcpu>1</vcpu></domain>")
                .unwrap_err()
                .contains("unknown unit")
        );
    }

    #[test]
    fn vcpus_and_memory_are_rewritten_and_nothing_else_moves() {
        let edited = edit_guest_size(XML, Some(2), Some(384 << 10)).unwrap();
        assert_eq!(
            edited,
            XML.replace(">131072<", ">393216<")
                .replace("'static'>1<", "'static'>2<")
        );
        assert_eq!(
            defined_size(&edited).unwrap(),
            DefinedSize {
                vcpus: 2,
                memory_kib: 384 << 10
            }
        );
        // Only what is given changes.
        let vcpus_only = edit_guest_size(XML, Some(3), None).unwrap();
        assert_eq!(vcpus_only, XML.replace("'static'>1<", "'static'>3<"));
        assert_eq!(edit_guest_size(XML, None, None).unwrap(), XML);
    }

    #[test]
    fn a_memory_in_another_unit_is_written_in_kib() {
        let xml = "<domain><memory unit='MiB'>128</memory><vcpu>1</vcpu></domain>";
        assert_eq!(
            edit_guest_size(xml, None, Some(512 << 10)).unwrap(),
            "<domain><memory unit='KiB'>524288</memory><vcpu>1</vcpu></domain>"
        );
    }

    #[test]
    fn a_current_vcpu_count_equal_to_the_maximum_follows_it() {
        let xml = "<domain><memory>1</memory><vcpu current='2'>2</vcpu></domain>";
        assert_eq!(
            edit_guest_size(xml, Some(4), None).unwrap(),
            "<domain><memory>1</memory><vcpu current='4'>4</vcpu></domain>"
        );
    }

    fn refusal(xml: &str, vcpus: Option<u32>, memory_kib: Option<u64>) -> String {
        edit_guest_size(xml, vcpus, memory_kib).unwrap_err()
    }

    #[test]
    fn what_cannot_be_rewritten_safely_is_refused_naming_the_element() {
        let hot_plug = "<domain><memory>1</memory><vcpu current='1'>4</vcpu></domain>";
        assert!(refusal(hot_plug, Some(2), None).contains("<vcpu current='1'>4</vcpu>"));
        // The memory alone may still change.
        assert!(edit_guest_size(hot_plug, None, Some(2048)).is_ok());

        let numa = XML.replace(
            "</model>",
            "</model><numa><cell id='0' cpus='0' memory='131072' unit='KiB'/></numa>",
        );
        assert!(refusal(&numa, None, Some(1 << 20)).contains("<cpu><numa>"));
        assert!(refusal(&numa, Some(2), None).contains("<cpu><numa>"));

        let slots = XML.replace(
            "<memory",
            "<maxMemory slots='4' unit='KiB'>4194304</maxMemory><memory",
        );
        assert!(refusal(&slots, None, Some(1 << 20)).contains("<maxMemory>"));
        assert!(
            edit_guest_size(&slots, Some(2), None).is_ok(),
            "vCPUs alone"
        );

        let hugepages = XML.replace("<vcpu", "<memoryBacking><hugepages/></memoryBacking><vcpu");
        assert!(refusal(&hugepages, None, Some(1 << 20)).contains("hugepages"));

        let topology = XML.replace(
            "</model>",
            "</model><topology sockets='1' dies='1' cores='2' threads='1'/>",
        );
        assert!(refusal(&topology, Some(4), None).contains("makes 2 vCPUs"));
        assert!(
            edit_guest_size(&topology, Some(2), None).is_ok(),
            "it matches"
        );

        let pinned = XML.replace(
            "<os>",
            "<cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='3' cpuset='1'/></cputune><os>",
        );
        assert!(refusal(&pinned, Some(2), None).contains("vcpupin vcpu='3'"));
        assert!(edit_guest_size(&pinned, Some(4), None).is_ok());

        let each = XML.replace("<os>", "<vcpus><vcpu id='0' enabled='yes'/></vcpus><os>");
        assert!(refusal(&each, Some(2), None).contains("<vcpus>"));

        assert!(refusal("<domain", Some(2), None).contains("does not parse"));
    }
}
