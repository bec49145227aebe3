//! `ferry migrate --cold --cloud`, `ferry resize`, `ferry confirm|revert --cloud`: Nova's
//! resize flow, carried out by Nova, watched and recorded by ferry (`engine::nova::cold`).
//! One line per change ferry sees (text, or JSON lines with `--json`); exit 0 only when every
//! server waits for confirm (or, for confirm/revert, is settled where expected).

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use ferry::config::Config;
use ferry::engine::history::OutcomeKind;
use ferry::engine::nova::cold::{self, ColdRequest, ColdResult, ColdResumed, WatchLine};
use ferry::engine::nova::CloudSession;
use ferry::runtime::wait;

use super::migrate::Output;

#[derive(Serialize)]
struct RefusedLine<'a> {
    server: &'a str,
    reason: String,
}

pub fn migrate(
    config: &Config,
    cloud: &str,
    instances: &[String],
    to: &str,
    flavor: Option<&str>,
    output: Output,
) -> Result<ExitCode> {
    let to = (to != "auto").then(|| to.to_string());
    let request = match flavor {
        Some(flavor) => ColdRequest::Resize {
            flavor: flavor.to_string(),
            to,
        },
        None => ColdRequest::Migrate { to },
    };
    run(config, Some(cloud), instances, &request, output)
}

pub fn resize(
    config: &Config,
    cloud: Option<&str>,
    instance: &str,
    flavor: &str,
    to: Option<&str>,
    output: Output,
) -> Result<ExitCode> {
    let request = ColdRequest::Resize {
        flavor: flavor.to_string(),
        to: to.filter(|to| *to != "auto").map(str::to_string),
    };
    run(config, cloud, &[instance.to_string()], &request, output)
}

fn run(
    config: &Config,
    cloud: Option<&str>,
    instances: &[String],
    request: &ColdRequest,
    output: Output,
) -> Result<ExitCode> {
    let session = wait(CloudSession::connect(config, cloud))?;
    let mut awaiting = 0;
    for instance in instances {
        let mut report = |line: &WatchLine| output.line("progress", &line.text(), line);
        match wait(cold::launch(&session, instance, request, &mut report)) {
            Ok(result) => {
                awaiting += 1;
                output.line("result", &summary(&result, session.name()), &result);
            }
            Err(error) => refused(output, instance, &error),
        }
    }
    Ok(if awaiting == instances.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn summary(result: &ColdResult, cloud: &str) -> String {
    let what = match &result.flavor {
        Some(flavor) => format!("resized to {flavor}"),
        None => "cold-migrated".to_string(),
    };
    match result.outcome {
        OutcomeKind::AwaitingConfirm => format!(
            "{}: {what} by Nova from {} to {}, awaiting confirm: `ferry confirm {} --cloud \
             {cloud}` keeps it, `ferry revert {} --cloud {cloud}` takes it back",
            result.server,
            result.source_host,
            result.destination_host,
            result.server,
            result.server
        ),
        outcome => format!(
            "{}: {what} by Nova from {} to {} ({outcome})",
            result.server, result.source_host, result.destination_host
        ),
    }
}

/// A refusal on stderr in text (stdout stays the progress), as a JSON line with `--json`.
fn refused(output: Output, server: &str, error: &anyhow::Error) {
    let reason = format!("{error:#}");
    if output.json {
        output.line("refused", "", &RefusedLine { server, reason });
    } else {
        eprintln!("{server}: refused: {reason}");
    }
}

pub fn settle(config: &Config, cloud: &str, instance: &str, keep: bool) -> Result<ExitCode> {
    let output = Output { json: false };
    let session = wait(CloudSession::connect(config, Some(cloud)))?;
    let mut report = |line: &WatchLine| output.line("progress", &line.text(), line);
    match wait(cold::settle(&session, instance, keep, &mut report)) {
        Ok(result) => {
            println!(
                "{}: {} by Nova: {} on {}",
                result.server, result.outcome, result.status, result.host
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            refused(output, instance, &error);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What `ferry resume` did with an unfinished Nova cold migration or resize, as one line;
/// true when the move reached its end (awaiting confirm, or confirmed by Nova).
pub fn print_resumed(output: Output, resumed: &ColdResumed) -> bool {
    let what = if resumed.migration_type == "resize" {
        "resize"
    } else {
        "cold migration"
    };
    let head = format!(
        "{}: Nova {what}{} (ferry history #{})",
        resumed.server,
        resumed
            .nova_migration_id
            .map(|id| format!(" {id}"))
            .unwrap_or_default(),
        resumed.history_id
    );
    let (server, cloud) = (&resumed.server, &resumed.cloud);
    let text = match resumed.outcome {
        Some(OutcomeKind::AwaitingConfirm) => format!(
            "{head}: awaiting confirm on {}: `ferry confirm {server} --cloud {cloud}` keeps it, \
             `ferry revert {server} --cloud {cloud}` takes it back",
            resumed.host.as_deref().unwrap_or("?")
        ),
        Some(outcome) => format!("{head}: {outcome}: {}", resumed.detail),
        None => format!("{head}: left unfinished: {}", resumed.detail),
    };
    output.line("resumed", &text, resumed);
    matches!(
        resumed.outcome,
        Some(OutcomeKind::AwaitingConfirm | OutcomeKind::Confirmed)
    )
}

/// Settles one unfinished Nova cold migration or resize from Nova's answers (`ferry
/// resume`), printing each change ferry sees and then what it did; true when the move reached
/// its end.
pub async fn resume_one(
    session: &CloudSession,
    history_id: ferry::model::migration::MigrationId,
    plan: &ferry::engine::nova::NovaMigrationPlan,
    source: &str,
    output: Output,
) -> bool {
    let mut report = |line: &WatchLine| output.line("progress", &line.text(), line);
    match cold::resume_unfinished(session, history_id, plan, source, &mut report).await {
        Ok(resumed) => print_resumed(output, &resumed),
        Err(error) => {
            eprintln!(
                "ferry: {}: ferry history #{} left unfinished: {error:#}",
                plan.server_name, history_id.0
            );
            false
        }
    }
}
