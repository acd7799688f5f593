//! Who is calling, and can the engine serve: axum extractors a handler names as arguments
//! instead of checking inline. A refusal is an [`ApiError`] in the seed's envelope, with the
//! same status and message everywhere.
//!
//! - [`SignedTenant`]: tenant HMAC (seed 000 §3) over an empty body (GET, DELETE);
//! - [`SignedBody`]: tenant HMAC over the body, which it hands over (≤ 1 MB, UTF-8);
//! - [`Reader`] / [`ReaderBody`]: read access, a client token allowed on the path's board or
//!   tenant HMAC;
//! - [`Operator`]: `Authorization: Bearer <operator_token>` (the admin sub-router's layer);
//! - [`Writable`] / [`Readable`]: the engine, for a write (503 while the store has failed or
//!   the disk is low) or a read (503 only before the store has opened);
//! - [`IngestBody`]: a [`SignedBody`] checked in its turn, handed out fairly across tenants
//!   (`crate::fair`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use phoenix_actors::Engine;

use crate::auth::{bearer, constant_time_eq};
use crate::error::ApiError;
use crate::fair::Slot;
use crate::gateway::utf8_body;
use crate::state::AppState;
use crate::tokens::Claims;
use crate::types::Secret;

/// A request signed by a tenant over an empty body: the tenant id.
#[derive(Debug)]
pub struct SignedTenant(pub String);

impl FromRequestParts<AppState> for SignedTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        signed(app, &parts.headers, &parts.method, parts.uri.path(), b"")
            .map(|(tenant, _)| SignedTenant(tenant))
    }
}

/// A request signed by a tenant over its body; the secret that verified comes along (the
/// current one, or the previous one during a rotation overlap).
#[derive(Debug)]
pub struct SignedBody {
    pub tenant: String,
    pub secret: Secret,
    /// The body, at most 1 MB and valid UTF-8.
    pub body: Bytes,
}

impl SignedBody {
    /// The body as text (checked UTF-8 when extracted).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf8_body checked")
    }
}

impl FromRequest<AppState> for SignedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        Ok(IngestBody::read(req, app, false).await?.signed)
    }
}

/// An ingest request's [`SignedBody`] and its turn: the body is read first (a slow upload
/// holds no turn), then the request waits for its turn (`crate::fair`, by the tenant it
/// names) to check the signature and parse. Give the turn back with [`Slot::done`] before
/// waiting for the durable write.
#[derive(Debug)]
pub struct IngestBody {
    pub signed: SignedBody,
    pub turn: Slot,
}

impl IngestBody {
    async fn read(req: Request, app: &AppState, fair: bool) -> Result<IngestBody, ApiError> {
        let (method, path, headers) = head_of(&req);
        let body = utf8_body(Bytes::from_request(req, app).await)?;
        let turn = if fair {
            let named = crate::auth::tenant_headers(&headers).map_or("", |h| h.tenant);
            app.gate.admit(named).await
        } else {
            Slot::none()
        };
        let (tenant, secret) = signed(app, &headers, &method, &path, &body)?;
        Ok(IngestBody {
            signed: SignedBody {
                tenant,
                secret,
                body,
            },
            turn,
        })
    }
}

impl FromRequest<AppState> for IngestBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        IngestBody::read(req, app, true).await
    }
}

/// Read access to a board: `claims` when a client token was presented, else the request was
/// signed by the tenant. The board is the path's `{id}`.
#[derive(Debug)]
pub struct Reader {
    pub tenant: String,
    pub claims: Option<Claims>,
}

impl Reader {
    /// A join or leave for `user`: a client token may only act for its own user.
    pub fn acting_for(self, user: &str) -> Result<String, ApiError> {
        match self.claims {
            Some(c) if c.u != user => Err(ApiError::Forbidden(
                "a client token may only join or leave for its own user".into(),
            )),
            _ => Ok(self.tenant),
        }
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let board = board_of(parts, app).await;
        read_access(
            app,
            &parts.headers,
            &parts.method,
            parts.uri.path(),
            &board,
            b"",
        )
    }
}

/// [`Reader`] for a request with a body (the tenant signature covers it).
#[derive(Debug)]
pub struct ReaderBody {
    pub reader: Reader,
    /// The body, at most 1 MB and valid UTF-8.
    pub body: Bytes,
}

impl FromRequest<AppState> for ReaderBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let board = board_of(&mut parts, app).await;
        let (method, path, headers) = (
            parts.method.clone(),
            parts.uri.path().to_owned(),
            parts.headers.clone(),
        );
        let req = Request::from_parts(parts, body);
        let body = utf8_body(Bytes::from_request(req, app).await)?;
        let reader = read_access(app, &headers, &method, &path, &board, &body)?;
        Ok(ReaderBody { reader, body })
    }
}

/// The operator: `Authorization: Bearer <operator_token>`, compared in constant time.
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let presented = bearer(&parts.headers).unwrap_or("");
        if constant_time_eq(
            presented.as_bytes(),
            app.config.operator_token.expose().as_bytes(),
        ) {
            Ok(Operator)
        } else {
            Err(ApiError::Unauthorized("Operator token required".into()))
        }
    }
}

/// An extractor holding the engine as the named [`AppState`] method gives it (its error
/// answers the request).
macro_rules! engine_extractor {
    ($(#[$doc:meta])* $name:ident, $get:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(pub Engine);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(_: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
                app.$get().map($name)
            }
        }
    };
}

engine_extractor!(
    /// The engine for a write ([`AppState::require_engine`]).
    Writable,
    require_engine
);
engine_extractor!(
    /// The engine for a read ([`AppState::read_engine`]).
    Readable,
    read_engine
);

/// Method, path and headers, kept before the body is taken.
fn head_of(req: &Request) -> (Method, String, HeaderMap) {
    (
        req.method().clone(),
        req.uri().path().to_owned(),
        req.headers().clone(),
    )
}

/// Tenant HMAC: the tenant id and the secret that verified.
fn signed(
    app: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<(String, Secret), ApiError> {
    app.tenants
        .authenticate_with(headers, method.as_str(), path, body)
}

/// The path's `{id}` (the board a read names), or "" when the route has none.
async fn board_of(parts: &mut Parts, app: &AppState) -> String {
    RawPathParams::from_request_parts(parts, app)
        .await
        .ok()
        .and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "id")
                .map(|(_, v)| v.to_owned())
        })
        .unwrap_or_default()
}

/// A client token allowed on `board` if one was presented, else tenant HMAC.
fn read_access(
    app: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    board: &str,
    body: &[u8],
) -> Result<Reader, ApiError> {
    let Some(token) = bearer(headers) else {
        let (tenant, _) = signed(app, headers, method, path, body)?;
        return Ok(Reader {
            tenant,
            claims: None,
        });
    };
    let claims = crate::tokens::verify(&app.tenants, token, chrono::Utc::now().timestamp())?;
    if claims
        .lb
        .as_ref()
        .is_some_and(|lb| !lb.iter().any(|b| b == board))
    {
        return Err(ApiError::Forbidden(
            "this token may not read that leaderboard".into(),
        ));
    }
    Ok(Reader {
        tenant: claims.t.clone(),
        claims: Some(claims),
    })
}
