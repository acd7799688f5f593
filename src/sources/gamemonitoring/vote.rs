//! The vote lookup: `GET {api_base}/votes/{vote_id}` with a timeout, and a defensive parser
//! of `{"response": {"nickname", "server": {"id"}, "user": {…}}}`.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// Most bytes read from the API for one vote.
const MAX_RESPONSE: usize = 1024 * 1024;

/// The parts of a vote a reward needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedVote {
    /// `response.nickname`, trimmed, never empty.
    pub nickname: String,
    /// `response.server.id`, else `response.entity_id` (some API clients see that), as text.
    pub server_id: Option<String>,
    /// `response.user.id`, as text.
    pub user_id: Option<String>,
}

/// Why a vote could not be fetched. Logged, never shown to the sender.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    #[error("vote API timed out")]
    Timeout,
    #[error("vote API unreachable: {0}")]
    Transport(String),
    #[error("vote API answered HTTP {0}")]
    Status(u16),
    #[error("unexpected vote response: {0}")]
    Malformed(String),
}

impl VoteError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            VoteError::Timeout => "timeout",
            VoteError::Transport(_) => "transport",
            VoteError::Status(_) => "status",
            VoteError::Malformed(_) => "malformed",
        }
    }
}

/// An id rendered as text: strings trimmed, numbers as their JSON text; empty → `None`.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse the API's answer.
pub fn parse_vote(body: &[u8]) -> Result<FetchedVote, VoteError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| VoteError::Malformed(format!("not JSON: {e}")))?;
    let r = v
        .get("response")
        .filter(|r| r.is_object())
        .ok_or_else(|| VoteError::Malformed("no response object".into()))?;
    let nickname = match r.get("nickname") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(VoteError::Malformed("no nickname".into())),
    };
    let server_id = id_text(r.get("server").and_then(|s| s.get("id")))
        .or_else(|| id_text(r.get("entity_id")))
        .or_else(|| id_text(r.get("server").and_then(|s| s.get("entity_id"))));
    let user_id = id_text(r.get("user").and_then(|u| u.get("id")));
    Ok(FetchedVote {
        nickname,
        server_id,
        user_id,
    })
}

/// PHP's `rawurlencode`: everything but `A-Z a-z 0-9 - _ . ~` percent-encoded.
pub fn rawurlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("HTTP client")
    })
}

/// `GET {api_base}/votes/{vote_id}` within `timeout`.
pub async fn fetch_vote(
    api_base: &str,
    vote_id: &str,
    timeout: Duration,
) -> Result<FetchedVote, VoteError> {
    let url = format!("{}/votes/{}", api_base, rawurlencode(vote_id));
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            VoteError::Timeout
        } else {
            VoteError::Transport(e.without_url().to_string())
        }
    };
    let body = tokio::time::timeout(timeout, async {
        let mut resp = client()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(classify)?;
        if !resp.status().is_success() {
            return Err(VoteError::Status(resp.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(VoteError::Malformed("response too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    })
    .await
    .map_err(|_| VoteError::Timeout)??;
    parse_vote(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<FetchedVote, VoteError> {
        parse_vote(v.to_string().as_bytes())
    }

    #[test]
    fn parses_the_seed_shape_with_numeric_or_string_ids() {
        let v = parse(
            json!({"response": {"nickname": " PlayerName ", "server": {"id": 1},
                                          "user": {"id": 77, "name": "x"}}}),
        )
        .unwrap();
        assert_eq!(
            v,
            FetchedVote {
                nickname: "PlayerName".into(),
                server_id: Some("1".into()),
                user_id: Some("77".into())
            }
        );
        let v = parse(json!({"response": {"nickname": "a", "server": {"id": "srv-9"}}})).unwrap();
        assert_eq!(v.server_id.as_deref(), Some("srv-9"));
        assert_eq!(v.user_id, None);
    }

    #[test]
    fn entity_id_stands_in_for_server_id() {
        let v = parse(json!({"response": {"nickname": "a", "entity_id": 42}})).unwrap();
        assert_eq!(v.server_id.as_deref(), Some("42"));
        let v =
            parse(json!({"response": {"nickname": "a", "server": {"entity_id": "7"}}})).unwrap();
        assert_eq!(v.server_id.as_deref(), Some("7"));
        // server.id wins over entity_id.
        let v = parse(json!({"response": {"nickname": "a", "server": {"id": 1}, "entity_id": 2}}))
            .unwrap();
        assert_eq!(v.server_id.as_deref(), Some("1"));
        let v = parse(json!({"response": {"nickname": "a", "server": null}})).unwrap();
        assert_eq!(v.server_id, None);
    }

    #[test]
    fn refuses_missing_or_odd_fields() {
        for bad in [
            json!({"response": {"server": {"id": 1}}}),
            json!({"response": {"nickname": "  "}}),
            json!({"response": {"nickname": null}}),
            json!({"response": {"nickname": ["a"]}}),
            json!({"response": "x"}),
            json!({"nickname": "a"}),
            json!([1]),
        ] {
            assert!(
                matches!(parse(bad.clone()), Err(VoteError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_vote(b"<html>oops"),
            Err(VoteError::Malformed(_))
        ));
    }

    #[test]
    fn encodes_vote_ids_like_php() {
        assert_eq!(
            rawurlencode("9824cabb-2203-437e-9b6c-aba43dde3e4b"),
            "9824cabb-2203-437e-9b6c-aba43dde3e4b"
        );
        assert_eq!(rawurlencode("a/b c?d~é"), "a%2Fb%20c%3Fd~%C3%A9");
    }
}
