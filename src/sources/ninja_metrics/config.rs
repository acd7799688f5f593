//! The `[tenants.ninja_metrics]` config section.

use serde::Deserialize;

use crate::types::Secret;

/// `[tenants.ninja_metrics]`: which Ninja Metrics app maps to this tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NmConfig {
    pub client_id: String,
    pub app_id: String,
    /// The app's access token; when set, `app_pwd` is required and compared in constant time.
    #[serde(default)]
    pub app_pwd: Option<Secret>,
}
