//! The refusal to move a Nova-managed domain through libvirt. Nova records each server's host
//! in its database and acts on that record (rebuilds, resizes, evacuations, its own
//! migrations, the resource claims of the scheduler); a domain moved behind its back leaves the
//! record wrong, so ferry sends the operator to Nova instead. Pure: the engine hands in the
//! metadata read from the domain and the config's `[[clouds]]`.

use crate::config::CloudEntry;
use crate::model::domain::NovaOwnership;

/// Which cloud to name in "migrate it through Nova", as far as the config tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NovaCloudHint {
    /// This `[[clouds]]` entry lists the host among its compute hosts.
    Known(String),
    /// No entry lists the host; these are the clouds configured.
    Configured(Vec<String>),
    /// The config has no `[[clouds]]` entry.
    NoneConfigured,
}

impl NovaCloudHint {
    /// The cloud whose `compute_libvirt_uris` lists `host` (by Nova's host name, or by the
    /// same libvirt URI), else every configured cloud.
    pub fn for_host(clouds: &[CloudEntry], host: &str, host_uri: &str) -> NovaCloudHint {
        let lists_host = clouds.iter().find(|cloud| {
            cloud
                .compute_libvirt_uris
                .iter()
                .any(|(compute, uri)| compute.eq_ignore_ascii_case(host) || uri == host_uri)
        });
        match lists_host {
            Some(cloud) => NovaCloudHint::Known(cloud.name.clone()),
            None if clouds.is_empty() => NovaCloudHint::NoneConfigured,
            None => NovaCloudHint::Configured(clouds.iter().map(|c| c.name.clone()).collect()),
        }
    }
}

/// A libvirt-backend migration refused because Nova manages the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NovaManagedRefusal {
    /// The domain's libvirt name (`instance-00000001`).
    pub instance: String,
    /// The host that defines it.
    pub host: String,
    pub nova: NovaOwnership,
    pub cloud: NovaCloudHint,
}

impl std::fmt::Display for NovaManagedRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let NovaManagedRefusal {
            instance,
            host,
            nova,
            cloud,
        } = self;
        let server = match (&nova.server_name, &nova.project_name) {
            (Some(name), Some(project)) => {
                format!("server {name}, {}, project {project}", nova.server_id)
            }
            (Some(name), None) => format!("server {name}, {}", nova.server_id),
            (None, Some(project)) => format!("server {}, project {project}", nova.server_id),
            (None, None) => format!("server {}", nova.server_id),
        };
        let id = &nova.server_id;
        write!(
            f,
            "{instance} on {host} is managed by OpenStack Nova ({server}): moving it with \
             libvirt would leave Nova's database placing it on {host}. Migrate it through Nova: "
        )?;
        match cloud {
            NovaCloudHint::Known(cloud) => write!(f, "ferry migrate {id} --cloud {cloud}"),
            NovaCloudHint::Configured(clouds) => match clouds.as_slice() {
                [only] => write!(
                    f,
                    "ferry migrate {id} --cloud {only} (the only cloud configured)"
                ),
                _ => write!(
                    f,
                    "ferry migrate {id} --cloud CLOUD, CLOUD being its cloud among those \
                     configured ({}); no [[clouds]] entry lists {host} among its compute hosts",
                    clouds.join(", ")
                ),
            },
            NovaCloudHint::NoneConfigured => write!(
                f,
                "add a [[clouds]] entry for its cloud to the config, then ferry migrate {id} \
                 --cloud CLOUD"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::libvirt::nova_metadata::nova_ownership_from_domain_xml;

    const NOVA_26_DOMAIN_XML: &str = include_str!("../../tests/fixtures/nova_26_domain.xml");
    const HV1_URI: &str = "qemu+ssh://root@hv1/system";

    fn config_with_clouds(clouds: &str) -> Config {
        let text = format!(
            "[[hosts]]\nname = 'hv1'\nuri = '{HV1_URI}'\n[[hosts]]\nname = 'hv2'\n\
             uri = 'qemu+ssh://root@hv2/system'\n{clouds}"
        );
        Config::parse(&text, std::path::Path::new("c.toml")).expect("a valid config")
    }

    fn refusal(config: &Config) -> String {
        NovaManagedRefusal {
            instance: "instance-00000001".into(),
            host: "hv1".into(),
            nova: nova_ownership_from_domain_xml(NOVA_26_DOMAIN_XML).expect("Nova's domain"),
            cloud: NovaCloudHint::for_host(&config.clouds, "hv1", HV1_URI),
        }
        .to_string()
    }

    const WHY: &str = "instance-00000001 on hv1 is managed by OpenStack Nova (server web-1, \
                       5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13, project demo): moving it with \
                       libvirt would leave Nova's database placing it on hv1. Migrate it \
                       through Nova: ";

    #[test]
    fn the_cloud_listing_the_host_is_named() {
        let by_name = config_with_clouds(
            "[[clouds]]\nname = 'other'\n[[clouds]]\nname = 'ferry-lab'\n\
             [clouds.compute_libvirt_uris]\nHV1 = 'qemu+ssh://root@10.77.0.11/system'\n",
        );
        assert_eq!(
            refusal(&by_name),
            format!("{WHY}ferry migrate 5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13 --cloud ferry-lab")
        );
        // Listed under Nova's own name for the host, with the same URI.
        let by_uri = config_with_clouds(&format!(
            "[[clouds]]\nname = 'prod'\n[clouds.compute_libvirt_uris]\n\
             'compute-01.example.org' = '{HV1_URI}'\n"
        ));
        assert_eq!(
            NovaCloudHint::for_host(&by_uri.clouds, "hv1", HV1_URI),
            NovaCloudHint::Known("prod".into())
        );
    }

    #[test]
    fn without_a_cloud_listing_the_host_the_configured_ones_are_offered() {
        let one = config_with_clouds("[[clouds]]\nname = 'ferry-lab'\n");
        assert_eq!(
            refusal(&one),
            format!(
                "{WHY}ferry migrate 5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13 --cloud ferry-lab (the \
                 only cloud configured)"
            )
        );
        let two = config_with_clouds("[[clouds]]\nname = 'east'\n[[clouds]]\nname = 'west'\n");
        assert_eq!(
            refusal(&two),
            format!(
                "{WHY}ferry migrate 5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13 --cloud CLOUD, CLOUD \
                 being its cloud among those configured (east, west); no [[clouds]] entry lists \
                 hv1 among its compute hosts"
            )
        );
        assert_eq!(
            refusal(&config_with_clouds("")),
            format!(
                "{WHY}add a [[clouds]] entry for its cloud to the config, then ferry migrate \
                 5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13 --cloud CLOUD"
            )
        );
    }

    #[test]
    fn a_server_without_a_name_is_named_by_its_id() {
        let nova = NovaOwnership {
            server_id: "11111111-2222-4333-8444-555555555555".into(),
            server_name: None,
            project_name: None,
            project_id: None,
            flavor_name: None,
            nova_version: None,
        };
        let text = NovaManagedRefusal {
            instance: "instance-0000000a".into(),
            host: "hv2".into(),
            nova,
            cloud: NovaCloudHint::Known("ferry-lab".into()),
        }
        .to_string();
        assert!(
            text.starts_with(
                "instance-0000000a on hv2 is managed by OpenStack Nova (server \
                 11111111-2222-4333-8444-555555555555): "
            ),
            "{text}"
        );
    }
}
