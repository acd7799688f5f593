//! Foreign protocols as sources: each folder owns its config section, routes and state.

pub mod gamemonitoring;
pub mod ninja_metrics;
