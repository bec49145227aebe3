//! Reading OpenStack Nova's claim on a domain from its XML: the `<nova:instance>` element Nova's
//! libvirt driver puts under `<metadata>` (`LibvirtConfigGuestMetaNovaInstance`,
//! nova/virt/libvirt/config.py). Pure: the door hands in the XML it already read.

use crate::model::domain::NovaOwnership;

/// Every version of Nova's metadata namespace starts so (`…/nova/1.0` before Ussuri, `…/1.1`
/// since); the element is matched on the namespace, never on the `nova:` prefix, which any
/// writer may choose.
pub const NOVA_NAMESPACE_PREFIX: &str = "http://openstack.org/xmlns/libvirt/nova/";

/// Nova's ownership of the domain, or None when its XML carries no Nova metadata (or is not
/// XML at all: then nothing claims it). The server id is the domain's `<uuid>`, which Nova sets
/// to the server's.
pub fn nova_ownership_from_domain_xml(xml: &str) -> Option<NovaOwnership> {
    let document = roxmltree::Document::parse(xml).ok()?;
    let domain = document.root_element();
    let instance = domain
        .children()
        .filter(|n| n.has_tag_name("metadata"))
        .flat_map(|metadata| metadata.children())
        .find(|n| {
            n.tag_name().name() == "instance"
                && n.tag_name()
                    .namespace()
                    .is_some_and(|ns| ns.starts_with(NOVA_NAMESPACE_PREFIX))
        })?;
    let namespace = instance.tag_name().namespace();
    let child = |parent, name| nova_child(parent, name, namespace);
    let project = child(instance, "owner").and_then(|owner| child(owner, "project"));
    let server_id = text(domain.children().find(|n| n.has_tag_name("uuid")))?;
    Some(NovaOwnership {
        server_id,
        server_name: text(child(instance, "name")),
        project_name: text(project),
        project_id: attribute(project, "uuid"),
        flavor_name: attribute(child(instance, "flavor"), "name"),
        nova_version: attribute(child(instance, "package"), "version"),
    })
}

/// The child element `name` of `parent` in Nova's namespace (the one its instance element uses).
fn nova_child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    name: &str,
    namespace: Option<&str>,
) -> Option<roxmltree::Node<'a, 'input>> {
    parent
        .children()
        .find(|n| n.tag_name().name() == name && n.tag_name().namespace() == namespace)
}

fn text(node: Option<roxmltree::Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn attribute(node: Option<roxmltree::Node<'_, '_>>, name: &str) -> Option<String> {
    node.and_then(|n| n.attribute(name))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A domain as Nova 26.2.2 (Zed) defines it, `virsh dumpxml` of a running server.
    const NOVA_26_DOMAIN_XML: &str = include_str!("../../tests/fixtures/nova_26_domain.xml");
    const LAB_DISK_GUEST_XML: &str = include_str!("../../tests/fixtures/lab_disk_guest.xml");

    #[test]
    fn a_nova_26_domain_is_claimed_by_its_server() {
        assert_eq!(
            nova_ownership_from_domain_xml(NOVA_26_DOMAIN_XML),
            Some(NovaOwnership {
                server_id: "5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13".into(),
                server_name: Some("web-1".into()),
                project_name: Some("demo".into()),
                project_id: Some("c2b4e6a8f0d24c6e8a0b2d4f6a8c0e1f".into()),
                flavor_name: Some("m1.small".into()),
                nova_version: Some("26.2.2".into()),
            })
        );
    }

    #[test]
    fn the_namespace_decides_not_the_prefix_and_any_version_counts() {
        // Nova before Ussuri wrote namespace 1.0; a writer may pick any prefix.
        let older = r#"<domain><name>instance-0000000a</name>
            <uuid>11111111-2222-4333-8444-555555555555</uuid>
            <metadata><os:instance xmlns:os="http://openstack.org/xmlns/libvirt/nova/1.0">
              <os:name>db-1</os:name></os:instance></metadata></domain>"#;
        let ownership = nova_ownership_from_domain_xml(older).expect("claimed by Nova");
        assert_eq!(ownership.server_id, "11111111-2222-4333-8444-555555555555");
        assert_eq!(ownership.server_name.as_deref(), Some("db-1"));
        assert_eq!(ownership.flavor_name, None);
        // An `instance` element of another application's namespace claims nothing.
        let other = r#"<domain><uuid>11111111-2222-4333-8444-555555555555</uuid>
            <metadata><nova:instance xmlns:nova="http://example.org/not-nova/1.1">
              <nova:name>x</nova:name></nova:instance></metadata></domain>"#;
        assert_eq!(nova_ownership_from_domain_xml(other), None);
    }

    #[test]
    fn plain_libvirt_guests_and_bad_xml_are_nobody_s() {
        assert_eq!(nova_ownership_from_domain_xml(LAB_DISK_GUEST_XML), None);
        assert_eq!(nova_ownership_from_domain_xml("<domain"), None);
        assert_eq!(
            nova_ownership_from_domain_xml("<domain><metadata/></domain>"),
            None
        );
    }
}
