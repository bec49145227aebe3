//! `ferry migrate --cloud`, `ferry abort|force-complete --cloud`: live migrations Nova carries
//! out, watched and recorded by ferry.

use std::process::ExitCode;

use anyhow::{bail, Result};

use ferry::config::Config;
use ferry::engine::live::OperatorCommand;

use super::migrate::Output;

pub fn migrate(
    _config: &Config,
    _cloud: &str,
    _instances: &[String],
    _to: &str,
    _output: Output,
) -> Result<ExitCode> {
    bail!("live migration through Nova is not built yet")
}

pub fn operator_command(
    _config: &Config,
    _cloud: &str,
    _instance: &str,
    _command: OperatorCommand,
) -> Result<ExitCode> {
    bail!("abort and force-complete through Nova are not built yet")
}
