//! Moving servers through Nova: live and cold migration, resize with confirm and revert,
//! abort and force-complete of a live migration; and what Nova records of them (migrations,
//! instance actions with their events), where its asynchronous refusals show up.
//!
//! Each call's microversion is chosen in a comment beside it: the lowest that has what the
//! call needs, or a newer one when that only adds fields parsed as `Option` (or behaviour
//! ferry relies on, said where so).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{encode_query, NovaClient};
use super::compute::BASE;
use super::error::NovaError;
use super::microversion::{Microversion, VersionNeed};
use super::types::{InstanceAction, Migration, MigrationFilter, ServerMigration};

/// `block_migration: "auto"` (and no `disk_over_commit`) exists from 2.25.
pub const LIVE_MIGRATE_AUTO: Microversion = Microversion::new(2, 25);
/// From 2.34 os-migrateLive's pre-checks run after the 202, so the call returns at once and a
/// refusal shows as migration status `error` and a failed instance-action event.
pub const LIVE_MIGRATE_ASYNC_PRECHECKS: Microversion = Microversion::new(2, 34);
/// `migrate` with a `host`.
pub const COLD_MIGRATE_TO_HOST: Microversion = Microversion::new(2, 56);
/// `GET /servers/{id}/migrations` (in-progress live migrations).
pub const SERVER_MIGRATIONS: Microversion = Microversion::new(2, 23);
/// Migration `uuid` fields, and os-migrations' `changes-since` and paging.
pub const MIGRATION_UUIDS: Microversion = Microversion::new(2, 59);
/// `DELETE /servers/{id}/migrations/{mid}` for a running live migration.
pub const ABORT_RUNNING: Microversion = Microversion::new(2, 24);
/// The same abort for a migration still `queued` or `preparing`.
pub const ABORT_QUEUED: Microversion = Microversion::new(2, 65);
/// `POST /servers/{id}/migrations/{mid}/action {"force_complete": null}`.
pub const FORCE_COMPLETE: Microversion = Microversion::new(2, 22);
/// Instance-action `updated_at` and paging.
pub const ACTION_UPDATED_AT: Microversion = Microversion::new(2, 58);
/// Instance-action events carry `details`: the failure's message (the precheck's reason).
pub const ACTION_EVENT_DETAILS: Microversion = Microversion::new(2, 84);

/// Migration statuses only 2.65's abort accepts.
const NOT_YET_RUNNING: &[&str] = &["queued", "preparing"];

impl NovaClient {
    /// `POST /servers/{id}/action` with one action; Nova answers 202 (204 for confirm).
    async fn server_action(
        &self,
        call: String,
        server_id: &str,
        need: VersionNeed,
        body: Value,
        policy: &'static str,
    ) -> Result<(), NovaError> {
        let version = self.negotiate(&call, need)?;
        let mut request = self.compute_request(
            call,
            Method::POST,
            format!("/servers/{server_id}/action"),
            version,
            policy,
        );
        request.body = Some(body);
        self.send(&request).await.map(|_| ())
    }

    /// Live-migrates a server to `host`, or where the scheduler chooses (`None`), with
    /// `block_migration: "auto"` (Nova copies the disks unless they are on shared storage).
    /// Returns when Nova has accepted it; the migration is then found with `server_migrations`.
    pub async fn live_migrate(&self, server_id: &str, host: Option<&str>) -> Result<(), NovaError> {
        let call = match host {
            Some(host) => format!("live-migrate server {server_id} to {host}"),
            None => format!("live-migrate server {server_id} (scheduler's choice)"),
        };
        // Minimum 2.25 for "auto"; preferred 2.34 for asynchronous pre-checks: below it the
        // API waits for the scheduler and the hosts' checks before answering, which can
        // outlast the request timeout while Nova goes on. `force` is never sent (2.68 refuses it).
        self.server_action(
            call,
            server_id,
            VersionNeed::between(LIVE_MIGRATE_AUTO, LIVE_MIGRATE_ASYNC_PRECHECKS),
            json!({ "os-migrateLive": { "host": host, "block_migration": "auto" } }),
            "os_compute_api:os-migrate-server:migrate_live",
        )
        .await
    }

