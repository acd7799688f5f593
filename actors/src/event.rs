//! The Phoenix event contract (seed 000 §4, IngestionEventV1): validation and normalisation.
//!
//! Pure and synchronous: the gateway calls [`Event::from_json`] per event, so one bad event in
//! a bulk request fails alone. The normalised JSON (with `tenant_id` overridden) is what the
//! log stores and what leaderboards score.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Longest accepted `event_id`, `type` or `actor.user_id`, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// How far in the future `occurred_at` may be (seed 000 §4: one hour).
pub const MAX_FUTURE: Duration = Duration::hours(1);

/// A validated event, ready to be logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub user_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The normalised event as compact JSON: `tenant_id` set to the authenticated tenant,
    /// `occurred_at` in canonical RFC 3339 UTC.
    pub json: String,
}

/// Why an event was refused, phrased for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError(pub String);

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Validation failed: {}", self.0)
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, EventError> {
    Err(EventError(msg.into()))
}

fn required_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => fail(format!("{field} is required")),
        Some(Value::String(s)) if s.trim().is_empty() => fail(format!("{field} cannot be empty")),
        Some(Value::String(s)) if s.len() > MAX_ID_LEN => {
            fail(format!("{field} is longer than {MAX_ID_LEN} bytes"))
        }
        Some(Value::String(s)) => Ok(s),
        Some(_) => fail(format!("{field} must be a string")),
    }
}

impl Event {
    /// Validate one event and normalise it for `tenant`. `now` bounds `occurred_at`.
    pub fn from_json(value: Value, tenant: &str, now: DateTime<Utc>) -> Result<Event, EventError> {
        let Value::Object(mut obj) = value else {
            return fail("event must be a JSON object");
        };
        let event_id = required_str(&obj, "event_id")?.to_owned();
        let event_type = required_str(&obj, "type")
            .map_err(|e| EventError(e.0.replace("type ", "event_type ")))?
            .to_owned();
        let user_id = match obj.get("actor") {
            None | Some(Value::Null) => return fail("actor is required"),
            Some(Value::Object(actor)) => required_str(actor, "user_id")
                .map_err(|e| EventError(format!("actor.{}", e.0)))?
                .to_owned(),
            Some(_) => return fail("actor must be an object"),
        };
        if let Some(Value::Object(actor)) = obj.get("actor") {
            match actor.get("metadata") {
                None | Some(Value::Null) | Some(Value::Object(_)) => {}
                Some(_) => return fail("actor.metadata must be an object"),
            }
        }
        match obj.get("subject") {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(_) => return fail("subject must be an object"),
        }
        match obj.get("attrs") {
            None | Some(Value::Null) => return fail("attrs is required (use {} when empty)"),
            Some(Value::Object(_)) => {}
            Some(_) => return fail("attrs must be an object"),
        }
        let occurred_at = match obj.get("occurred_at") {
            None | Some(Value::Null) => return fail("occurred_at is required"),
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    EventError(format!(
                        "occurred_at must be an ISO 8601 timestamp with a time zone, got {s:?}"
                    ))
                })?
                .with_timezone(&Utc),
            Some(_) => return fail("occurred_at must be a string"),
        };
        if occurred_at > now + MAX_FUTURE {
            return fail("occurred_at cannot be more than 1 hour in the future");
        }
        obj.insert("tenant_id".into(), Value::String(tenant.to_owned()));
        obj.insert(
            "occurred_at".into(),
            Value::String(occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        );
        let json = serde_json::to_string(&Value::Object(obj)).expect("a Value always serialises");
        Ok(Event {
            event_id,
            event_type,
            user_id,
            occurred_at,
            json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2025-11-18T13:00:00Z".parse().unwrap()
    }

    fn seed_event() -> Value {
        json!({
          "tenant_id": "placeholder",
          "event_id": "evt_01JBQ56ZGTKNC3XN8R8KZZR4N5",
          "type": "match.completed",
          "actor": {"user_id": "user-123", "metadata": {"region": "na-east", "platform": "ios"}},
          "subject": {"type": "match", "id": "match-987"},
          "occurred_at": "2025-11-18T12:34:56Z",
          "attrs": {"score": 1550, "duration_seconds": 480, "victory": true}
        })
    }

    #[test]
    fn seed_sample_is_accepted_and_tenant_overridden() {
        let e = Event::from_json(seed_event(), "acme", now()).unwrap();
        assert_eq!(e.event_id, "evt_01JBQ56ZGTKNC3XN8R8KZZR4N5");
        assert_eq!(e.event_type, "match.completed");
        assert_eq!(e.user_id, "user-123");
        let v: Value = serde_json::from_str(&e.json).unwrap();
        assert_eq!(v["tenant_id"], "acme");
        assert_eq!(v["attrs"]["score"], 1550);
        assert_eq!(v["occurred_at"], "2025-11-18T12:34:56Z");
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let mut v = seed_event();
        v["occurred_at"] = json!("2025-11-18T14:34:56+02:00");
        let e = Event::from_json(v, "acme", now()).unwrap();
        assert_eq!(
            e.occurred_at,
            "2025-11-18T12:34:56Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn each_missing_or_bad_field_is_named() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("event_id", Value::Null, "event_id is required"),
            ("event_id", json!(""), "event_id cannot be empty"),
            ("event_id", json!(5), "event_id must be a string"),
            ("type", json!(""), "event_type cannot be empty"),
            ("type", Value::Null, "event_type is required"),
            ("actor", Value::Null, "actor is required"),
            ("actor", json!("u"), "actor must be an object"),
            ("actor", json!({}), "actor.user_id is required"),
            ("attrs", Value::Null, "attrs is required"),
            ("attrs", json!([1]), "attrs must be an object"),
            ("subject", json!(3), "subject must be an object"),
            ("occurred_at", Value::Null, "occurred_at is required"),
            (
                "occurred_at",
                json!("yesterday"),
                "occurred_at must be an ISO 8601",
            ),
            (
                "occurred_at",
                json!("2025-11-18T14:00:01Z"),
                "more than 1 hour in the future",
            ),
        ];
        for (field, value, expect) in cases {
            let mut v = seed_event();
            if value.is_null() {
                v.as_object_mut().unwrap().remove(field);
            } else {
                v[field] = value;
            }
            let err = Event::from_json(v, "acme", now()).unwrap_err();
            assert!(err.0.contains(expect), "{field}: {err} lacks {expect:?}");
        }
    }

    #[test]
    fn exactly_one_hour_ahead_is_allowed() {
        let mut v = seed_event();
        v["occurred_at"] = json!("2025-11-18T14:00:00Z");
        assert!(Event::from_json(v, "acme", now()).is_ok());
    }

    #[test]
    fn non_object_is_refused() {
        assert!(Event::from_json(json!([1, 2]), "t", now()).is_err());
    }

    proptest! {
        /// Arbitrary JSON never panics the validator, and any accepted event round-trips.
        #[test]
        fn never_panics(s in ".{0,64}", n in any::<i64>()) {
            let mut v = seed_event();
            v["event_id"] = json!(s);
            v["attrs"]["n"] = json!(n);
            if let Ok(e) = Event::from_json(v, "t", now()) {
                let back: Value = serde_json::from_str(&e.json).unwrap();
                prop_assert_eq!(back["event_id"].as_str().unwrap(), e.event_id.as_str());
            }
        }
    }
}
