//! The tenant registry the edge authenticates against: id → secret and status.

use std::sync::Arc;

use axum::http::HeaderMap;
use dashmap::DashMap;

use crate::auth;
use crate::config::{Secret, TenantConfig, TenantStatus};
use crate::error::ApiError;

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

/// Shared, concurrently readable registry (the admin API will mutate it).
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    map: Arc<DashMap<String, Tenant>>,
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

    /// Add or replace a tenant (admin API).
    pub fn upsert(&self, id: &str, tenant: Tenant) {
        self.map.insert(id.to_owned(), tenant);
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

    /// Verify tenant HMAC on a request and return the tenant id. Order: headers, known
    /// tenant, timestamp window, signature (constant time), then suspension (403).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<String, ApiError> {
        let h = auth::tenant_headers(headers)?;
        let bad = || ApiError::Unauthorized("Invalid tenant signature".into());
        let tenant = self.get(h.tenant).ok_or_else(bad)?;
        auth::check_timestamp(h.timestamp, chrono::Utc::now().timestamp())?;
        let verify = |secret: &Secret| {
            auth::verify(
                secret.expose().as_bytes(),
                method,
                path,
                h.timestamp,
                body,
                h.signature,
            )
        };
        let now = chrono::Utc::now().timestamp();
        let previous_ok = || {
            tenant
                .previous
                .as_ref()
                .is_some_and(|(old, until)| now < *until && verify(old))
        };
        if !verify(&tenant.secret) && !previous_ok() {
            return Err(bad());
        }
        if tenant.status == TenantStatus::Suspended {
            return Err(ApiError::Forbidden(
                "Tenant is inactive/suspended. Contact Phoenix support.".into(),
            ));
        }
        Ok(h.tenant.to_owned())
    }
}
