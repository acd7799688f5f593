//! `POST /v1/tokens`: a tenant mints a read-only client token for one of its players.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::SignedBody;
use crate::state::AppState;
use crate::tokens::{mint, Claims};

/// Longest token lifetime: 7 days.
pub const MAX_TTL: i64 = 7 * 86_400;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user_id: String,
    #[serde(default)]
    leaderboards: Option<Vec<String>>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

#[utoipa::path(post, path = "/v1/tokens", operation_id = "create_client_token", tag = "realtime", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), request_body = TokenRequest, responses((status = 201, description = "A read-only client token", body = crate::openapi::schemas::ClientToken), crate::openapi::schemas::TenantErrors))]
pub async fn create(
    State(app): State<AppState>,
    SignedBody { tenant, body, .. }: SignedBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Validation(format!("token request: {e}")))?;
    if req.user_id.trim().is_empty() || req.user_id.len() > 256 {
        return Err(ApiError::Validation(
            "user_id: must be 1 to 256 bytes".into(),
        ));
    }
    let ttl = req.ttl_seconds.unwrap_or(3600);
    if !(1..=MAX_TTL).contains(&ttl) {
        return Err(ApiError::Validation(format!(
            "ttl_seconds: must be 1 to {MAX_TTL}"
        )));
    }
    let exp = Utc::now().timestamp() + ttl;
    let claims = Claims {
        t: tenant.clone(),
        u: req.user_id.clone(),
        exp,
        lb: req.leaderboards,
    };
    // Minted with the current secret, also when the request was signed with the previous one.
    let secret = app
        .tenants
        .get(&tenant)
        .ok_or_else(|| ApiError::Unauthorized("Unknown tenant".into()))?
        .secret;
    let token = mint(secret.expose().as_bytes(), &claims);
    let expires_at = Utc.timestamp_opt(exp, 0).single().map(|t| t.to_rfc3339());
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token": token, "tenant": tenant, "user_id": req.user_id, "leaderboards": claims.lb, "expires_at": expires_at}),
        ),
    ))
}
