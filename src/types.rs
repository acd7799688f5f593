//! Small value types shared by the config, the tenant registry and the sources: a leaf that
//! imports nothing of this crate, so `config.rs` and the sources' config sections can both
//! use them without importing each other.

use serde::Deserialize;

/// A secret string: never printed by `Debug`, never logged.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Whether a tenant may use the API.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    #[default]
    Active,
    /// Authenticated requests get 403 FORBIDDEN.
    Suspended,
}