    /// Cold-migrates a server (a resize to its own flavor) to `host` or the scheduler's
    /// choice; it ends in VERIFY_RESIZE, to be confirmed or reverted.
    pub async fn cold_migrate(&self, server_id: &str, host: Option<&str>) -> Result<(), NovaError> {
        let (call, need, body) = match host {
            // 2.56 exactly: the first version whose `migrate` takes a host.
            Some(host) => (
                format!("cold-migrate server {server_id} to {host}"),
                VersionNeed::exactly(COLD_MIGRATE_TO_HOST),
                json!({ "migrate": { "host": host } }),
            ),
            // 2.1: `{"migrate": null}` means the same in every version.
            None => (
                format!("cold-migrate server {server_id} (scheduler's choice)"),
                VersionNeed::exactly(BASE),
                json!({ "migrate": null }),
            ),
        };
        self.server_action(
            call,
            server_id,
            need,
            body,
            "os_compute_api:os-migrate-server:migrate",
        )
        .await
    }

    /// Resizes a server to another flavor (id); it ends in VERIFY_RESIZE.
    pub async fn resize(&self, server_id: &str, flavor_ref: &str) -> Result<(), NovaError> {
        // 2.1: the body has not changed since.
        self.server_action(
            format!("resize server {server_id} to flavor {flavor_ref}"),
            server_id,
            VersionNeed::exactly(BASE),
            json!({ "resize": { "flavorRef": flavor_ref } }),
            "os_compute_api:servers:resize",
        )
        .await
    }

    /// Confirms a cold migration or resize in VERIFY_RESIZE (Nova answers 204).
    pub async fn confirm_resize(&self, server_id: &str) -> Result<(), NovaError> {
        // 2.1: unchanged since.
        self.server_action(
            format!("confirm the resize of server {server_id}"),
            server_id,
            VersionNeed::exactly(BASE),
            json!({ "confirmResize": null }),
            "os_compute_api:servers:confirm_resize",
        )
        .await
    }

    /// Reverts a cold migration or resize in VERIFY_RESIZE: back on its source with its old
    /// flavor (Nova answers 202 and finishes asynchronously).
    pub async fn revert_resize(&self, server_id: &str) -> Result<(), NovaError> {
        // 2.1: unchanged since.
        self.server_action(
            format!("revert the resize of server {server_id}"),
            server_id,
            VersionNeed::exactly(BASE),
            json!({ "revertResize": null }),
            "os_compute_api:servers:revert_resize",
        )
        .await
    }

    /// The server's in-progress live migrations with Nova's progress bytes.
    pub async fn server_migrations(
        &self,
        server_id: &str,
    ) -> Result<Vec<ServerMigration>, NovaError> {
        let call = format!("list live migrations of server {server_id}");
        // Minimum 2.23, where the call appears; preferred 2.59 for the migration's `uuid`.
        let version = self.negotiate(
            &call,
            VersionNeed::between(SERVER_MIGRATIONS, MIGRATION_UUIDS),
        )?;
        let request = self.compute_request(
            call,
            Method::GET,
            format!("/servers/{server_id}/migrations"),
            version,
            "os_compute_api:servers:migrations:index",
        );
        #[derive(Deserialize)]
        struct Migrations {
            migrations: Vec<ServerMigration>,
        }
        let migrations: Migrations = self.send_json(&request).await?;
        Ok(migrations.migrations)
    }

    /// Nova's migration records, finished ones included, narrowed by `filter`.
    pub async fn os_migrations(
        &self,
        filter: &MigrationFilter,
    ) -> Result<Vec<Migration>, NovaError> {
        let call = match &filter.server_id {
            Some(server_id) => format!("list migrations of server {server_id}"),
            None => "list migrations".to_string(),
        };
        // Any version lists them (2.23 adds `migration_type`, parsed optionally). Preferred
        // 2.59 for `uuid` and paging; `changes-since` needs 2.59.
        let minimum = if filter.changes_since.is_some() {
            MIGRATION_UUIDS
        } else {
            BASE
        };
        let version = self.negotiate(&call, VersionNeed::between(minimum, MIGRATION_UUIDS))?;
        let query = encode_query(&filter.query_pairs());
        let path = if query.is_empty() {
            "/os-migrations".to_string()
        } else {
            format!("/os-migrations?{query}")
        };
        let request = self.compute_request(
            call,
            Method::GET,
            path,
            version,
            "os_compute_api:os-migrations:index",
        );
        self.list_all(request, "migrations").await
    }

