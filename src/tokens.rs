//! Client tokens for game clients: read-only, one user, one tenant, expiring.
//!
//! Format (so a backend can mint its own): `pxt1.<payload>.<sig>` where `<payload>` is the
//! base64url (no padding) of the JSON `{"t": tenant, "u": user_id, "exp": unix_seconds,
//! "lb": [board ids] | null}` and `<sig>` is the lowercase hex HMAC-SHA256, keyed with the
//! tenant secret, of the ASCII text `pxt1.<payload>`. `POST /v1/tokens` mints them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::auth::{hmac_hex, hmac_matches};
use crate::error::ApiError;
use crate::tenants::Tenants;
use crate::types::TenantStatus;

const PREFIX: &str = "pxt1.";

/// What a client token grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Tenant.
    pub t: String,
    /// User the token was minted for.
    pub u: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Leaderboards it may watch (`None`: all of the tenant's).
    pub lb: Option<Vec<String>>,
}

/// Mint a token for `claims` with the tenant's `secret`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let signed = format!("{PREFIX}{payload}");
    let sig = hmac_hex(secret, &[signed.as_bytes()]);
    format!("{signed}.{sig}")
}

/// A verified token: its claims and until when it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Claims,
    /// Unix time at which the token stops verifying: its expiry or, for a token signed with
    /// the previous secret during a rotation overlap, the end of the overlap if sooner.
    pub valid_until: i64,
}

/// Why a token does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, unknown tenant, or a signature no live secret of the tenant made
    /// (including the previous secret once its rotation overlap is over).
    #[error("Invalid client token")]
    Invalid,
    #[error("Client token expired")]
    Expired,
    #[error("{}", crate::tenants::SUSPENDED)]
    Suspended,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        match e {
            TokenError::Suspended => ApiError::Forbidden(e.to_string()),
            _ => ApiError::Unauthorized(e.to_string()),
        }
    }
}

/// Check a token's signature (constant time), tenant, and expiry against `now`.
pub fn verify(tenants: &Tenants, token: &str, now: i64) -> Result<Claims, ApiError> {
    Ok(check(tenants, token, now)?.claims)
}

/// Like [`verify`], also saying until when the token holds. A token verifies with the
/// tenant's current secret or, during a rotation overlap, with the previous one (as signed
/// requests do); after the overlap only with the current one.
pub fn check(tenants: &Tenants, token: &str, now: i64) -> Result<Verified, TokenError> {
    let bad = || TokenError::Invalid;
    let rest = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    let (payload, sig) = rest.rsplit_once('.').ok_or_else(bad)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let tenant = tenants.get(&claims.t).ok_or_else(bad)?;
    let signed = &token[..PREFIX.len() + payload.len()];
    let secret_until = tenant
        .live_secrets(now)
        .find(|(secret, _)| hmac_matches(secret.expose().as_bytes(), &[signed.as_bytes()], sig))
        .map(|(_, until)| until)
        .ok_or_else(bad)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if tenant.status == TenantStatus::Suspended {
        return Err(TokenError::Suspended);
    }
    let valid_until = secret_until.map_or(claims.exp, |u| u.min(claims.exp));
    Ok(Verified {
        claims,
        valid_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TenantConfig;

    fn tenants() -> Tenants {
        let cfg: TenantConfig =
            toml::from_str("id = \"acme\"\nsecret = \"acme-secret-0123456789\"").unwrap();
        Tenants::from_config(&[cfg])
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            t: "acme".into(),
            u: "alice".into(),
            exp,
            lb: Some(vec!["weekly".into()]),
        }
    }

    #[test]
    fn mint_then_verify() {
        let tok = mint(b"acme-secret-0123456789", &claims(2_000));
        assert_eq!(verify(&tenants(), &tok, 1_000).unwrap(), claims(2_000));
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let t = tenants();
        assert!(
            verify(&t, &mint(b"acme-secret-0123456789", &claims(1_000)), 1_000).is_err(),
            "expired"
        );
        assert!(
            verify(&t, &mint(b"another-secret-00000000", &claims(2_000)), 1_000).is_err(),
            "wrong key"
        );
        let mut other = claims(2_000);
        other.t = "nobody".into();
        assert!(
            verify(&t, &mint(b"acme-secret-0123456789", &other), 1_000).is_err(),
            "unknown tenant"
        );
        // Swapping in another payload invalidates the signature.
        let good = mint(b"acme-secret-0123456789", &claims(2_000));
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999)).unwrap());
        let sig = good.rsplit_once('.').unwrap().1;
        assert!(verify(&t, &format!("{PREFIX}{forged_payload}.{sig}"), 1_000).is_err());
        for junk in ["", "pxt1.", "pxt1.x.y", "nope"] {
            assert!(verify(&t, junk, 1_000).is_err());
        }
    }

    #[test]
    fn tokens_of_the_previous_secret_verify_only_during_the_overlap() {
        let t = tenants();
        let old = mint(b"acme-secret-0123456789", &claims(5_000));
        let mut acme = t.get("acme").unwrap();
        acme.previous = Some((acme.secret.clone(), 2_000));
        acme.secret = crate::types::Secret::new("rotated-secret-0123456");
        t.upsert("acme", acme);
        let v = check(&t, &old, 1_000).unwrap();
        assert_eq!(
            v.valid_until, 2_000,
            "until the overlap ends, not the expiry"
        );
        assert!(
            verify(&t, &old, 2_000).is_err(),
            "refused once the overlap is over"
        );
        let new = mint(b"rotated-secret-0123456", &claims(5_000));
        assert_eq!(check(&t, &new, 2_500).unwrap().valid_until, 5_000);
        assert!(verify(&t, &mint(b"another-secret-00000000", &claims(5_000)), 1_000).is_err());
    }
}
