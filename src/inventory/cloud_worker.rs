//! The inventory's side that waits on Nova: one tokio task per `[[clouds]]` entry that logs in,
//! keeps the connection (the door renews its token), reads hypervisors, compute services and
//! servers of all projects every refresh interval, and logs in again with backoff after a
//! failure. Every door call runs under the call timeout as well as the door's own request
//! timeout: a cloud that does not answer costs its own task time, never a libvirt host's or
//! the UI's.

use std::time::{Duration, Instant, SystemTime};

use crate::config::{CloudEntry, Config};
use crate::nova::{load_cloud, CloudSelection, NovaClient};

use super::worker::{reconnect_delay, WorkerSettings};
use super::{CloudReading, InventoryEvent};

/// Runs one door call under `call_timeout`; the error text is what the operator reads.
async fn bounded<T>(
    cloud: &str,
    what: &str,
    call_timeout: Duration,
    call: impl std::future::Future<Output = Result<T, crate::nova::NovaError>>,
) -> Result<T, String> {
    match tokio::time::timeout(call_timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "cloud {cloud}: {what}: no answer within {call_timeout:?}: the cloud is \
             overloaded or cut off (raise call_timeout_seconds if it is only slow)"
        )),
    }
}

/// Logs in to the cloud of a `[[clouds]]` entry, under the call timeout.
pub async fn connect_cloud(
    entry: &CloudEntry,
    call_timeout: Duration,
) -> Result<NovaClient, String> {
    let profile =
        load_cloud(&CloudSelection::for_entry(entry)).map_err(|error| error.to_string())?;
    bounded(
        &entry.name,
        "log in",
        call_timeout,
        NovaClient::connect(profile),
    )
    .await
}

/// Reads the cloud's hypervisors, compute services and servers, all three at once.
pub async fn read_cloud(
    client: &NovaClient,
    call_timeout: Duration,
) -> Result<CloudReading, String> {
    let cloud = client.cloud_name();
    let (hypervisors, services, servers) = tokio::join!(
        bounded(
            cloud,
            "list hypervisors",
            call_timeout,
            client.hypervisors()
        ),
        bounded(
            cloud,
            "list compute services",
            call_timeout,
            client.compute_services()
        ),
        bounded(
            cloud,
            "list servers of all projects",
            call_timeout,
            client.servers_all_projects()
        ),
    );
    Ok(CloudReading {
        hypervisors: hypervisors?,
        services: services?,
        servers: servers?,
    })
}

/// Starts one task per `[[clouds]]` entry on the shared runtime (see `worker::spawn_workers`).
pub fn spawn_cloud_workers<F>(config: &Config, sink: F)
where
    F: Fn(InventoryEvent) -> bool + Send + Sync + Clone + 'static,
{
    let settings = WorkerSettings::from_config(config);
    let runtime = crate::runtime::handle();
    for cloud in &config.clouds {
        runtime.spawn(run_cloud_worker(cloud.clone(), settings, sink.clone()));
    }
}

async fn run_cloud_worker<F>(entry: CloudEntry, settings: WorkerSettings, sink: F)
where
    F: Fn(InventoryEvent) -> bool,
{
    let mut client: Option<NovaClient> = None;
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        if client.is_none()
            && !sink(InventoryEvent::CloudConnecting {
                cloud: entry.name.clone(),
                attempt: failures,
                at: SystemTime::now(),
            })
        {
            return;
        }
        let reading = match &client {
            Some(open) => read_cloud(open, settings.call_timeout).await,
            None => match connect_cloud(&entry, settings.call_timeout).await {
                Ok(opened) => {
                    let reading = read_cloud(&opened, settings.call_timeout).await;
                    client = Some(opened);
                    reading
                }
                Err(error) => Err(error),
            },
        };
        match reading {
            Ok(reading) => {
                failures = 0;
                let alive = sink(InventoryEvent::CloudRefreshed {
                    cloud: entry.name.clone(),
                    reading,
                    at: SystemTime::now(),
                    took: started.elapsed(),
                });
                if !alive {
                    return;
                }
                tokio::time::sleep(settings.refresh_interval.saturating_sub(started.elapsed()))
                    .await;
            }
            Err(error) => {
                tracing::warn!("{error}");
                // Log in afresh next time: a refused password or a lost endpoint may have
                // been fixed, and a fresh login says so.
                client = None;
                // Never sooner than the refresh interval: a refused password retried every
                // second would only fill Keystone's log.
                let retry_in = reconnect_delay(failures, settings.reconnect_delay_cap)
                    .max(settings.refresh_interval);
                failures = failures.saturating_add(1);
                let alive = sink(InventoryEvent::CloudUnreachable {
                    cloud: entry.name.clone(),
                    error,
                    at: SystemTime::now(),
                    retry_in,
                });
                if !alive {
                    return;
                }
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// One reading of a cloud for the scriptable CLI.
pub async fn read_cloud_once(entry: CloudEntry, call_timeout: Duration) -> InventoryEvent {
    let started = Instant::now();
    let reading = match connect_cloud(&entry, call_timeout).await {
        Ok(client) => read_cloud(&client, call_timeout).await,
        Err(error) => Err(error),
    };
    match reading {
        Ok(reading) => InventoryEvent::CloudRefreshed {
            cloud: entry.name,
            reading,
            at: SystemTime::now(),
            took: started.elapsed(),
        },
        Err(error) => InventoryEvent::CloudUnreachable {
            cloud: entry.name,
            error,
            at: SystemTime::now(),
            retry_in: Duration::ZERO,
        },
    }
}
