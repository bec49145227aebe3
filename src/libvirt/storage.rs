//! Storage pools as ferry uses them: which pool serves a directory, transient directory pools
//! for directories no pool serves, and the tiny volumes of the shared-storage probe. The
//! functions taking a `Connect` block and are for the door's own code; callers outside
//! `libvirt/` use the typed `async` methods on `HostConnection` at the end of this file
//! ([`HostConnection::precreate_volumes_from`], [`HostConnection::delete_volumes_at`]).

use std::sync::Arc;
use std::time::Duration;

use virt::connect::Connect;
use virt::storage_pool::StoragePool;

use super::{HostConnection, LibvirtError};

/// One storage pool of a host, as far as choosing a pool for a directory needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSummary {
    pub name: String,
    pub active: bool,
    /// `<target><path>`: the directory of a `dir` pool, the mount point of `fs`/`netfs` pools,
    /// the device directory of others. None when the pool XML has none.
    pub target_path: Option<String>,
}

/// The pool serving exactly a directory, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolForDirectory<'a> {
    Active(&'a PoolSummary),
    /// A pool is defined for the directory but not running. ferry does not start it (that is
    /// the operator's decision), and libvirt refuses a second pool on the same target path.
    Inactive(&'a PoolSummary),
    None,
}

/// `/var/lib/libvirt/images/` and `/var/lib/libvirt/images` are the same directory to libvirt.
fn normalized(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" if path.starts_with('/') => "/",
        trimmed => trimmed,
    }
}

/// The pool whose target path is `directory` itself. Only an exact match will do: a volume
/// is created in the pool's own directory, and a pool on a parent directory may sit on
/// another filesystem than a mount point below it.
pub fn pool_for_directory<'a>(pools: &'a [PoolSummary], directory: &str) -> PoolForDirectory<'a> {
    let directory = normalized(directory);
    let mut matching = pools
        .iter()
        .filter(|pool| pool.target_path.as_deref().map(normalized) == Some(directory));
    let first = matching.next();
    let active = first.into_iter().chain(matching).find(|pool| pool.active);
    match (active, first) {
        (Some(pool), _) => PoolForDirectory::Active(pool),
        (None, Some(pool)) => PoolForDirectory::Inactive(pool),
        (None, None) => PoolForDirectory::None,
    }
}

/// `<pool><target><path>` of a pool's XML description.
pub fn pool_target_path(xml: &str) -> Option<String> {
    let document = roxmltree::Document::parse(xml).ok()?;
    let target = document
        .root_element()
        .children()
        .find(|n| n.has_tag_name("target"))?;
    let path = target
        .children()
        .find(|n| n.has_tag_name("path"))?
        .text()?
        .trim();
    (!path.is_empty()).then(|| path.to_string())
}

/// Text made safe for an XML attribute or element.
pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\'' => escaped.push_str("&apos;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The XML of a directory pool.
pub fn dir_pool_xml(name: &str, path: &str) -> String {
    format!(
        "<pool type='dir'>\n  <name>{}</name>\n  <target>\n    <path>{}</path>\n  </target>\n</pool>\n",
        xml_escape(name),
        xml_escape(path)
    )
}

/// An empty raw volume: the file the shared-storage probe creates and looks for.
pub fn probe_volume_xml(name: &str) -> String {
    format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>0</capacity>\n  <target><format type='raw'/></target>\n</volume>\n",
        xml_escape(name)
    )
}

/// Every pool of the host, active or not, with its target path.
pub fn list_pools(connect: &Connect) -> Result<Vec<PoolSummary>, LibvirtError> {
    let pools = connect
        .list_all_storage_pools(0)
        .map_err(|e| LibvirtError::call("listing storage pools", e))?;
    Ok(pools
        .iter()
        .filter_map(|pool| {
            Some(PoolSummary {
                name: pool.name().ok()?,
                active: pool.is_active().unwrap_or(false),
                target_path: pool.xml_desc(0).ok().and_then(|xml| pool_target_path(&xml)),
            })
        })
        .collect())
}

/// A pool serving a directory, and whether ferry created it (then ferry destroys it again).
pub struct OpenedPool {
    pub pool: StoragePool,
    pub name: String,
    /// A transient pool ferry started for this directory; `destroy` removes it entirely.
    pub created_transient: bool,
}

