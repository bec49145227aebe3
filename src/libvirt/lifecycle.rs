//! A domain's life on one host, for cold migration: power it off (ACPI request, or a hard
//! power off), start it, define it from XML, undefine it, and its XML rewritten for another
//! host, and the presence of a domain and the removal of a copy, for both engines. Each
//! operation is one bounded call on the blocking pool (see `HostConnection::run`).

use std::time::Duration;

use serde::Serialize;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;

use super::{HostConnection, LibvirtError};

/// Whether a domain is defined on a host, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainPresence {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    pub persistent: bool,
}

/// How a domain is looked up: by name on the host it came from, by UUID where ferry must be
/// sure it is the same guest (a domain of the same name could be another one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainKey {
    Name(String),
    Uuid(String),
}

impl std::fmt::Display for DomainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainKey::Name(name) => f.write_str(name),
            DomainKey::Uuid(uuid) => write!(f, "UUID {uuid}"),
        }
    }
}

/// The domain by name or UUID, as libvirt answers (its "no such domain" included).
pub(super) fn lookup(connect: &Connect, key: &DomainKey) -> Result<Domain, virt::error::Error> {
    match key {
        DomainKey::Name(name) => connect.lookup_domain_by_name(name),
        DomainKey::Uuid(uuid) => connect.lookup_domain_by_uuid_string(uuid),
    }
}

fn presence(domain: &Domain) -> Result<DomainPresence, virt::error::Error> {
    Ok(DomainPresence {
        name: domain.name()?,
        uuid: domain.uuid_string()?,
        active: domain.is_active()?,
        persistent: domain.is_persistent()?,
    })
}

/// Undefine also drops what libvirt keeps beside the definition (managed save image, snapshot
/// and checkpoint metadata, NVRAM file): they belong to the copy being removed.
const UNDEFINE_EVERYTHING: u32 = virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | virt::sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM;

/// The domain's presence, or None when libvirt says there is no such domain.
fn presence_in(connect: &Connect, key: &DomainKey) -> Result<Option<DomainPresence>, LibvirtError> {
    match lookup(connect, key) {
        Ok(domain) => presence(&domain)
            .map(Some)
            .map_err(|e| LibvirtError::call(format!("reading {key}"), e)),
        Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(None),
        Err(error) => Err(LibvirtError::call(format!("looking up {key}"), error)),
    }
}

/// Removes the definition and what libvirt keeps beside it. Libvirt versions that do not know
/// one of the extra flags get a plain undefine.
fn undefine_everything(domain: &Domain) -> Result<(), virt::error::Error> {
    domain.undefine_flags(UNDEFINE_EVERYTHING).or_else(|error| {
        if error.code().is(ErrorNumber::InvalidArg) || error.code().is(ErrorNumber::NoSupport) {
            domain.undefine()
        } else {
            Err(error)
        }
    })
}