    /// Aborts a live migration. `status_known` is the migration's status if the caller has
    /// it: one still `queued` or `preparing` needs 2.65, and is refused before sending on an
    /// older cloud. The migration becomes `cancelled` and the server stays on its source.
    pub async fn abort_live_migration(
        &self,
        server_id: &str,
        migration_id: u64,
        status_known: Option<&str>,
    ) -> Result<(), NovaError> {
        let not_yet_running = status_known.is_some_and(|status| NOT_YET_RUNNING.contains(&status));
        let (call, need) = match status_known {
            // 2.65 exactly: the first to abort a migration before it runs.
            Some(status) if not_yet_running => (
                format!("abort of a {status} migration {migration_id} of server {server_id}"),
                VersionNeed::exactly(ABORT_QUEUED),
            ),
            // 2.24 exactly: a running one can be aborted from there.
            Some(_) => (
                format!("abort live migration {migration_id} of server {server_id}"),
                VersionNeed::exactly(ABORT_RUNNING),
            ),
            // Status unknown: 2.24 at least, 2.65 where offered so that a migration which is
            // still queued is aborted too.
            None => (
                format!("abort live migration {migration_id} of server {server_id}"),
                VersionNeed::between(ABORT_RUNNING, ABORT_QUEUED),
            ),
        };
        let version = self.negotiate(&call, need)?;
        let request = self.compute_request(
            call,
            Method::DELETE,
            format!("/servers/{server_id}/migrations/{migration_id}"),
            version,
            "os_compute_api:servers:migrations:delete",
        );
        self.send(&request).await.map(|_| ())
    }

    /// Asks Nova to finish a running live migration now (the libvirt driver pauses the guest,
    /// or switches to post-copy where permitted). 409 when it is not `running`.
    pub async fn force_complete(
        &self,
        server_id: &str,
        migration_id: u64,
    ) -> Result<(), NovaError> {
        let call = format!("force-complete live migration {migration_id} of server {server_id}");
        // 2.22 exactly: the call appears there and has not changed.
        let version = self.negotiate(&call, VersionNeed::exactly(FORCE_COMPLETE))?;
        let mut request = self.compute_request(
            call,
            Method::POST,
            format!("/servers/{server_id}/migrations/{migration_id}/action"),
            version,
            "os_compute_api:servers:migrations:force_complete",
        );
        request.body = Some(json!({ "force_complete": null }));
        self.send(&request).await.map(|_| ())
    }

    /// What was asked of the server, newest first (without events; see `instance_action`).
    pub async fn instance_actions(
        &self,
        server_id: &str,
    ) -> Result<Vec<InstanceAction>, NovaError> {
        let call = format!("list instance actions of server {server_id}");
        // Any version; preferred 2.58 for `updated_at` (parsed optionally).
        let version = self.negotiate(&call, VersionNeed::between(BASE, ACTION_UPDATED_AT))?;
        let request = self.compute_request(
            call,
            Method::GET,
            format!("/servers/{server_id}/os-instance-actions"),
            version,
            "os_compute_api:os-instance-actions:list",
        );
        #[derive(Deserialize)]
        struct Actions {
            #[serde(rename = "instanceActions")]
            instance_actions: Vec<InstanceAction>,
        }
        let actions: Actions = self.send_json(&request).await?;
        Ok(actions.instance_actions)
    }

    /// One action with its events: a failed event's `details` (2.84) is Nova's reason.
    pub async fn instance_action(
        &self,
        server_id: &str,
        request_id: &str,
    ) -> Result<InstanceAction, NovaError> {
        let call = format!("show instance action {request_id} of server {server_id}");
        // Any version shows the events to an admin; preferred 2.84 for the events' `details`
        // (the failure's message; 2.62's `host` comes too). Both are parsed optionally, and
        // the traceback an admin also gets is not read.
        let version = self.negotiate(&call, VersionNeed::between(BASE, ACTION_EVENT_DETAILS))?;
        let request = self.compute_request(
            call,
            Method::GET,
            format!("/servers/{server_id}/os-instance-actions/{request_id}"),
            version,
            "os_compute_api:os-instance-actions:show",
        );
        #[derive(Deserialize)]
        struct Shown {
            #[serde(rename = "instanceAction")]
            instance_action: InstanceAction,
        }
        let shown: Shown = self.send_json(&request).await?;
        Ok(shown.instance_action)
    }
}