/// The active pool whose target is `directory`, or else a transient directory pool named
/// `transient_name` started on it. A transient pool leaves no definition behind once destroyed,
/// and it is what a host with no pool for the directory needs: libvirt reaches files only
/// through pools. An inactive pool defined there is an error naming it (see [`PoolForDirectory`]).
pub fn open_pool_for_directory(
    connect: &Connect,
    directory: &str,
    transient_name: &str,
) -> Result<OpenedPool, LibvirtError> {
    let pools = list_pools(connect)?;
    match pool_for_directory(&pools, directory) {
        PoolForDirectory::Active(summary) => {
            let pool = connect
                .lookup_storage_pool_by_name(&summary.name)
                .map_err(|e| LibvirtError::call(format!("opening pool {}", summary.name), e))?;
            Ok(OpenedPool {
                pool,
                name: summary.name.clone(),
                created_transient: false,
            })
        }
        PoolForDirectory::Inactive(summary) => Err(LibvirtError::Call {
            context: format!("pool {} for {directory}", summary.name),
            message: format!(
                "the pool is defined but not running; start it (virsh pool-start {})",
                summary.name
            ),
        }),
        PoolForDirectory::None => {
            let pool = connect
                .create_storage_pool_xml(&dir_pool_xml(transient_name, directory), 0)
                .map_err(|e| {
                    LibvirtError::call(format!("starting a transient pool on {directory}"), e)
                })?;
            Ok(OpenedPool {
                pool,
                name: transient_name.to_string(),
                created_transient: true,
            })
        }
    }
}

fn child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    parent.children().find(|n| n.has_tag_name(name))
}

/// What a volume is, as a copy of it must be created: `<volume>` XML with the same name,
/// capacity, format and backing store as the source's.
pub fn volume_copy_xml(source_volume_xml: &str) -> Option<String> {
    let document = roxmltree::Document::parse(source_volume_xml).ok()?;
    let root = document.root_element();
    let name = child(root, "name")?.text()?.trim().to_string();
    let capacity_node = child(root, "capacity")?;
    let capacity = capacity_node.text()?.trim().to_string();
    let unit = capacity_node.attribute("unit").unwrap_or("bytes");
    let format = child(root, "target")
        .and_then(|target| child(target, "format"))
        .and_then(|format| format.attribute("type"))
        .unwrap_or("raw");
    let backing = child(root, "backingStore").and_then(|backing| {
        let path = child(backing, "path")?.text()?.trim().to_string();
        let format = child(backing, "format")
            .and_then(|f| f.attribute("type"))
            .unwrap_or("raw");
        Some(format!(
            "<backingStore><path>{}</path><format type='{}'/></backingStore>",
            xml_escape(&path),
            xml_escape(format)
        ))
    });
    Some(format!(
        "<volume><name>{}</name><capacity unit='{}'>{}</capacity>\
         <target><format type='{}'/></target>{}</volume>",
        xml_escape(&name),
        xml_escape(unit),
        xml_escape(&capacity),
        xml_escape(format),
        backing.unwrap_or_default()
    ))
}