impl HostConnection {
    /// Runs `action` on the domain named by `key` (which must exist), within `timeout`;
    /// libvirt's errors come back as "{what} {key}: …".
    pub(in crate::libvirt) async fn with_domain<T: Send + 'static>(
        &self,
        key: &DomainKey,
        what: &str,
        timeout: Duration,
        action: impl FnOnce(&Domain) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let context = format!("{what} {key}");
        self.with_domain_ffi(key, what, timeout, move |domain| {
            action(domain).map_err(|e| LibvirtError::call(&context, e))
        })
        .await
    }

    /// As [`HostConnection::with_domain`], for actions of the FFI module that carry their own
    /// context in their errors.
    pub(in crate::libvirt) async fn with_domain_ffi<T: Send + 'static>(
        &self,
        key: &DomainKey,
        what: &str,
        timeout: Duration,
        action: impl FnOnce(&Domain) -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let key = key.clone();
        let context = format!("{what} {key}");
        self.run(context.clone(), timeout, move |connect| {
            let domain = lookup(connect, &key).map_err(|e| LibvirtError::call(&context, e))?;
            action(&domain)
        })
        .await
    }

    /// The domain, or None when the host has no domain with that name or UUID.
    pub async fn presence(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Option<DomainPresence>, LibvirtError> {
        let owned_key = key.clone();
        self.run(format!("looking up {key}"), timeout, move |connect| {
            presence_in(connect, &owned_key)
        })
        .await
    }

    /// Stops (hard: the copy is being discarded) and undefines the domain on this host.
    /// Returns what was done; nothing when it is not there. Callers decide first that the
    /// copy is theirs to remove.
    pub async fn remove_copy(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Vec<String>, LibvirtError> {
        let mut done = Vec::new();
        let Some(presence) = self.presence(key, timeout).await? else {
            return Ok(done);
        };
        if presence.active {
            self.with_domain(key, "powering off", timeout, |d| d.destroy())
                .await?;
            done.push(format!("stopped {}", presence.name));
        }
        if presence.persistent {
            self.with_domain(key, "undefining", timeout, undefine_everything)
                .await?;
            done.push(format!("removed the definition of {}", presence.name));
        }
        Ok(done)
    }

    /// Removes the definition the domain left on this host if it is inactive (true), leaving
    /// an active domain alone (false). A plain undefine, as a migration's UNDEFINE_SOURCE does.
    pub async fn undefine_if_inactive(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<bool, LibvirtError> {
        self.with_domain(key, "removing the inactive definition of", timeout, |d| {
            if d.is_active().unwrap_or(true) {
                return Ok(false);
            }
            d.undefine().map(|_| true)
        })
        .await
    }

    /// The guest's disks, as its live definition lists them.
    pub async fn domain_disks(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Vec<crate::model::domain::DiskFacts>, LibvirtError> {
        self.with_domain(key, "reading the disks of", timeout, |d| {
            d.xml_desc(0)
                .map(|xml| super::facts::disks_from_domain_xml(&xml))
        })
        .await
    }

    /// The domain, or None when the host has no domain with that name or UUID.
    /// Transitional, for synchronous callers (the cold engine): [`HostConnection::presence`].
    pub fn domain_presence(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Option<DomainPresence>, LibvirtError> {
        crate::runtime::wait(self.presence(key, timeout))
    }

    /// Runs `action` on the domain named by `key` (which must exist), within `timeout`.
    fn on_domain<T: Send + 'static>(
        &self,
        key: &DomainKey,
        what: &str,
        timeout: Duration,
        action: impl FnOnce(&Domain) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        crate::runtime::wait(self.with_domain(key, what, timeout, action))
    }

    /// Asks the guest to power off (ACPI power button, or the guest agent where libvirt
    /// prefers it). Returns at once: the guest decides when, or whether, it powers off.
    pub fn request_shutdown(&self, key: &DomainKey, timeout: Duration) -> Result<(), LibvirtError> {
        self.on_domain(key, "asking to shut down", timeout, |d| d.shutdown())
    }

    /// Hard power off, like pulling the plug: unwritten guest data is lost.
    pub fn power_off(&self, key: &DomainKey, timeout: Duration) -> Result<(), LibvirtError> {
        self.on_domain(key, "powering off", timeout, |d| d.destroy())
    }

    /// Synchronous [`HostConnection::remove_copy`], for the cold engine (transitional).
    pub fn remove_domain_copy(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Vec<String>, LibvirtError> {
        crate::runtime::wait(self.remove_copy(key, timeout))
    }

    pub fn start_domain(&self, key: &DomainKey, timeout: Duration) -> Result<(), LibvirtError> {
        self.on_domain(key, "starting", timeout, |d| d.create())
    }

    /// The persistent definition, with secrets (VNC passwords and the like) so that a copy
    /// defined elsewhere is complete, in the migratable form libvirt uses between hosts.
    pub fn domain_definition_xml(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<String, LibvirtError> {
        self.on_domain(key, "reading the definition of", timeout, |d| {
            d.xml_desc(
                virt::sys::VIR_DOMAIN_XML_INACTIVE
                    | virt::sys::VIR_DOMAIN_XML_SECURE
                    | virt::sys::VIR_DOMAIN_XML_MIGRATABLE,
            )
        })
    }

    /// Defines a domain from `xml` and returns its presence.
    pub fn define_domain(
        &self,
        xml: &str,
        timeout: Duration,
    ) -> Result<DomainPresence, LibvirtError> {
        let xml = xml.to_string();
        self.call("defining a domain", timeout, move |connect| {
            let domain = connect
                .define_domain_xml(&xml)
                .map_err(|e| LibvirtError::call("defining the domain", e))?;
            presence(&domain).map_err(|e| LibvirtError::call("reading the defined domain", e))
        })
    }

    /// Removes the definition (the domain must be inactive to vanish at once).
    pub fn undefine_domain(&self, key: &DomainKey, timeout: Duration) -> Result<(), LibvirtError> {
        self.on_domain(key, "undefining", timeout, undefine_everything)
    }
}

/// One change to a domain XML's `<disk>`: set `attribute` of its `<source>` to `value`, for
/// the disk whose `<target dev>` is `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSourceEdit {
    pub target: String,
    pub attribute: String,
    pub value: String,
}

/// The `<disk>` the guest calls `target` (its `<target dev>`).
fn disk_with_target<'a, 'input>(
    document: &'a roxmltree::Document<'input>,
    target: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    document
        .descendants()
        .filter(|n| n.has_tag_name("disk"))
        .find(|disk| {
            disk.children()
                .find(|n| n.has_tag_name("target"))
                .and_then(|t| t.attribute("dev"))
                == Some(target)
        })
}

/// Whether the disk `target` of the domain XML is `<disk type='block'>` (its source names the
/// device with `dev`; files use `file`). False for XML that does not parse or has no such disk.
pub fn disk_is_block(xml: &str, target: &str) -> bool {
    roxmltree::Document::parse(xml).is_ok_and(|document| {
        disk_with_target(&document, target)
            .is_some_and(|disk| disk.attribute("type") == Some("block"))
    })
}

/// The domain XML with the disk sources edited in place; everything else stays byte for byte.
/// Fails, naming the disk, when an edit finds no such disk or attribute.
pub fn edit_disk_sources(xml: &str, edits: &[DiskSourceEdit]) -> Result<String, String> {
    let document =
        roxmltree::Document::parse(xml).map_err(|e| format!("domain XML does not parse: {e}"))?;
    let mut replacements = Vec::new();
    for edit in edits {
        let disk = disk_with_target(&document, &edit.target)
            .ok_or_else(|| format!("domain XML has no disk {}", edit.target))?;
        let attribute = disk
            .children()
            .find(|n| n.has_tag_name("source"))
            .and_then(|source| {
                source
                    .attributes()
                    .find(|a| a.name() == edit.attribute && a.namespace().is_none())
            })
            .ok_or_else(|| {
                format!(
                    "disk {} has no source {} to rewrite",
                    edit.target, edit.attribute
                )
            })?;
        replacements.push((attribute.range_value(), escape_attribute(&edit.value)));
    }
    replacements.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut edited = xml.to_string();
    for (range, value) in replacements {
        edited.replace_range(range, &value);
    }
    Ok(edited)
}

/// Safe inside either quote style.
fn escape_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<domain type='qemu'>\n  <name>cold-a</name>\n  <devices>\n    \
        <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      \
        <source file='/var/lib/libvirt/images/cold-a.qcow2'/>\n      <target dev='vdb' bus='virtio'/>\n    </disk>\n    \
        <disk type='volume' device='disk'>\n      <source pool=\"fast\" volume='x.img'/>\n      <target dev='vdc'/>\n    </disk>\n  \
        </devices>\n</domain>\n";

    #[test]
    fn only_a_block_disk_is_block() {
        let block = "<domain><devices><disk type='block' device='disk'>\
            <source dev='/dev/vg0/a'/><target dev='vda'/></disk></devices></domain>";
        assert!(disk_is_block(block, "vda"));
        assert!(!disk_is_block(block, "vdb"), "no such disk");
        assert!(!disk_is_block(XML, "vdb"), "a file disk");
        assert!(!disk_is_block("<domain", "vda"), "XML that does not parse");
    }

    #[test]
    fn disk_sources_are_rewritten_and_nothing_else_moves() {
        let edited = edit_disk_sources(
            XML,
            &[
                DiskSourceEdit {
                    target: "vdb".into(),
                    attribute: "file".into(),
                    value: "/srv/images/cold-a's.qcow2".into(),
                },
                DiskSourceEdit {
                    target: "vdc".into(),
                    attribute: "pool".into(),
                    value: "fast2".into(),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            edited,
            XML.replace(
                "/var/lib/libvirt/images/cold-a.qcow2",
                "/srv/images/cold-a&apos;s.qcow2"
            )
            .replace("\"fast\"", "\"fast2\"")
        );
        let document = roxmltree::Document::parse(&edited).unwrap();
        let source = document
            .descendants()
            .find(|n| n.has_tag_name("source"))
            .unwrap();
        assert_eq!(source.attribute("file"), Some("/srv/images/cold-a's.qcow2"));
        assert_eq!(edit_disk_sources(XML, &[]).unwrap(), XML);
    }

    #[test]
    fn an_edit_that_finds_nothing_names_the_disk() {
        let missing_disk = edit_disk_sources(
            XML,
            &[DiskSourceEdit {
                target: "vdz".into(),
                attribute: "file".into(),
                value: "/x".into(),
            }],
        );
        assert_eq!(missing_disk.unwrap_err(), "domain XML has no disk vdz");
        let missing_attribute = edit_disk_sources(
            XML,
            &[DiskSourceEdit {
                target: "vdc".into(),
                attribute: "file".into(),
                value: "/x".into(),
            }],
        );
        assert!(missing_attribute.unwrap_err().contains("no source file"));
    }
}
