//! Provisioning a host for the lab and the tests: its directory storage pools, and guests
//! looked up, defined and started by name. Typed async operations on `HostConnection`; the
//! lab (synchronous CLI code) runs them with `crate::runtime::wait`.

use std::time::Duration;

use virt::error::ErrorNumber;

use super::storage::dir_pool_xml;
use super::{HostConnection, LibvirtError};

/// A directory storage pool a host must have: defined, running and started at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPool {
    pub name: String,
    pub path: String,
}

impl HostConnection {
    /// Defines each pool the host lacks, starts each inactive one, marks them autostart and
    /// refreshes them (files written behind libvirt's back become volumes). Idempotent.
    pub async fn ensure_directory_pools(
        &self,
        pools: &[DirectoryPool],
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        let pools = pools.to_vec();
        self.run("ensuring storage pools", timeout, move |connect| {
            for DirectoryPool { name, path } in &pools {
                let pool = match connect.lookup_storage_pool_by_name(name) {
                    Ok(pool) => pool,
                    Err(_) => connect
                        .define_storage_pool_xml(&dir_pool_xml(name, path), 0)
                        .map_err(|e| LibvirtError::call(format!("defining pool {name}"), e))?,
                };
                if !pool.is_active().unwrap_or(false) {
                    pool.create(0)
                        .map_err(|e| LibvirtError::call(format!("starting pool {name}"), e))?;
                }
                // Best effort: a pool that runs is what the lab needs; autostart and a fresh
                // volume list only spare a later refresh.
                let _ = pool.set_autostart(true);
                let _ = pool.refresh(0);
            }
            Ok(())
        })
        .await
    }

    /// Whether the guest named `name` runs here: None when the host has no such guest.
    pub async fn guest_is_active(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<bool>, LibvirtError> {
        let name = name.to_string();
        self.run(
            format!("looking up guest {name}"),
            timeout,
            move |connect| match connect.lookup_domain_by_name(&name) {
                Ok(domain) => domain
                    .is_active()
                    .map(Some)
                    .map_err(|e| LibvirtError::call(format!("reading guest {name}"), e)),
                Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(None),
                Err(error) => Err(LibvirtError::call(
                    format!("looking up guest {name}"),
                    error,
                )),
            },
        )
        .await
    }

    /// Defines a guest from `xml` after refreshing `disk_pool`, so that a disk file just
    /// written into the pool's directory is a volume libvirt knows.
    pub async fn define_guest(
        &self,
        disk_pool: &str,
        xml: &str,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        let disk_pool = disk_pool.to_string();
        let xml = xml.to_string();
        self.run("defining guest", timeout, move |connect| {
            if let Ok(pool) = connect.lookup_storage_pool_by_name(&disk_pool) {
                let _ = pool.refresh(0);
            }
            connect
                .define_domain_xml(&xml)
                .map(|_| ())
                .map_err(|e| LibvirtError::call("defining guest", e))
        })
        .await
    }

    /// Starts the defined guest named `name`.
    pub async fn start_guest(&self, name: &str, timeout: Duration) -> Result<(), LibvirtError> {
        let name = name.to_string();
        self.run(format!("starting guest {name}"), timeout, move |connect| {
            let domain = connect
                .lookup_domain_by_name(&name)
                .map_err(|e| LibvirtError::call(format!("looking up {name}"), e))?;
            domain
                .create()
                .map(|_| ())
                .map_err(|e| LibvirtError::call(format!("starting {name}"), e))
        })
        .await
    }

    /// Starts a transient guest from `xml`: it vanishes when it stops.
    pub async fn start_transient_guest(
        &self,
        xml: &str,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        let xml = xml.to_string();
        self.run("starting a transient guest", timeout, move |connect| {
            connect
                .create_domain_xml(&xml, 0)
                .map(|_| ())
                .map_err(|e| LibvirtError::call("creating the transient guest", e))
        })
        .await
    }
}
