//! Unit tests of the Nova door on recorded answers: the `fixtures/` files marked `2.87`,
//! `2.88`, `keystone_token_admin`, `os_services`, `placement_*` and `compute_version*` were
//! recorded from the lab's Nova 26.2.2 (Zed); the servers, migrations, instance-action and
//! flavor bodies were written from the Zed api-ref, since the lab cloud had none yet.

mod auth_and_versions;
mod cloud_config;
mod loopback;
mod responses;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::cloud_config::{AuthMethod, ConfigSources, DomainRef, ProjectScope, Secret, UserRef};

/// `admin` in domain `Default` with password `pw`, scoped to project `admin` in the domain
/// given by `project_domain`.
pub(super) fn admin_password(project_domain: DomainRef) -> AuthMethod {
    AuthMethod::Password {
        user: UserRef::Name {
            name: "admin".into(),
            domain: DomainRef::Name("Default".into()),
        },
        password: Secret::new("pw"),
        project: ProjectScope::Name {
            name: "admin".into(),
            domain: project_domain,
        },
    }
}

/// A recorded environment and file system.
#[derive(Default)]
pub(super) struct FakeSources {
    pub vars: HashMap<String, String>,
    pub files: HashMap<PathBuf, String>,
    pub current_dir: Option<PathBuf>,
}

impl FakeSources {
    pub fn new() -> FakeSources {
        FakeSources {
            current_dir: Some(PathBuf::from("/work/here")),
            ..FakeSources::default()
        }
    }

    pub fn var(mut self, name: &str, value: &str) -> FakeSources {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    pub fn file(mut self, path: &str, text: &str) -> FakeSources {
        self.files.insert(PathBuf::from(path), text.to_string());
        self
    }
}

impl ConfigSources for FakeSources {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.files.get(path).map(|text| text.as_bytes().to_vec()))
    }

    fn current_dir(&self) -> Option<PathBuf> {
        self.current_dir.clone()
    }
}
