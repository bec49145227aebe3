//! `ferry migrate --cold --cloud`, `ferry resize`, `ferry confirm|revert --cloud`: Nova's
//! resize flow, carried out by Nova, watched and recorded by ferry.
// Being written (issue 13, item 4 cold and item 5): each command refuses until then.

use std::process::ExitCode;

use anyhow::{bail, Result};

use ferry::config::Config;

use super::migrate::Output;

pub fn migrate(
    _config: &Config,
    _cloud: &str,
    _instances: &[String],
    _to: &str,
    _flavor: Option<&str>,
    _output: Output,
) -> Result<ExitCode> {
    bail!("cold migration through Nova is not built yet")
}

pub fn resize(
    _config: &Config,
    _cloud: Option<&str>,
    _instance: &str,
    _flavor: &str,
    _to: Option<&str>,
    _output: Output,
) -> Result<ExitCode> {
    bail!("resize through Nova is not built yet")
}

pub fn settle(_config: &Config, _cloud: &str, _instance: &str, _keep: bool) -> Result<ExitCode> {
    bail!("confirm and revert through Nova are not built yet")
}
