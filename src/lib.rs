//! The `phoenix` service: config, auth, the HTTP gateways, and `run()`.
//!
//! The engine (actors, log, dedupe) lives in the `phoenix-actors` crate; this crate is the
//! edge. Dependencies point one way: `src/ → actors/`.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod engine_slot;
pub mod error;
pub mod extract;
pub mod fair;
pub mod gateway;
pub mod memory;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod sources;
pub mod state;
pub mod tenants;
pub mod tokens;
pub mod types;
pub mod webhooks;

pub use config::Config;
pub use server::{app, run};
pub use state::AppState;
