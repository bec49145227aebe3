//! The lab's guests: tiny Linux VMs (Debian cloud kernel + a one-program initramfs) whose
//! memory size and dirty rate are set per guest on the kernel command line.

use super::plan::LabPlan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDisk {
    /// File name in the host-local pool (`/var/lib/libvirt/images` inside the host).
    pub file_name: &'static str,
    pub size_mib: u64,
    /// How much of the start of the disk holds the known pattern; the rest reads as zeros.
    pub pattern_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSpec {
    pub name: &'static str,
    pub memory_mib: u64,
    /// Memory the workload allocates and touches.
    pub workload_mib: u64,
    /// Memory the workload rewrites every second.
    pub dirty_mib_per_second: u64,
    pub data_disk: Option<DataDisk>,
    /// Started by `lab up`; the others stay defined and shut off until a test starts them.
    pub start_at_lab_up: bool,
}

/// The guests `lab up` defines on the first host.
pub fn lab_guests() -> Vec<GuestSpec> {
    vec![
        GuestSpec {
            name: "idle",
            memory_mib: 256,
            workload_mib: 16,
            dirty_mib_per_second: 0,
            data_disk: None,
            start_at_lab_up: true,
        },
        // Dirties 200 MiB/s: more than a 100 MiB/s migration bandwidth can carry, so it never
        // converges without help (downtime steps, auto-converge, post-copy or a pause).
        GuestSpec {
            name: "busy",
            memory_mib: 512,
            workload_mib: 384,
            dirty_mib_per_second: 200,
            data_disk: None,
            start_at_lab_up: false,
        },
        GuestSpec {
            name: "disk",
            memory_mib: 256,
            workload_mib: 32,
            dirty_mib_per_second: 2,
            data_disk: Some(DataDisk {
                file_name: "disk-data.qcow2",
                size_mib: 64,
                pattern_mib: 8,
            }),
            start_at_lab_up: true,
        },
    ]
}

pub fn domain_xml(guest: &GuestSpec, plan: &LabPlan) -> String {
    let guest_dir = plan.guest_dir();
    let disk = guest
        .data_disk
        .as_ref()
        .map(|disk| {
            format!(
                "    <disk type='file' device='disk'>\n\
                 \x20     <driver name='qemu' type='qcow2'/>\n\
                 \x20     <source file='/var/lib/libvirt/images/{file}'/>\n\
                 \x20     <target dev='vdb' bus='virtio'/>\n\
                 \x20   </disk>\n",
                file = disk.file_name
            )
        })
        .unwrap_or_default();
    format!(
        "<domain type='qemu'>\n\
         \x20 <name>{name}</name>\n\
         \x20 <description>ferry lab guest: {workload} MiB workload dirtying {dirty} MiB/s</description>\n\
         \x20 <memory unit='MiB'>{memory}</memory>\n\
         \x20 <vcpu>1</vcpu>\n\
         \x20 <os>\n\
         \x20   <type arch='x86_64' machine='pc'>hvm</type>\n\
         \x20   <kernel>{kernel}</kernel>\n\
         \x20   <initrd>{initrd}</initrd>\n\
         \x20   <cmdline>console=ttyS0 quiet panic=-1 ferry.name={name} ferry.mem_mib={workload} ferry.dirty_mibps={dirty}</cmdline>\n\
         \x20 </os>\n\
         \x20 <cpu mode='custom' match='exact' check='none'>\n\
         \x20   <model fallback='allow'>qemu64</model>\n\
         \x20 </cpu>\n\
         \x20 <on_poweroff>destroy</on_poweroff>\n\
         \x20 <on_reboot>restart</on_reboot>\n\
         \x20 <on_crash>destroy</on_crash>\n\
         \x20 <devices>\n\
         {disk}\
         \x20   <serial type='pty'>\n\
         \x20     <log file='/var/log/libvirt/qemu/{name}-serial.log' append='on'/>\n\
         \x20     <target port='0'/>\n\
         \x20   </serial>\n\
         \x20   <console type='pty'/>\n\
         \x20   <memballoon model='none'/>\n\
         \x20 </devices>\n\
         </domain>\n",
        name = guest.name,
        memory = guest.memory_mib,
        workload = guest.workload_mib,
        dirty = guest.dirty_mib_per_second,
        kernel = guest_dir.join("vmlinuz").display(),
        initrd = guest_dir.join("initrd.cpio").display(),
    )
}

/// The known content of a data disk: `pattern_mib` MiB from a fixed xorshift stream, then
/// zeros up to `size_mib`. Tests compare checksums of the disk against this after a move.
pub fn data_disk_content(disk: &DataDisk) -> Vec<u8> {
    let mut content = vec![0u8; (disk.size_mib << 20) as usize];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in content[..(disk.pattern_mib << 20) as usize].chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    content
}

/// The storage pool XML for a directory pool (one definition for the lab and the prechecks).
pub use crate::libvirt::storage::dir_pool_xml;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_guest_outruns_a_100_mib_per_second_migration() {
        let busy = lab_guests().into_iter().find(|g| g.name == "busy").unwrap();
        assert!(busy.dirty_mib_per_second > 100);
        assert!(busy.workload_mib < busy.memory_mib);
    }

    #[test]
    fn domain_xml_carries_workload_and_disk() {
        let plan = LabPlan::new(2).unwrap();
        let guests = lab_guests();
        let disk_guest = guests.iter().find(|g| g.name == "disk").unwrap();
        let xml = domain_xml(disk_guest, &plan);
        let document = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let cmdline = document
            .descendants()
            .find(|n| n.has_tag_name("cmdline"))
            .and_then(|n| n.text())
            .unwrap();
        assert!(cmdline.contains("ferry.mem_mib=32") && cmdline.contains("ferry.dirty_mibps=2"));
        assert!(xml.contains("/var/lib/libvirt/images/disk-data.qcow2"));
        assert!(xml.contains("/var/lib/ferry-lab/shared/guest/vmlinuz"));
        let idle_xml = domain_xml(&guests[0], &plan);
        assert!(!idle_xml.contains("<disk"));
    }

    #[test]
    fn data_disk_content_is_fixed_and_sized() {
        let disk = DataDisk {
            file_name: "x.qcow2",
            size_mib: 2,
            pattern_mib: 1,
        };
        let first = data_disk_content(&disk);
        assert_eq!(first.len(), 2 << 20);
        assert_eq!(first, data_disk_content(&disk));
        assert!(first[..1 << 20].iter().filter(|b| **b == 0).count() < 10_000);
        assert!(first[1 << 20..].iter().all(|b| *b == 0));
    }
}
