//! The tenant registry the edge authenticates against: id → secret and status, plus a
//! per-tenant credential epoch that open WebSocket sessions watch, so that suspending a
//! tenant or rotating its secret ends the rights of sessions already open (SPEC §9).

use std::sync::Arc;

use axum::http::HeaderMap;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::auth;
use crate::config::TenantConfig;
use crate::error::ApiError;
use crate::types::{Secret, TenantStatus};

/// One tenant as the edge sees it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub secret: Secret,
    pub status: TenantStatus,
    /// The secret before the last rotation, accepted until the Unix time given (overlap).
    pub previous: Option<(Secret, i64)>,
    /// Where outbound webhooks go (config `webhook_url`, or the admin API).
    pub webhook_url: Option<String>,
}

impl Tenant {
    /// Until when `secret` verifies at `now`: `Some(None)` for the current secret (no end
    /// known), `Some(Some(until))` for the previous one inside its overlap, `None` otherwise.
    pub fn secret_valid_until(&self, secret: &Secret, now: i64) -> Option<Option<i64>> {
        if &self.secret == secret {
            return Some(None);
        }
        match &self.previous {
            Some((old, until)) if old == secret && now < *until => Some(Some(*until)),
            _ => None,
        }
    }

    /// The secrets that verify at `now`, current first, with the end of their validity.
    pub fn live_secrets(&self, now: i64) -> impl Iterator<Item = (&Secret, Option<i64>)> {
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(s, until)| (s, Some(*until)));
        std::iter::once((&self.secret, None)).chain(previous)
    }
}

/// Why an open session's rights ended (the text is its close reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RightsEnded {
    #[error("tenant removed")]
    TenantRemoved,
    #[error("tenant suspended")]
    Suspended,
    #[error("tenant secret rotated: reconnect with the new secret")]
    SecretRotated,
    #[error("client token expired")]
    TokenExpired,
    #[error("client token no longer valid: tenant secret rotated")]
    TokenInvalid,
}

/// The message of the 403 every authenticated request of a suspended tenant gets.
pub const SUSPENDED: &str = "Tenant is inactive/suspended. Contact Phoenix support.";

/// Shared, concurrently readable registry (the admin API mutates it).
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    map: Arc<DashMap<String, Tenant>>,
    /// Bumped on every change of a tenant's credentials or status; sessions re-check their
    /// rights when it moves. Created on first watch.
    epochs: Arc<DashMap<String, watch::Sender<u64>>>,
}

impl Tenants {
    pub fn from_config(list: &[TenantConfig]) -> Tenants {
        let t = Tenants::default();
        for c in list {
            t.map.insert(
                c.id.clone(),
                Tenant {
                    secret: c.secret.clone(),
                    status: c.status,
                    previous: None,
                    webhook_url: c.webhook_url.clone(),
                },
            );
        }
        t
    }

    pub fn ids(&self) -> Vec<String> {
        self.map.iter().map(|e| e.key().clone()).collect()
    }

    pub fn get(&self, id: &str) -> Option<Tenant> {
        self.map.get(id).map(|e| e.value().clone())
    }

    /// Add or replace a tenant (admin API). Sessions of the tenant re-check their rights.
    pub fn upsert(&self, id: &str, tenant: Tenant) {
        self.map.insert(id.to_owned(), tenant);
        if let Some(tx) = self.epochs.get(id) {
            tx.send_modify(|e| *e = e.wrapping_add(1));
        }
    }

