//! The one door to OpenStack. Every HTTP request ferry makes to Keystone, Nova or Placement
//! goes through here, async on the shared tokio runtime with reqwest.
//!
//! - `cloud_config`: which cloud and how to log in (`clouds.yaml`, `secure.yaml`, `OS_*`);
//!   `cloud_profile` checks one cloud's settings.
//! - `auth`: Keystone v3 tokens and the service catalog.
//! - `client`: [`NovaClient`], the connection (token renewal, timeouts, version headers).
//! - `microversion`: what the cloud offers and what each call sends.
//! - `compute`, `migration`, `placement`: the calls, typed by `types`.
//! - `error`: [`NovaError`], naming the cloud, the call and what to do.
//!
//! Callers get typed `async fn`s on [`NovaClient`] and the data in `types`, never a reqwest
//! type.

mod auth;
mod client;
pub mod cloud_config;
mod cloud_profile;
mod compute;
pub mod error;
pub mod microversion;
mod migration;
mod placement;
pub mod types;

#[cfg(test)]
mod tests;

pub use client::NovaClient;
pub use cloud_config::{load_cloud, CloudProfile, CloudSelection};
pub use error::NovaError;
pub use microversion::{Microversion, VersionRange};
