//! Tenant HMAC (seed 000 §3): `X-Signature: hmac-sha256=<hex>` over
//! `METHOD\nPATH\nTIMESTAMP\nBODY`, timestamps within ±300 s, constant-time comparison.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// How far `X-Timestamp` may be from the server clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// HMAC-SHA256 keyed with `key` over `parts` in order: the one HMAC of the service (tenant
/// signatures, client tokens, GAMEMONITORING webhooks).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m
}

/// The lowercase hex tag of [`hmac_sha256`].
pub fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(hmac_sha256(key, parts).finalize().into_bytes())
}

/// Whether `presented` is the hex tag of [`hmac_sha256`], compared in constant time.
pub fn hmac_matches(key: &[u8], parts: &[&[u8]], presented: &str) -> bool {
    hex::decode(presented).is_ok_and(|tag| hmac_sha256(key, parts).verify_slice(&tag).is_ok())
}

/// What a tenant signature covers: `METHOD\nPATH\nTIMESTAMP\nBODY`.
fn signed_parts<'a>(
    method: &'a str,
    path: &'a str,
    timestamp: &'a str,
    body: &'a [u8],
) -> [&'a [u8]; 7] {
    [
        method.as_bytes(),
        b"\n",
        path.as_bytes(),
        b"\n",
        timestamp.as_bytes(),
        b"\n",
        body,
    ]
}

/// The `X-Signature` value for a request (what clients send).
pub fn sign(secret: &[u8], method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
    let method = method.to_ascii_uppercase();
    let tag = hmac_hex(secret, &signed_parts(&method, path, timestamp, body));
    format!("hmac-sha256={tag}")
}

/// Check a presented `X-Signature` in constant time.
pub fn verify(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Some(hex_tag) = signature.strip_prefix("hmac-sha256=") else {
        return false;
    };
    let method = method.to_ascii_uppercase();
    hmac_matches(
        secret,
        &signed_parts(&method, path, timestamp, body),
        hex_tag.trim(),
    )
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The three tenant headers of a request, as presented.
#[derive(Debug)]
pub struct TenantHeaders<'a> {
    pub tenant: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// Pull the tenant headers out, or say which is missing.
pub fn tenant_headers(headers: &HeaderMap) -> Result<TenantHeaders<'_>, ApiError> {
    let get = |name: &str| -> Result<&str, ApiError> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::Unauthorized(format!("Missing or unreadable {name} header")))
    };
    Ok(TenantHeaders {
        tenant: get("X-Tenant-Id")?,
        timestamp: get("X-Timestamp")?,
        signature: get("X-Signature")?,
    })
}

/// Check `X-Timestamp` against `now` (Unix seconds).
pub fn check_timestamp(timestamp: &str, now: i64) -> Result<(), ApiError> {
    let ts: i64 = timestamp.parse().map_err(|_| {
        ApiError::Unauthorized("X-Timestamp must be Unix time in seconds (UTC)".into())
    })?;
    // `abs_diff` cannot wrap: `(ts - now).abs()` overflowed for a timestamp near i64::MIN,
    // letting a correctly signed `-2^63 + now` through (and panicking in debug builds).
    if ts.abs_diff(now) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(ApiError::Unauthorized(format!(
            "X-Timestamp is more than {MAX_SKEW_SECS} s from server time; sync your clock and re-sign"
        )));
    }
    Ok(())
}

/// Constant-time equality for bearer tokens (lengths may leak, contents do not).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Vector computed independently with Python's `hmac` module:
    /// `hmac.new(b"demo-secret-0123456789", b"POST\n/v1/events\n1700000000\n{}", "sha256").hexdigest()`
    #[test]
    fn matches_an_independent_vector() {
        let sig = sign(
            b"demo-secret-0123456789",
            "POST",
            "/v1/events",
            "1700000000",
            b"{}",
        );
        assert_eq!(
            sig,
            "hmac-sha256=1f238142aa663465c5adb5ee310f37d43d3ea657f1732d20cb7240a79b9c3d61"
        );
    }

    #[test]
    fn timestamp_window() {
        assert!(check_timestamp("1000", 1300).is_ok());
        assert!(check_timestamp("1000", 1301).is_err());
        assert!(check_timestamp("1301", 1000).is_err());
        assert!(check_timestamp("abc", 1000).is_err());
    }

    #[test]
    fn extreme_timestamps_are_refused_without_wrapping() {
        let now = 1_700_000_000i64;
        for ts in [
            i64::MIN,
            i64::MIN + now,
            i64::MIN + now + 1,
            i64::MAX,
            i64::MAX - now,
            -now,
        ] {
            assert!(check_timestamp(&ts.to_string(), now).is_err(), "{ts}");
        }
        for now in [i64::MIN, i64::MAX] {
            assert!(check_timestamp(&now.to_string(), now).is_ok());
            assert!(check_timestamp("0", now).is_err());
        }
        // One past i64 does not parse.
        assert!(check_timestamp("9223372036854775808", now).is_err());
    }

    proptest! {
        #[test]
        fn sign_then_verify(body in proptest::collection::vec(any::<u8>(), 0..200), ts in 0i64..2_000_000_000) {
            let ts = ts.to_string();
            let sig = sign(b"k", "post", "/v1/events", &ts, &body);
            prop_assert!(verify(b"k", "POST", "/v1/events", &ts, &body, &sig));
            prop_assert!(!verify(b"other", "POST", "/v1/events", &ts, &body, &sig));
            prop_assert!(!verify(b"k", "POST", "/v1/events/bulk", &ts, &body, &sig));
            let mut tampered = body.clone();
            tampered.push(b' ');
            prop_assert!(!verify(b"k", "POST", "/v1/events", &ts, &tampered, &sig));
        }

        #[test]
        fn garbage_signatures_are_refused(sig in ".{0,80}") {
            prop_assert!(!verify(b"k", "POST", "/", "1", b"", &sig));
        }
    }
}