    /// A receiver that changes whenever tenant `id`'s credentials or status change.
    pub fn changes(&self, id: &str) -> watch::Receiver<u64> {
        self.epochs
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Every tenant, sorted by id.
    pub fn list(&self) -> Vec<(String, Tenant)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Verify tenant HMAC on a request: the tenant id and the secret that verified (the
    /// current one or, during a rotation overlap, the previous one), so a long-lived session
    /// can tell when it stops being valid. Order: headers, known tenant, timestamp window,
    /// signature (constant time), then suspension (403).
    pub fn authenticate_with(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(String, Secret), ApiError> {
        let h = auth::tenant_headers(headers)?;
        let bad = || ApiError::Unauthorized("Invalid tenant signature".into());
        let tenant = self.get(h.tenant).ok_or_else(bad)?;
        let now = chrono::Utc::now().timestamp();
        auth::check_timestamp(h.timestamp, now)?;
        let verified = tenant
            .live_secrets(now)
            .find(|(secret, _)| {
                auth::verify(
                    secret.expose().as_bytes(),
                    method,
                    path,
                    h.timestamp,
                    body,
                    h.signature,
                )
            })
            .map(|(secret, _)| secret.clone())
            .ok_or_else(bad)?;
        if tenant.status == TenantStatus::Suspended {
            return Err(ApiError::Forbidden(SUSPENDED.into()));
        }
        Ok((h.tenant.to_owned(), verified))
    }

    /// Whether a session that authenticated tenant `id` with `secret` may go on at `now`:
    /// `Ok(None)` with no end in sight, `Ok(Some(t))` until Unix time `t` (the end of a
    /// rotation overlap), `Err(why)` when its rights have ended.
    pub fn session_rights(
        &self,
        id: &str,
        secret: &Secret,
        now: i64,
    ) -> Result<Option<i64>, RightsEnded> {
        let tenant = self.get(id).ok_or(RightsEnded::TenantRemoved)?;
        if tenant.status == TenantStatus::Suspended {
            return Err(RightsEnded::Suspended);
        }
        tenant
            .secret_valid_until(secret, now)
            .ok_or(RightsEnded::SecretRotated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(secret: &str, previous: Option<(&str, i64)>) -> Tenant {
        Tenant {
            secret: Secret::new(secret),
            status: TenantStatus::Active,
            previous: previous.map(|(s, u)| (Secret::new(s), u)),
            webhook_url: None,
        }
    }

    #[test]
    fn the_previous_secret_holds_only_inside_its_overlap() {
        let t = tenant("new-secret-000000", Some(("old-secret-000000", 100)));
        let (new, old) = (
            Secret::new("new-secret-000000"),
            Secret::new("old-secret-000000"),
        );
        assert_eq!(t.secret_valid_until(&new, 99), Some(None));
        assert_eq!(t.secret_valid_until(&old, 99), Some(Some(100)));
        assert_eq!(
            t.secret_valid_until(&old, 100),
            None,
            "the overlap ends at `until`"
        );
        assert_eq!(t.secret_valid_until(&Secret::new("other"), 0), None);
        assert_eq!(t.live_secrets(99).count(), 2);
        assert_eq!(t.live_secrets(100).count(), 1);
    }

    #[test]
    fn upserts_move_the_epoch_and_end_rights() {
        let tenants = Tenants::default();
        let s = Secret::new("first-secret-0000");
        tenants.upsert("acme", tenant("first-secret-0000", None));
        let mut rx = tenants.changes("acme");
        assert_eq!(tenants.session_rights("acme", &s, 10), Ok(None));
        let mut suspended = tenant("first-secret-0000", None);
        suspended.status = TenantStatus::Suspended;
        tenants.upsert("acme", suspended);
        assert!(rx.has_changed().unwrap(), "watchers are told");
        rx.borrow_and_update();
        assert_eq!(
            tenants.session_rights("acme", &s, 10),
            Err(RightsEnded::Suspended)
        );
        tenants.upsert(
            "acme",
            tenant("second-secret-000", Some(("first-secret-0000", 20))),
        );
        assert!(rx.has_changed().unwrap());
        assert_eq!(tenants.session_rights("acme", &s, 10), Ok(Some(20)));
        assert!(tenants.session_rights("acme", &s, 20).is_err());
        assert!(tenants.session_rights("nobody", &s, 10).is_err());
    }
}
