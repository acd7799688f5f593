//! The GAMEMONITORING webhook signature, exactly as the seed's PHP computes it: every key but
//! `signature`, sorted byte-wise, `key=value` joined by `&`, HMAC-SHA256 hex keyed with the
//! webhook token, compared in constant time.

use serde_json::{Map, Value};

use crate::auth::{hmac_hex, hmac_matches};

/// How PHP's `(string)` renders a decoded JSON value, with the seed's one special case:
/// `is_test` is `"true"` only when it is the JSON boolean `true`, else `"false"`.
/// Numbers are their JSON text (so a numeric `event_id` signs as written); `true` → `"1"`,
/// `false` and `null` → `""`; arrays and objects → `"Array"` (PHP's rendering).
fn render(key: &str, value: &Value) -> String {
    if key == "is_test" {
        return if value == &Value::Bool(true) {
            "true"
        } else {
            "false"
        }
        .into();
    }
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "1".into(),
        Value::Bool(false) | Value::Null => String::new(),
        Value::Array(_) | Value::Object(_) => "Array".into(),
    }
}

/// The string the signature covers.
pub fn signing_string(body: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = body.keys().filter(|k| *k != "signature").collect();
    keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    keys.iter()
        .map(|k| format!("{k}={}", render(k, &body[k.as_str()])))
        .collect::<Vec<_>>()
        .join("&")
}

/// The hex signature GAMEMONITORING would send for `body` (tests and examples use it).
pub fn sign(token: &[u8], body: &Map<String, Value>) -> String {
    hmac_hex(token, &[signing_string(body).as_bytes()])
}

/// Whether `body["signature"]` is the right signature, checked in constant time.
pub fn verify(token: &[u8], body: &Map<String, Value>) -> bool {
    let Some(Value::String(presented)) = body.get("signature") else {
        return false;
    };
    hmac_matches(token, &[signing_string(body).as_bytes()], presented.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &[u8] = b"gm-webhook-token-0123";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn signing_string_sorts_and_renders() {
        let body = obj(json!({
            "signature": "x", "is_test": false, "event_type": "server.vote",
            "event_id": 12345, "b": true, "a": null, "Z": 1.5, "c": false, "n": [1]
        }));
        assert_eq!(
            signing_string(&body),
            "Z=1.5&a=&b=1&c=&event_id=12345&event_type=server.vote&is_test=false&n=Array"
        );
        // is_test is "true" only for the boolean true.
        for (v, want) in [
            (json!(true), "true"),
            (json!("true"), "false"),
            (json!(1), "false"),
            (json!(null), "false"),
        ] {
            assert_eq!(
                signing_string(&obj(json!({ "is_test": v }))),
                format!("is_test={want}")
            );
        }
        // Only present keys are signed.
        assert_eq!(signing_string(&obj(json!({"event_id": "a"}))), "event_id=a");
    }

    /// Vectors computed independently with Python's `hmac` module, for each signing string S:
    /// `python3 -c 'import hmac,sys; print(hmac.new(b"gm-webhook-token-0123", sys.argv[1].encode(), "sha256").hexdigest())' "S"`
    #[test]
    fn matches_independent_vectors() {
        let cases = [
            (
                json!({"event_id": "9824cabb-2203-437e-9b6c-aba43dde3e4b",
                       "event_type": "server.vote", "is_test": false}),
                "event_id=9824cabb-2203-437e-9b6c-aba43dde3e4b&event_type=server.vote&is_test=false",
                "10a4b2dc2c7be964ffa8d6d3b4b52872ca18e391779dde59f31f1a83a584742a",
            ),
            (
                json!({"event_type": "server.vote", "event_id": 12345, "is_test": false}),
                "event_id=12345&event_type=server.vote&is_test=false",
                "fca5098ec9779ccb9de9496273c384f7dd90f43af36c1b24585cea8b9f15e54d",
            ),
            (
                json!({"is_test": true, "event_type": "server.vote", "event_id": "test-1"}),
                "event_id=test-1&event_type=server.vote&is_test=true",
                "5c1ec6d6a135628a0e8d8b33674d5fbcf473b040c6ddc534879f31cfe7973f30",
            ),
        ];
        for (body, string, hex_sig) in cases {
            let mut body = obj(body);
            assert_eq!(signing_string(&body), string);
            assert_eq!(sign(TOKEN, &body), hex_sig);
            body.insert("signature".into(), json!(hex_sig));
            assert!(verify(TOKEN, &body));
            assert!(!verify(b"another-token", &body));
            body.insert("event_type".into(), json!("server.other"));
            assert!(!verify(TOKEN, &body));
        }
    }

    #[test]
    fn garbage_signatures_are_refused() {
        for sig in [json!("zz"), json!(""), json!(123), json!(null)] {
            let body = obj(json!({"event_id": "1", "signature": sig}));
            assert!(!verify(TOKEN, &body));
        }
        assert!(!verify(TOKEN, &obj(json!({"event_id": "1"}))));
    }
}