/// Creates on `destination`, in the pool serving the same directory, an empty volume shaped
/// like each source volume, so that an incremental block migration (which libvirt cannot
/// pre-create storage for) has its targets, as Nova's pre_live_migration makes them. A path
/// that already exists on the destination is refused: mirroring only the source's allocated
/// clusters onto an old file would leave its stale clusters in the guest's disk. Returns the
/// paths created; on an error, those already created are deleted again.
pub fn precreate_volumes(
    source: &Connect,
    destination: &Connect,
    paths: &[String],
) -> Result<Vec<String>, LibvirtError> {
    let mut created = Vec::new();
    let result = (|| {
        for path in paths {
            if destination.lookup_storage_vol_by_path(path).is_ok() {
                return Err(LibvirtError::Call {
                    context: format!("preparing {path} on the destination"),
                    message: "a file already exists there (a stale copy?); remove it with \
                              virsh vol-delete, or pick another destination"
                        .into(),
                });
            }
            let source_volume = source
                .lookup_storage_vol_by_path(path)
                .map_err(|e| LibvirtError::call(format!("{path} is not in a storage pool"), e))?;
            let xml = source_volume
                .xml_desc(0)
                .map_err(|e| LibvirtError::call(format!("describing {path}"), e))?;
            let copy_xml = volume_copy_xml(&xml).ok_or_else(|| LibvirtError::Call {
                context: format!("describing {path}"),
                message: "the volume XML has no name or capacity".into(),
            })?;
            let directory = std::path::Path::new(path)
                .parent()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default();
            let pools = list_pools(destination)?;
            let pool = match pool_for_directory(&pools, &directory) {
                PoolForDirectory::Active(summary) => destination
                    .lookup_storage_pool_by_name(&summary.name)
                    .map_err(|e| LibvirtError::call(format!("opening pool {}", summary.name), e))?,
                _ => {
                    return Err(LibvirtError::Call {
                        context: format!("preparing {path} on the destination"),
                        message: format!(
                            "no running storage pool serves {directory} there; define and \
                             start one (virsh pool-define-as NAME dir --target {directory})"
                        ),
                    })
                }
            };
            virt::storage_vol::StorageVol::create_xml(&pool, &copy_xml, 0).map_err(|e| {
                LibvirtError::call(format!("creating {path} on the destination"), e)
            })?;
            created.push(path.clone());
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(created),
        Err(error) => {
            delete_volumes(destination, &created);
            Err(error)
        }
    }
}

/// Deletes the volumes at `paths`; returns what could not be deleted, with the reason.
pub fn delete_volumes(connect: &Connect, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|path| {
            let deleted = connect
                .lookup_storage_vol_by_path(path)
                .and_then(|volume| volume.delete(0));
            deleted.err().map(|e| format!("{path}: {e}"))
        })
        .collect()
}

impl HostConnection {
    /// [`precreate_volumes`] with this host as the destination and `source` as the host the
    /// disks come from, as one call bounded by `timeout`: what an incremental block migration
    /// needs on its destination first. Returns the paths created.
    pub async fn precreate_volumes_from(
        &self,
        source: &HostConnection,
        paths: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, LibvirtError> {
        let source_connect = Arc::clone(&source.connect);
        let destination_connect = Arc::clone(&self.connect);
        let paths = paths.to_vec();
        super::off_runtime(
            format!(
                "{} and {}: creating the copied disks' volumes on the destination",
                source.uri, self.uri
            ),
            timeout,
            move || precreate_volumes(&source_connect, &destination_connect, &paths),
        )
        .await
    }

    /// [`delete_volumes`] on this host, as one call bounded by `timeout`: what could not be
    /// deleted, with the reason.
    pub async fn delete_volumes_at(
        &self,
        paths: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, LibvirtError> {
        let paths = paths.to_vec();
        self.run("deleting volumes", timeout, move |connect| {
            Ok(delete_volumes(connect, &paths))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, active: bool, path: Option<&str>) -> PoolSummary {
        PoolSummary {
            name: name.into(),
            active,
            target_path: path.map(str::to_string),
        }
    }

    #[test]
    fn the_pool_for_a_directory_is_the_one_on_that_exact_directory() {
        let pools = [
            pool("default", true, Some("/var/lib/libvirt")),
            pool("images-old", false, Some("/var/lib/libvirt/images")),
            pool("local", true, Some("/var/lib/libvirt/images/")),
            pool("iscsi", true, None),
            pool("parked", false, Some("/srv/parked")),
        ];
        // Trailing slashes do not matter; the active pool wins over an inactive one.
        assert_eq!(
            pool_for_directory(&pools, "/var/lib/libvirt/images"),
            PoolForDirectory::Active(&pools[2])
        );
        assert_eq!(
            pool_for_directory(&pools, "/srv/parked/"),
            PoolForDirectory::Inactive(&pools[4])
        );
        // A pool on a parent directory does not serve a subdirectory.
        assert_eq!(
            pool_for_directory(&pools, "/var/lib/libvirt/images/sub"),
            PoolForDirectory::None
        );
        assert_eq!(
            pool_for_directory(&pools, "/var/lib/libvirt/imagesX"),
            PoolForDirectory::None
        );
        assert_eq!(pool_for_directory(&[], "/"), PoolForDirectory::None);
        assert_eq!(
            pool_for_directory(&[pool("root", true, Some("/"))], "/"),
            PoolForDirectory::Active(&pool("root", true, Some("/")))
        );
    }

    #[test]
    fn target_path_comes_from_the_pool_xml() {
        let xml = "<pool type='dir'><name>local</name><capacity unit='bytes'>1</capacity>\
                   <source></source><target><path>/var/lib/libvirt/images</path>\
                   <permissions><mode>0755</mode></permissions></target></pool>";
        assert_eq!(
            pool_target_path(xml).as_deref(),
            Some("/var/lib/libvirt/images")
        );
        assert_eq!(
            pool_target_path("<pool type='rbd'><name>r</name></pool>"),
            None
        );
        assert_eq!(pool_target_path("<pool"), None);
    }

    #[test]
    fn pool_and_volume_xml_escape_what_they_are_given() {
        let xml = dir_pool_xml("p<1>", "/srv/a&b's");
        let document = roxmltree::Document::parse(&xml).expect("well-formed");
        assert_eq!(pool_target_path(&xml).as_deref(), Some("/srv/a&b's"));
        assert_eq!(
            document
                .descendants()
                .find(|n| n.has_tag_name("name"))
                .and_then(|n| n.text()),
            Some("p<1>")
        );
        let volume = probe_volume_xml("ferry-probe-1.probe");
        assert!(roxmltree::Document::parse(&volume).is_ok());
    }

    #[test]
    fn a_volume_copy_keeps_name_capacity_format_and_backing_store() {
        let source = "<volume type='file'><name>disk-data.qcow2</name><key>/x</key>\
            <capacity unit='bytes'>67108864</capacity><allocation unit='bytes'>8654848</allocation>\
            <target><path>/var/lib/libvirt/images/disk-data.qcow2</path><format type='qcow2'/></target>\
            <backingStore><path>/shared/base.img</path><format type='raw'/></backingStore></volume>";
        assert_eq!(
            volume_copy_xml(source).unwrap(),
            "<volume><name>disk-data.qcow2</name><capacity unit='bytes'>67108864</capacity>\
             <target><format type='qcow2'/></target><backingStore><path>/shared/base.img</path>\
             <format type='raw'/></backingStore></volume>"
        );
        assert!(volume_copy_xml("<volume><name>x</name></volume>").is_none());
    }
}
