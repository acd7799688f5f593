//! The OpenAPI 3.1 document served at `GET /openapi.json` (and printed by `phoenix openapi`),
//! generated from the handlers' `#[utoipa::path]` attributes and the `ToSchema` types.
//!
//! Adding an endpoint: put `#[utoipa::path(...)]` on its handler and list the handler in
//! `paths(...)` below. `tests/openapi.rs` fails while a route of the router is missing here.

pub mod schemas;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use schemas::ErrorEnvelope;

/// Security scheme names, as the `security(...)` attributes of the handlers spell them.
/// Tenant HMAC is the three headers together (one requirement with three schemes).
pub const TENANT_ID: &str = "tenant_id";
pub const TENANT_TIMESTAMP: &str = "tenant_timestamp";
pub const TENANT_SIGNATURE: &str = "tenant_signature";
pub const CLIENT_TOKEN: &str = "client_token";
pub const CLIENT_TOKEN_QUERY: &str = "client_token_query";
pub const OPERATOR: &str = "operator";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Phoenix",
        description = "Real-time gamification engine: signed event ingestion, live leaderboards, \
                       push updates. Every error is `{\"error\":{\"code\",\"message\",\"status\"}}`."
    ),
    paths(
        crate::gateway::health::health,
        crate::gateway::health::ready,
        crate::gateway::health::metrics,
        openapi_json,
        crate::gateway::events::ingest_one,
        crate::gateway::events::read_log,
        crate::gateway::events::ingest_bulk,
        crate::gateway::tokens::create,
        crate::gateway::ws::upgrade,
        crate::gateway::leaderboards::list,
        crate::gateway::leaderboards::put,
        crate::gateway::leaderboards::get,
        crate::gateway::leaderboards::delete,
        crate::gateway::leaderboards::standings,
        crate::gateway::leaderboards::user,
        crate::admin::list,
        crate::admin::create,
        crate::admin::suspend,
        crate::admin::resume,
        crate::admin::rotate,
        crate::dashboard::page,
        crate::dashboard::boards,
        crate::dashboard::token,
        crate::sources::ninja_metrics::ingest,
        crate::sources::ninja_metrics::clients,
        crate::sources::ninja_metrics::currency,
        crate::sources::ninja_metrics::dimension,
        crate::sources::gamemonitoring::webhook,
        crate::sources::gamemonitoring::players::link,
        crate::sources::gamemonitoring::players::wallet,
        crate::sources::gamemonitoring::players::deliveries,
        crate::gateway::leaderboards::users,
        crate::gateway::leaderboards::windows,
        crate::gateway::leaderboards::results,
        crate::gateway::leaderboards::closes,
        crate::gateway::leaderboards::members,
        crate::gateway::leaderboards::join,
        crate::gateway::leaderboards::leave,
        crate::webhooks::deliveries,
        crate::admin::set_webhook,
        crate::dashboard::put_board,
        crate::dashboard::wallet,
    ),
    components(schemas(ErrorEnvelope, schemas::ErrorBody, schemas::ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ingestion", description = "Signed event ingestion and the durable log"),
        (name = "leaderboards", description = "Definitions and standings"),
        (name = "realtime", description = "Client tokens and the WebSocket"),
        (name = "admin", description = "Operator API and the live-ops dashboard"),
        (name = "webhooks", description = "Outbound webhooks: deliveries"),
        (name = "ninja-metrics", description = "Ninja Metrics protocol (seed 003)"),
        (name = "gamemonitoring", description = "GAMEMONITORING vote rewards (seed 004)"),
        (name = "service", description = "Probes, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON text, built once per process.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// `GET /openapi.json`: this document (no auth; outside the concurrency limit like the
/// probes, and cheap: the text is built once).
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        let header = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                &format!("Tenant HMAC ({what}); send all three headers. X-Signature = `hmac-sha256=` + hex HMAC-SHA256, keyed with the tenant secret, of `METHOD\\nPATH\\nX-Timestamp\\nBODY`."),
            )))
        };
        c.add_security_scheme(TENANT_ID, header("X-Tenant-Id", "the tenant id"));
        c.add_security_scheme(
            TENANT_TIMESTAMP,
            header("X-Timestamp", "Unix seconds, within the allowed skew"),
        );
        c.add_security_scheme(TENANT_SIGNATURE, header("X-Signature", "the signature"));
        c.add_security_scheme(
            CLIENT_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pxt1")
                    .description(Some("A read-only client token from `POST /v1/tokens` (`Authorization: Bearer pxt1…`)."))
                    .build(),
            ),
        );
        c.add_security_scheme(
            CLIENT_TOKEN_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A client token in the query string (`/v1/ws?token=pxt1…`; browsers cannot set headers on a WebSocket).",
            ))),
        );
        c.add_security_scheme(
            OPERATOR,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator token from the config (`operator_token`).",
                    ))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use axum::http::StatusCode;

    fn doc() -> serde_json::Value {
        serde_json::from_str(document()).unwrap()
    }

    #[test]
    fn is_openapi_3_1_with_the_auth_schemes() {
        let d = doc();
        assert!(
            d["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            d["openapi"]
        );
        let s = &d["components"]["securitySchemes"];
        assert_eq!(s[TENANT_ID]["name"], "X-Tenant-Id");
        assert_eq!(s[TENANT_TIMESTAMP]["name"], "X-Timestamp");
        assert_eq!(s[TENANT_SIGNATURE]["name"], "X-Signature");
        assert_eq!(s[CLIENT_TOKEN]["scheme"], "bearer");
        assert_eq!(s[CLIENT_TOKEN_QUERY]["in"], "query");
        assert_eq!(s[OPERATOR]["scheme"], "bearer");
    }

    /// Every `code` the API can send is in the envelope's enum (the enum cannot lag behind
    /// `ApiError`).
    #[test]
    fn error_code_enum_covers_every_api_error() {
        let d = doc();
        let codes: Vec<String> = d["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is an enum")
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let m = || "m".to_owned();
        let mut errors = vec![
            ApiError::Validation(m()),
            ApiError::Unauthorized(m()),
            ApiError::Forbidden(m()),
            ApiError::NotFound(m()),
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType(m()),
            ApiError::Internal(m()),
            ApiError::Unavailable(m()),
            ApiError::MethodNotAllowed(m()),
            ApiError::RequestTimeout(m()),
            ApiError::UriTooLong(m()),
            ApiError::HeadersTooLarge(m()),
        ];
        for s in 400..600u16 {
            errors.push(ApiError::Other(StatusCode::from_u16(s).unwrap(), m()));
        }
        for e in errors {
            assert!(
                codes.iter().any(|c| c == e.code()),
                "{} missing from {codes:?}",
                e.code()
            );
        }
    }

    /// Operation ids are unique (validators reject duplicates; handlers in different modules
    /// share names like `list`: give those an `operation_id`).
    #[test]
    fn operation_ids_are_unique() {
        let d = doc();
        let mut seen = std::collections::BTreeSet::new();
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(
                    seen.insert(id.clone()),
                    "{method} {path}: duplicate operationId {id}"
                );
            }
        }
    }

    /// Every operation names its security (or none, deliberately) and every error response
    /// points at the envelope.
    #[test]
    fn error_responses_use_the_envelope() {
        let d = doc();
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = &r["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(
                            schema, "#/components/schemas/ErrorEnvelope",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
