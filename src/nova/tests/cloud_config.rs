use std::path::PathBuf;
use std::time::Duration;

use super::FakeSources;
use crate::config::CloudEntry;
use crate::nova::cloud_config::{
    clouds_yaml_candidates, load_cloud_from, ApplicationCredentialRef, AuthMethod, CloudSelection,
    DomainRef, Interface, ProjectScope, Secret, UserRef, DEFAULT_REQUEST_TIMEOUT,
};

/// The clouds.yaml `ferry lab up --nova` writes.
const LAB_CLOUDS_YAML: &str = "\
# The ferry lab's OpenStack cloud (written by `ferry lab up --nova`).
clouds:
  ferry-lab:
    auth:
      auth_url: http://10.77.0.10:5000/v3
      username: admin
      password: ferry-lab-secret
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  ferry-lab-member:
    auth:
      auth_url: http://10.77.0.10:5000/v3
      username: demo
      password: ferry-lab-secret
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
";

fn named(name: &str) -> CloudSelection {
    CloudSelection {
        name: Some(name.to_string()),
        clouds_yaml: None,
    }
}

fn error_text(selection: &CloudSelection, sources: &FakeSources) -> String {
    load_cloud_from(selection, sources)
        .expect_err("the config should be refused")
        .to_string()
}

