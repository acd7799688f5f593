//! GAMEMONITORING vote rewards (seed 004, SPEC §7): the signed `server.vote` webhook, the
//! vote lookup, exactly-once rewards, players and wallets.

use axum::Router;
use serde::Deserialize;

use crate::config::Secret;
use crate::server::AppState;

/// `[tenants.gamemonitoring]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmConfig {
    /// The project's webhook token (HMAC key of the webhook signature).
    pub webhook_token: Secret,
}

/// Routes of this protocol.
pub fn routes() -> Router<AppState> {
    Router::new()
}
