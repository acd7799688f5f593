//! Live credentials (SPEC §9): an open session keeps its rights only while the credential it
//! authenticated with holds. Suspension and secret rotation are seen through the tenant's
//! credential epoch ([`Tenants::changes`]), expiry and the end of a rotation overlap through
//! a timer; either ends the session with close 1008 and the reason.

use std::time::Duration;

use super::session::Closing;
use tokio::sync::watch;

use crate::tenants::{RightsEnded, Tenants};
use crate::tokens::{self, TokenError};
use crate::types::Secret;

/// How a session authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Tenant HMAC on the upgrade, verified with this secret.
    Backend(Secret),
    /// A client token.
    Client(String),
}

/// `Ok(None)`: holds with no end known; `Ok(Some(t))`: holds until Unix time `t`.
fn rights(
    tenants: &Tenants,
    tenant: &str,
    cred: &Credential,
    now: i64,
) -> Result<Option<i64>, RightsEnded> {
    match cred {
        Credential::Backend(secret) => tenants.session_rights(tenant, secret, now),
        Credential::Client(token) => match tokens::check(tenants, token, now) {
            Ok(v) => Ok(Some(v.valid_until)),
            Err(TokenError::Expired) => Err(RightsEnded::TokenExpired),
            Err(TokenError::Suspended) => Err(RightsEnded::Suspended),
            Err(TokenError::Invalid) => Err(RightsEnded::TokenInvalid),
        },
    }
}

/// Watch `cred` until it stops holding, then signal close 1008 with the reason.
pub async fn watch(
    tenants: Tenants,
    tenant: String,
    cred: Credential,
    close: watch::Sender<Option<Closing>>,
) {
    let mut changes = tenants.changes(&tenant);
    loop {
        let now_ms = chrono::Utc::now().timestamp_millis();
        match rights(&tenants, &tenant, &cred, now_ms.div_euclid(1000)) {
            Err(ended) => {
                tracing::info!(%tenant, reason = %ended, "WebSocket rights ended");
                metrics::counter!("phoenix_ws_revoked_total").increment(1);
                let reason = ended.to_string();
                Closing::signal(&close, Closing::Close { code: 1008, reason });
                return;
            }
            Ok(until) => {
                let wait = until.map_or(Duration::from_secs(3600), |t| {
                    let ms = t.saturating_mul(1000).saturating_sub(now_ms);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                });
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