#[test]
fn the_labs_clouds_yaml_gives_a_project_scoped_password_profile() {
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", LAB_CLOUDS_YAML);
    let profile = load_cloud_from(&named("ferry-lab"), &sources).unwrap();
    assert_eq!(profile.name, "ferry-lab");
    assert_eq!(profile.origin, "/etc/openstack/clouds.yaml");
    assert_eq!(profile.auth_url, "http://10.77.0.10:5000/v3");
    assert_eq!(
        profile.auth,
        AuthMethod::Password {
            user: UserRef::Name {
                name: "admin".into(),
                domain: DomainRef::Name("Default".into()),
            },
            password: Secret::new("ferry-lab-secret"),
            project: ProjectScope::Name {
                name: "admin".into(),
                domain: DomainRef::Name("Default".into()),
            },
        }
    );
    assert_eq!(profile.region_name.as_deref(), Some("RegionOne"));
    assert_eq!(profile.interface, Interface::Public);
    assert!(profile.verify);
    assert_eq!(profile.cacert, None);
    assert_eq!(profile.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    assert!(!format!("{profile:?}").contains("ferry-lab-secret"));
}

#[test]
fn lookup_follows_openstacksdks_order() {
    let sources = FakeSources::new()
        .var("HOME", "/home/op")
        .var("OS_CLIENT_CONFIG_FILE", "/srv/my-clouds.yaml");
    let candidates = clouds_yaml_candidates(&sources);
    let expected: Vec<PathBuf> = [
        "/srv/my-clouds.yaml",
        "/work/here/clouds.yaml",
        "/work/here/clouds.yml",
        "/home/op/.config/openstack/clouds.yaml",
        "/home/op/.config/openstack/clouds.yml",
        "/etc/openstack/clouds.yaml",
        "/etc/openstack/clouds.yml",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(candidates, expected);

    let with_xdg = FakeSources::new()
        .var("HOME", "/home/op")
        .var("XDG_CONFIG_HOME", "/xdg");
    assert_eq!(
        clouds_yaml_candidates(&with_xdg)[2],
        PathBuf::from("/xdg/openstack/clouds.yaml")
    );
}

#[test]
fn the_current_directorys_clouds_yaml_wins_over_the_users_and_etc() {
    let cloud = |url: &str| {
        format!("clouds:\n  c:\n    auth:\n      auth_url: {url}\n      username: u\n      password: p\n      project_id: p1\n      user_domain_id: default\n")
    };
    let sources = FakeSources::new()
        .var("HOME", "/home/op")
        .file("/etc/openstack/clouds.yaml", &cloud("http://etc:5000"))
        .file(
            "/home/op/.config/openstack/clouds.yaml",
            &cloud("http://user:5000"),
        )
        .file("/work/here/clouds.yaml", &cloud("http://cwd:5000"));
    assert_eq!(
        load_cloud_from(&named("c"), &sources).unwrap().auth_url,
        "http://cwd:5000"
    );
    let sources = FakeSources {
        current_dir: None,
        ..sources
    };
    assert_eq!(
        load_cloud_from(&named("c"), &sources).unwrap().auth_url,
        "http://user:5000"
    );
}

#[test]
fn secure_yaml_adds_the_password_beside_clouds_yaml() {
    let clouds = "clouds:\n  prod:\n    auth:\n      auth_url: https://keystone.example:5000\n      username: ops\n      user_domain_name: Default\n      project_name: ops\n      project_domain_name: Default\n    region_name: RegionTwo\n";
    let secure = "clouds:\n  prod:\n    auth:\n      password: s3cret\n";
    let sources = FakeSources::new()
        .var("HOME", "/home/op")
        .file("/home/op/.config/openstack/clouds.yaml", clouds)
        .file("/etc/openstack/secure.yaml", secure);
    let profile = load_cloud_from(&named("prod"), &sources).unwrap();
    let AuthMethod::Password { password, .. } = &profile.auth else {
        panic!("expected a password login: {:?}", profile.auth);
    };
    assert_eq!(password.expose(), "s3cret");
    assert_eq!(profile.region_name.as_deref(), Some("RegionTwo"));
}

#[test]
fn an_unknown_cloud_is_refused_naming_the_file_and_the_clouds_there() {
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", LAB_CLOUDS_YAML);
    let text = error_text(&named("x"), &sources);
    assert!(
        text.contains(
            "cloud 'x' not found in /etc/openstack/clouds.yaml; clouds there: ferry-lab, ferry-lab-member"
        ),
        "{text}"
    );
}

#[test]
fn a_missing_password_names_the_key_and_where_to_put_it() {
    let yaml = LAB_CLOUDS_YAML.replace("      password: ferry-lab-secret\n", "");
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", &yaml);
    let text = error_text(&named("ferry-lab"), &sources);
    assert!(
        text.contains("cloud 'ferry-lab' in /etc/openstack/clouds.yaml: auth.password is missing"),
        "{text}"
    );
    assert!(text.contains("secure.yaml"), "{text}");
}

#[test]
fn a_project_name_without_its_domain_is_refused() {
    let yaml = LAB_CLOUDS_YAML.replace("      project_domain_name: Default\n", "");
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", &yaml);
    let text = error_text(&named("ferry-lab"), &sources);
    assert!(
        text.contains("auth.project_domain_name is missing"),
        "{text}"
    );
}

#[test]
fn the_shared_domain_name_fills_both_domains() {
    let yaml = "clouds:\n  c:\n    auth:\n      auth_url: http://k:5000/v3\n      username: u\n      password: p\n      project_name: p\n      domain_name: Lab\n";
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", yaml);
    let profile = load_cloud_from(&named("c"), &sources).unwrap();
    let AuthMethod::Password { user, project, .. } = profile.auth else {
        panic!("expected a password login");
    };
    assert_eq!(
        user,
        UserRef::Name {
            name: "u".into(),
            domain: DomainRef::Name("Lab".into())
        }
    );
    assert_eq!(
        project,
        ProjectScope::Name {
            name: "p".into(),
            domain: DomainRef::Name("Lab".into())
        }
    );
}

#[test]
fn an_application_credential_needs_no_project() {
    let yaml = "clouds:\n  ci:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: http://k:5000\n      application_credential_id: 0123abcd\n      application_credential_secret: shh\n    verify: false\n    api_timeout: 40\n";
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", yaml);
    let profile = load_cloud_from(&named("ci"), &sources).unwrap();
    assert_eq!(
        profile.auth,
        AuthMethod::ApplicationCredential {
            credential: ApplicationCredentialRef::Id("0123abcd".into()),
            secret: Secret::new("shh"),
        }
    );
    assert!(!profile.verify);
    assert_eq!(profile.request_timeout, Duration::from_secs(40));
}

#[test]
fn an_unsupported_auth_type_is_refused_with_the_supported_ones() {
    let yaml = LAB_CLOUDS_YAML.replacen(
        "    auth:\n",
        "    auth_type: v3oidcpassword\n    auth:\n",
        1,
    );
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", &yaml);
    let text = error_text(&named("ferry-lab"), &sources);
    assert!(
        text.contains("auth_type 'v3oidcpassword' is not supported"),
        "{text}"
    );
    assert!(text.contains("v3applicationcredential"), "{text}");
}

#[test]
fn cacert_is_read_and_a_missing_one_is_named() {
    let yaml = LAB_CLOUDS_YAML.replacen(
        "    region_name: RegionOne\n",
        "    region_name: RegionOne\n    cacert: ~/ca.pem\n",
        1,
    );
    let sources = FakeSources::new()
        .var("HOME", "/home/op")
        .file("/etc/openstack/clouds.yaml", &yaml);
    let text = error_text(&named("ferry-lab"), &sources);
    assert!(
        text.contains("cacert names /home/op/ca.pem, which does not exist"),
        "{text}"
    );
    let sources = sources.file("/home/op/ca.pem", "-----BEGIN CERTIFICATE-----\n");
    let profile = load_cloud_from(&named("ferry-lab"), &sources).unwrap();
    let cacert = profile.cacert.expect("the cacert is read");
    assert_eq!(cacert.path, PathBuf::from("/home/op/ca.pem"));
    assert_eq!(cacert.pem, b"-----BEGIN CERTIFICATE-----\n");
}

#[test]
fn a_bad_interface_or_timeout_names_the_key() {
    let yaml = LAB_CLOUDS_YAML.replacen("interface: public", "interface: external", 1);
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", &yaml);
    assert!(error_text(&named("ferry-lab"), &sources)
        .contains("interface is 'external': use public, internal or admin"));
    let yaml = LAB_CLOUDS_YAML.replacen("interface: public", "api_timeout: soon", 1);
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", &yaml);
    assert!(error_text(&named("ferry-lab"), &sources).contains("api_timeout is 'soon'"));
}

#[test]
fn invalid_yaml_names_the_file() {
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", "clouds: [unclosed");
    let text = error_text(&named("ferry-lab"), &sources);
    assert!(
        text.starts_with("/etc/openstack/clouds.yaml is not valid YAML"),
        "{text}"
    );
}

fn openrc() -> FakeSources {
    FakeSources::new()
        .var("OS_AUTH_URL", "http://10.77.0.10:5000")
        .var("OS_USERNAME", "admin")
        .var("OS_PASSWORD", "pw")
        .var("OS_PROJECT_NAME", "admin")
        .var("OS_USER_DOMAIN_NAME", "Default")
        .var("OS_PROJECT_DOMAIN_NAME", "Default")
        .var("OS_REGION_NAME", "RegionOne")
        .var("OS_INTERFACE", "internal")
}

#[test]
fn the_os_variables_make_a_cloud_when_no_clouds_yaml_exists() {
    let profile = load_cloud_from(&CloudSelection::default(), &openrc()).unwrap();
    assert_eq!(profile.name, "envvars");
    assert_eq!(profile.origin, "the OS_* variables");
    assert_eq!(profile.auth_url, "http://10.77.0.10:5000");
    assert_eq!(profile.interface, Interface::Internal);
    assert_eq!(profile.region_name.as_deref(), Some("RegionOne"));
    let AuthMethod::Password { password, .. } = &profile.auth else {
        panic!("expected a password login");
    };
    assert_eq!(password.expose(), "pw");

    // A ferry config naming a cloud, with an openrc sourced and no clouds.yaml anywhere.
    let profile = load_cloud_from(&named("prod"), &openrc()).unwrap();
    assert_eq!(profile.name, "prod");
    assert_eq!(profile.origin, "the OS_* variables");
}

#[test]
fn the_os_variables_give_an_application_credential_and_name_missing_ones() {
    let sources = FakeSources::new()
        .var("OS_AUTH_URL", "http://k:5000/v3")
        .var("OS_AUTH_TYPE", "v3applicationcredential")
        .var("OS_APPLICATION_CREDENTIAL_ID", "id1")
        .var("OS_APPLICATION_CREDENTIAL_SECRET", "s")
        .var("OS_CACERT", "/etc/ssl/lab-ca.pem")
        .file("/etc/ssl/lab-ca.pem", "PEM");
    let profile = load_cloud_from(&CloudSelection::default(), &sources).unwrap();
    assert!(matches!(
        profile.auth,
        AuthMethod::ApplicationCredential {
            credential: ApplicationCredentialRef::Id(ref id),
            ..
        } if id == "id1"
    ));
    assert_eq!(profile.cacert.unwrap().pem, b"PEM");

    let sources = openrc().var("OS_PASSWORD", "");
    let text = error_text(&CloudSelection::default(), &sources);
    assert!(text.contains("OS_PASSWORD is missing"), "{text}");
}

#[test]
fn a_named_cloud_with_nothing_configured_says_where_it_looked() {
    let sources = FakeSources::new().var("HOME", "/home/op");
    let text = error_text(&named("prod"), &sources);
    assert!(text.contains("cloud 'prod' not found"), "{text}");
    assert!(
        text.contains("/home/op/.config/openstack/clouds.yaml"),
        "{text}"
    );
    assert!(text.contains("OS_AUTH_URL is not set"), "{text}");
}

#[test]
fn with_no_name_the_only_cloud_is_taken_and_several_are_refused() {
    let one = "clouds:\n  solo:\n    auth:\n      auth_url: http://k:5000/v3\n      user_id: u1\n      password: p\n      project_id: p1\n";
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", one);
    assert_eq!(
        load_cloud_from(&CloudSelection::default(), &sources)
            .unwrap()
            .name,
        "solo"
    );
    let sources = FakeSources::new().file("/etc/openstack/clouds.yaml", LAB_CLOUDS_YAML);
    let text = error_text(&CloudSelection::default(), &sources);
    assert!(text.contains("holds ferry-lab, ferry-lab-member"), "{text}");
}

#[test]
fn the_selection_prefers_the_flag_then_os_cloud_then_the_config_entry() {
    let entry = CloudEntry {
        name: "ferry-lab".to_string(),
        clouds_yaml: Some(PathBuf::from("/var/lib/ferry-lab/clouds.yaml")),
        compute_libvirt_uris: Default::default(),
    };
    let quiet = FakeSources::new();
    let with_os_cloud = FakeSources::new().var("OS_CLOUD", "other");
    assert_eq!(
        CloudSelection::choose(None, Some(&entry), &quiet),
        CloudSelection {
            name: Some("ferry-lab".into()),
            clouds_yaml: Some(PathBuf::from("/var/lib/ferry-lab/clouds.yaml")),
        }
    );
    assert_eq!(
        CloudSelection::choose(None, Some(&entry), &with_os_cloud),
        named("other")
    );
    assert_eq!(
        CloudSelection::choose(Some("flagged"), Some(&entry), &with_os_cloud),
        named("flagged")
    );
    assert_eq!(
        CloudSelection::for_entry(&entry).name.as_deref(),
        Some("ferry-lab")
    );
}

#[test]
fn the_config_entrys_clouds_yaml_is_read_and_a_missing_one_named() {
    let selection = CloudSelection {
        name: Some("ferry-lab".into()),
        clouds_yaml: Some(PathBuf::from("/var/lib/ferry-lab/clouds.yaml")),
    };
    // The usual places hold another ferry-lab: the named file wins.
    let elsewhere = LAB_CLOUDS_YAML.replace("10.77.0.10", "192.0.2.99");
    let sources = FakeSources::new()
        .file("/work/here/clouds.yaml", &elsewhere)
        .file("/var/lib/ferry-lab/clouds.yaml", LAB_CLOUDS_YAML);
    let profile = load_cloud_from(&selection, &sources).unwrap();
    assert_eq!(profile.auth_url, "http://10.77.0.10:5000/v3");
    assert_eq!(profile.origin, "/var/lib/ferry-lab/clouds.yaml");

    let text = error_text(&selection, &FakeSources::new());
    assert!(
        text.contains("clouds_yaml /var/lib/ferry-lab/clouds.yaml but there is no such file"),
        "{text}"
    );
}
