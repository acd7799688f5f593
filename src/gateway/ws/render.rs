//! The server's WebSocket frames as JSON text: view snapshots and updates (rendered once per
//! published frame and shared by every session watching the view) and error frames in the
//! seed's envelope fields.

use phoenix_actors::leaderboard::query::QueryError;
use phoenix_actors::leaderboard::views::{ViewFrame, ViewKey};
use serde_json::{json, Value};

use crate::error::ApiError;

/// Render a view frame for subscription `id`.
pub fn render(id: &str, board: &str, key: &ViewKey, frame: &ViewFrame) -> String {
    with_id(id, &render_body(board, key, frame))
}

/// The frame without its subscription id: the same for every session watching the view, so
/// it is rendered once per published frame (`Published::rendered`).
pub(crate) fn render_body(board: &str, key: &ViewKey, frame: &ViewFrame) -> String {
    let tf = key.tf.as_str();
    match frame {
        ViewFrame::Snapshot { seq, window, entries } => json!({
            "type": "snapshot", "leaderboard": board, "timeframe": tf,
            "window": window.to_string(), "seq": seq, "entries": entries,
        }),
        ViewFrame::Update { seq, window, changes } => json!({
            "type": "update", "leaderboard": board, "timeframe": tf,
            "window": window.to_string(), "seq": seq,
            "changes": changes.iter().map(|c| json!({
                "user_id": c.user_id, "rank": c.rank, "score": c.score, "previous_rank": c.previous_rank,
            })).collect::<Vec<_>>(),
        }),
    }
    .to_string()
}

/// `{"id":…,` spliced in front of a rendered body `{…}`.
pub(crate) fn with_id(id: &str, body: &str) -> String {
    let id = Value::from(id).to_string();
    let mut out = String::with_capacity(body.len() + id.len() + 8);
    out.push_str("{\"id\":");
    out.push_str(&id);
    out.push(',');
    out.push_str(&body[1..]);
    out
}

/// Longest `message` an error frame carries: messages may quote client input.
pub const MAX_ERROR_MESSAGE: usize = 300;

/// An error frame in the seed's envelope fields (`message` cut to [`MAX_ERROR_MESSAGE`]).
pub fn error_frame(id: Option<&str>, code: &str, status: u16, message: &str) -> String {
    let message = truncate(message, MAX_ERROR_MESSAGE);
    json!({"type": "error", "id": id, "error": {"code": code, "message": message, "status": status}})
        .to_string()
}

/// The 503 that ends subscription `id` when its board was replaced, restarted or moved to
/// another node: the client resubscribes and gets a fresh snapshot.
pub(crate) fn ended_frame(id: &str) -> String {
    error_frame(
        Some(id),
        "UNAVAILABLE",
        503,
        "subscription ended (leaderboard changed or restarted); resubscribe",
    )
}

/// A `VALIDATION_ERROR` (400) error frame.
pub fn validation_frame(id: Option<&str>, message: &str) -> String {
    error_frame(id, "VALIDATION_ERROR", 400, message)
}

/// `s` cut to at most `max` bytes at a character boundary, with "…" when cut.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).into()
}

/// The error frame of an [`ApiError`] (its code, status and public message).
pub fn api_error_frame(id: Option<&str>, e: &ApiError) -> String {
    error_frame(id, e.code(), e.status().as_u16(), &e.public_message())
}

/// A refused subscription: the same `QueryError` table as HTTP (`ApiError::from`), except
/// that every server-side failure is a 503 that asks the client to resubscribe.
pub(crate) fn query_error_frame(id: &str, e: QueryError) -> String {
    let e = match ApiError::from(e) {
        e if e.status().is_server_error() => {
            ApiError::Unavailable("Leaderboard temporarily unavailable; resubscribe".into())
        }
        e => e,
    };
    api_error_frame(Some(id), &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_cut_at_a_char_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(400);
        let cut = truncate(&long, MAX_ERROR_MESSAGE);
        assert!(
            cut.len() <= MAX_ERROR_MESSAGE && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        let frame = error_frame(Some("x"), "VALIDATION_ERROR", 400, &"u".repeat(900_000));
        assert!(frame.len() < MAX_ERROR_MESSAGE + 200, "{}", frame.len());
    }
}
