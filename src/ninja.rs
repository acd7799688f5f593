//! The Ninja Metrics HTTPS & JSON event interface (seed 003, SPEC §6): `POST /event`.

use axum::Router;
use serde::Deserialize;

use crate::config::Secret;
use crate::server::AppState;

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

/// Routes of this protocol.
pub fn routes() -> Router<AppState> {
    Router::new()
}

/// The sled tree mapping lower-cased character names (Ninja Metrics #11 `character_name`) to
/// the owning `account_id`.
pub fn character_names(db: &sled::Db, tenant: &str) -> sled::Result<sled::Tree> {
    db.open_tree(format!("nm/{tenant}/character_names"))
}

/// The account a Ninja Metrics character name belongs to (case-insensitive), if any.
pub fn character_owner(db: &sled::Db, tenant: &str, name: &str) -> Option<String> {
    let v = character_names(db, tenant).ok()?.get(name.to_lowercase()).ok()??;
    String::from_utf8(v.to_vec()).ok()
}
