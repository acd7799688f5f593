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
        if !auth::verify(
            tenant.secret.expose().as_bytes(),
            method,
            path,
            h.timestamp,
            body,
            h.signature,
        ) {
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
