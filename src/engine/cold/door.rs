//! TRANSITIONAL: the libvirt door operations the cold engine needs that are still synchronous
//! in a file another branch of issue 12 converts to `async fn` under the same names
//! (`domain_presence`, `request_shutdown`, `power_off`, `start_domain`,
//! `domain_definition_xml`, `define_domain`, `undefine_domain` and `remove_domain_copy` in
//! `libvirt/lifecycle.rs`). Opening a connection, the host facts and the domain list are
//! async in the door already and only pass through here, so that the engine has one path.
//!
//! Until that lands, each is called here, and only here, on tokio's blocking pool, so that no
//! runtime worker waits on libvirt. At the merge every wrapper becomes
//! `connection.method(..).await` (or the callers call the door directly) and this file goes.
//! The volume operations need no wrapper: `libvirt/volume_copy.rs` is async already.

use std::time::Duration;

use crate::libvirt::lifecycle::{DomainKey, DomainPresence};
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::domain::{DomainFacts, HostFacts};

/// The one place the synchronous door calls leave the runtime's workers.
async fn off_worker<T: Send + 'static>(
    what: &str,
    call: impl FnOnce() -> Result<T, LibvirtError> + Send + 'static,
) -> Result<T, LibvirtError> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|join_error| {
            Err(LibvirtError::Call {
                context: what.to_string(),
                message: format!("the libvirt worker failed: {join_error}"),
            })
        })
}

pub(super) async fn open(uri: &str, timeout: Duration) -> Result<HostConnection, LibvirtError> {
    HostConnection::connect(uri, timeout).await
}

pub(super) async fn host_facts(
    connection: &HostConnection,
    timeout: Duration,
) -> Result<HostFacts, LibvirtError> {
    connection.host_facts(timeout).await
}

pub(super) async fn domains(
    connection: &HostConnection,
    timeout: Duration,
) -> Result<Vec<DomainFacts>, LibvirtError> {
    connection.domains(timeout).await
}

pub(super) async fn domain_presence(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<Option<DomainPresence>, LibvirtError> {
    let (connection, key) = (connection.clone(), key.clone());
    off_worker("looking up a domain", move || {
        connection.domain_presence(&key, timeout)
    })
    .await
}

pub(super) async fn request_shutdown(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<(), LibvirtError> {
    let (connection, key) = (connection.clone(), key.clone());
    off_worker("asking to shut down", move || {
        connection.request_shutdown(&key, timeout)
    })
    .await
}

pub(super) async fn power_off(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<(), LibvirtError> {
    let (connection, key) = (connection.clone(), key.clone());
    off_worker("powering off", move || connection.power_off(&key, timeout)).await
}

pub(super) async fn start_domain(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<(), LibvirtError> {
    let (connection, key) = (connection.clone(), key.clone());
    off_worker("starting", move || connection.start_domain(&key, timeout)).await
}

pub(super) async fn domain_definition_xml(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<String, LibvirtError> {
    let (connection, key) = (connection.clone(), key.clone());
    off_worker("reading a definition", move || {
        connection.domain_definition_xml(&key, timeout)
    })
    .await
}

pub(super) async fn define_domain(
    connection: &HostConnection,
    xml: &str,
    timeout: Duration,
) -> Result<DomainPresence, LibvirtError> {
    let (connection, xml) = (connection.clone(), xml.to_string());
    off_worker("defining a domain", move || {
        connection.define_domain(&xml, timeout)
    })
    .await
}

pub(super) async fn undefine_domain(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<(), LibvirtError> {
    let (connection, key) = (connection.clone(), key.clone());
    off_worker("undefining", move || {
        connection.undefine_domain(&key, timeout)
    })
    .await
}

pub(super) async fn remove_domain_copy(
    connection: &HostConnection,
    key: &DomainKey,
    timeout: Duration,
) -> Result<Vec<String>, LibvirtError> {
    let (connection, key) = (connection.clone(), key.clone());
    off_worker("removing a domain copy", move || {
        connection.remove_domain_copy(&key, timeout)
    })
    .await
}
