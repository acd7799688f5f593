//! The Phoenix event contract (seed 000 §4, IngestionEventV1): validation and normalisation.
//!
//! Pure and synchronous: the gateway calls [`Event::from_json`] per event, so one bad event in
//! a bulk request fails alone. The normalised JSON (with `tenant_id` overridden) is what the
//! log stores and what leaderboards score.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use std::borrow::Cow;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use thiserror::Error;

/// Longest accepted `event_id`, `type` or `actor.user_id`, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// How far in the future `occurred_at` may be (seed 000 §4: one hour).
pub const MAX_FUTURE: Duration = Duration::hours(1);

/// Decode a logged event's JSON: the one decoder every consumer of the log uses (leaderboards,
/// the log API). [`Event::from_str`] refuses anything this would refuse, so an acknowledged
/// event always decodes.
pub fn decode(json: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(json)
}

/// Why `json` would not [`decode`], phrased for the client; `None` if it decodes. Walks the
/// text with the same parser, recursion limit (127 levels), number range (finite `f64`) and
/// escape rules (no lone surrogates) that building a [`Value`] uses, without building it.
///
/// serde_json does not tell these causes apart by type (all are syntax errors), so its message
/// is the only place they can be read from; that reading is done here, once.
pub fn undecodable(json: &str) -> Option<Undecodable> {
    let e = serde_json::from_str::<Decodable>(json).err()?;
    let text = e.to_string();
    Some(if text.starts_with("recursion limit exceeded") {
        Undecodable::TooDeep
    } else if text.starts_with("number out of range") {
        Undecodable::NumberOutOfRange
    } else if text.contains("surrogate") || text.contains("escape") {
        Undecodable::BadEscape(strip_position(&text).to_owned())
    } else {
        Undecodable::Other(strip_position(&text).to_owned())
    })
}

/// Why an event's text would not [`decode`], phrased for the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Undecodable {
    #[error("nesting is too deep (at most 127 levels, the event object included)")]
    TooDeep,
    #[error("a number is out of range (it must fit a 64-bit float, e.g. not 1e309)")]
    NumberOutOfRange,
    /// With serde_json's description, positions left out.
    #[error("a string holds an invalid \\u escape ({0})")]
    BadEscape(String),
    #[error("the event cannot be decoded ({0})")]
    Other(String),
}

/// serde_json's message without " at line L column C" (positions in the normalised text
/// would mislead the client).
fn strip_position(text: &str) -> &str {
    text.split(" at line ").next().unwrap_or(text)
}

/// Accepts exactly the JSON documents `serde_json::Value` accepts, keeping nothing.
struct Decodable;

impl<'de> Deserialize<'de> for Decodable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Decodable;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Decodable, E> {
                Ok(Decodable)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Decodable, E> {
                Ok(Decodable)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Decodable, E> {
                Ok(Decodable)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Decodable, E> {
                Ok(Decodable)
            }
            fn visit_str<E>(self, _: &str) -> Result<Decodable, E> {
                Ok(Decodable)
            }
            fn visit_unit<E>(self) -> Result<Decodable, E> {
                Ok(Decodable)
            }
            fn visit_none<E>(self) -> Result<Decodable, E> {
                Ok(Decodable)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Decodable, A::Error> {
                while seq.next_element::<Decodable>()?.is_some() {}
                Ok(Decodable)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Decodable, A::Error> {
                while map.next_key::<Decodable>()?.is_some() {
                    map.next_value::<Decodable>()?;
                }
                Ok(Decodable)
            }
        }
        d.deserialize_any(V)
    }
}

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

/// Why an event was refused, one variant per cause. The message (`Display`) is phrased for
/// the client and names the field; the edge adds its own prefix where the contract wants one.
#[derive(Debug, Clone, Error)]
pub enum EventError {
    /// The text (`what`: `event` or `actor`) is not well-formed JSON.
    #[error("Malformed JSON in {what}: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The event itself is not a JSON object.
    #[error("event must be a JSON object")]
    EventNotObject,
    /// A member that must be an object (`actor`, `actor.metadata`, `subject`, `attrs`) is not.
    #[error("{0} must be an object")]
    NotObject(&'static str),
    /// The event holds a member twice.
    #[error("field {0} appears more than once")]
    DuplicateField(String),
    /// A required member is missing or null.
    #[error("{0} is required")]
    Required(&'static str),
    /// `attrs` is missing or null.
    #[error("attrs is required (use {{}} when empty)")]
    AttrsRequired,
    #[error("{0} cannot be empty")]
    Empty(&'static str),
    #[error("{0} is longer than {MAX_ID_LEN} bytes")]
    TooLong(&'static str),
    #[error("{0} must be a string")]
    NotString(&'static str),
    /// A string member's text does not unescape.
    #[error("{0}")]
    BadString(#[source] Arc<serde_json::Error>),
    #[error("occurred_at must be an ISO 8601 timestamp with a time zone, got {text:?}")]
    BadTimestamp {
        text: String,
        #[source]
        source: chrono::ParseError,
    },
    #[error("occurred_at cannot be more than 1 hour in the future")]
    TooFarAhead,
    /// The normalised event would not decode for a consumer of the log.
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
}

fn bad_string(e: serde_json::Error) -> EventError {
    EventError::BadString(Arc::new(e))
}

/// The members of one JSON object, borrowed from the input: keys (unescaped only when they
/// contain escapes) and raw values. Parsing this is the only pass over an event's bytes.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Members<'a> {
    /// The members of the object `raw`, or `None` when it is not an object.
    fn parse(raw: &'a str, what: &'static str) -> Result<Option<Members<'a>>, EventError> {
        match raw.trim_start().as_bytes().first() {
            Some(b'{') => serde_json::from_str(raw)
                .map(Some)
                .map_err(|e| EventError::Malformed {
                    what,
                    source: Arc::new(e),
                }),
            _ => Ok(None),
        }
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.get())
    }

    fn first_duplicate(&self) -> Option<&str> {
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_ref()).collect();
        keys.sort_unstable();
        keys.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }
}

/// JSON kind of a raw value, from its first byte.
fn kind(raw: &str) -> u8 {
    raw.as_bytes().first().copied().unwrap_or(b'n')
}

fn required_str(raw: Option<&str>, field: &'static str) -> Result<String, EventError> {
    match raw {
        None | Some("null") => Err(EventError::Required(field)),
        Some(r) if kind(r) == b'"' => {
            let s: String = serde_json::from_str(r).map_err(bad_string)?;
            if s.trim().is_empty() {
                Err(EventError::Empty(field))
            } else if s.len() > MAX_ID_LEN {
                Err(EventError::TooLong(field))
            } else {
                Ok(s)
            }
        }
        Some(_) => Err(EventError::NotString(field)),
    }
}

fn optional_object(raw: Option<&str>, field: &'static str) -> Result<(), EventError> {
    match raw {
        None | Some("null") => Ok(()),
        Some(r) if kind(r) == b'{' => Ok(()),
        Some(_) => Err(EventError::NotObject(field)),
    }
}

impl Event {
    /// Validate one event (a JSON value) and normalise it for `tenant`.
    pub fn from_json(value: Value, tenant: &str, now: DateTime<Utc>) -> Result<Event, EventError> {
        Event::from_str(&value.to_string(), tenant, now)
    }

    /// Validate one event given as JSON text and normalise it for `tenant`: `tenant_id` is
    /// overwritten, `occurred_at` rewritten in UTC, every other member kept byte for byte and
    /// in order. `now` bounds `occurred_at`.
    pub fn from_str(raw: &str, tenant: &str, now: DateTime<Utc>) -> Result<Event, EventError> {
        let members = Members::parse(raw, "event")?.ok_or(EventError::EventNotObject)?;
        if let Some(dup) = members.first_duplicate() {
            return Err(EventError::DuplicateField(dup.to_owned()));
        }
        let event_id = required_str(members.get("event_id"), "event_id")?;
        let event_type = required_str(members.get("type"), "event_type")?;
        let user_id = match members.get("actor") {
            None | Some("null") => return Err(EventError::Required("actor")),
            Some(r) => {
                let actor = Members::parse(r, "actor")?.ok_or(EventError::NotObject("actor"))?;
                let user = required_str(actor.get("user_id"), "actor.user_id")?;
                optional_object(actor.get("metadata"), "actor.metadata")?;
                user
            }
        };
        optional_object(members.get("subject"), "subject")?;
        match members.get("attrs") {
            None | Some("null") => return Err(EventError::AttrsRequired),
            Some(r) if kind(r) == b'{' => {}
            Some(_) => return Err(EventError::NotObject("attrs")),
        }
        let occurred_at = match members.get("occurred_at") {
            None | Some("null") => return Err(EventError::Required("occurred_at")),
            Some(r) if kind(r) == b'"' => {
                let s: Cow<str> = serde_json::from_str(r).map_err(bad_string)?;
                DateTime::parse_from_rfc3339(&s)
                    .map_err(|source| EventError::BadTimestamp {
                        text: s.clone().into_owned(),
                        source,
                    })?
                    .with_timezone(&Utc)
            }
            Some(_) => return Err(EventError::NotString("occurred_at")),
        };
        if occurred_at > now + MAX_FUTURE {
            return Err(EventError::TooFarAhead);
        }
        let mut json = String::with_capacity(raw.len() + tenant.len() + 48);
        json.push_str("{\"tenant_id\":");
        json.push_str(&Value::from(tenant).to_string());
        json.push_str(",\"occurred_at\":\"");
        json.push_str(&occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        json.push('"');
        for (k, v) in &members.0 {
            if k == "tenant_id" || k == "occurred_at" {
                continue;
            }
            json.push(',');
            match k {
                Cow::Borrowed(k)
                    if !k.contains(['"', '\\']) && !k.chars().any(char::is_control) =>
                {
                    json.push('"');
                    json.push_str(k);
                    json.push('"');
                }
                _ => json.push_str(&Value::from(k.as_ref()).to_string()),
            }
            json.push(':');
            json.push_str(v.get());
        }
        json.push('}');
        // Members were copied as raw text, which serde_json skips without the checks a
        // consumer's decode applies: check the exact text every consumer will read.
        if let Some(problem) = undecodable(&json) {
            return Err(problem.into());
        }
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
            assert!(
                err.to_string().contains(expect),
                "{field}: {err} lacks {expect:?}"
            );
        }
    }

    #[test]
    fn exactly_one_hour_ahead_is_allowed() {
        let mut v = seed_event();
        v["occurred_at"] = json!("2025-11-18T14:00:00Z");
        assert!(Event::from_json(v, "acme", now()).is_ok());
    }

    #[test]
    fn members_are_kept_in_order_and_byte_for_byte() {
        let raw = r#"{"event_id":"e\u0041","type":"t","actor":{"user_id":"u"},"tenant_id":"evil","attrs":{"big":12345678901234567890,"f":1.50},"occurred_at":"2025-11-18T12:00:00+01:00","w\"eird":[1, 2]}"#;
        let e = Event::from_str(raw, "acme", now()).unwrap();
        assert_eq!(e.event_id, "eA");
        assert_eq!(
            e.json,
            r#"{"tenant_id":"acme","occurred_at":"2025-11-18T11:00:00Z","event_id":"e\u0041","type":"t","actor":{"user_id":"u"},"attrs":{"big":12345678901234567890,"f":1.50},"w\"eird":[1, 2]}"#
        );
        let v: Value = serde_json::from_str(&e.json).unwrap();
        assert_eq!(v["w\"eird"], json!([1, 2]));
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let raw = r#"{"event_id":"a","event_id":"b","type":"t","actor":{"user_id":"u"},"attrs":{},"occurred_at":"2025-11-18T12:00:00Z"}"#;
        let err = Event::from_str(raw, "acme", now()).unwrap_err();
        assert!(
            err.to_string().contains("event_id appears more than once"),
            "{err}"
        );
    }

    #[test]
    fn non_object_is_refused() {
        assert!(Event::from_json(json!([1, 2]), "t", now()).is_err());
    }

    fn with_attrs(attrs: &str) -> String {
        format!(
            r#"{{"event_id":"e","type":"t","actor":{{"user_id":"u"}},"occurred_at":"2025-11-18T12:00:00Z","attrs":{attrs}}}"#
        )
    }

    #[test]
    fn what_a_consumer_cannot_decode_is_refused_and_named() {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(130), "}".repeat(130));
        let cases = [
            (deep.as_str(), "nesting is too deep"),
            (r#"{"x":1e309}"#, "number is out of range"),
            (r#"{"x":-1e309}"#, "number is out of range"),
            (r#"{"x":"\ud800"}"#, "invalid \\u escape"),
            (r#"{"\udc00":1}"#, "invalid \\u escape"),
        ];
        for (attrs, want) in cases {
            let raw = with_attrs(attrs);
            assert!(
                decode(&raw).is_err(),
                "the case itself must be undecodable: {attrs}"
            );
            let err = Event::from_str(&raw, "acme", now()).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{attrs}: {err} lacks {want:?}"
            );
        }
    }

    #[test]
    fn the_deepest_decodable_nesting_is_accepted() {
        // serde_json allows 127 levels: the event object is one, attrs and 125 objects inside
        // it the rest.
        let ok = format!("{}1{}", r#"{"a":"#.repeat(126), "}".repeat(126));
        let e = Event::from_str(&with_attrs(&ok), "acme", now()).unwrap();
        decode(&e.json).unwrap();
        let too_deep = format!("{}1{}", r#"{"a":"#.repeat(127), "}".repeat(127));
        assert!(Event::from_str(&with_attrs(&too_deep), "acme", now()).is_err());
        // Surrogate pairs and big-but-finite numbers are fine.
        let fine =
            r#"{"s":"\ud83d\ude00","n":1.7976931348623157e308,"i":123456789012345678901234567890}"#;
        decode(
            &Event::from_str(&with_attrs(fine), "acme", now())
                .unwrap()
                .json,
        )
        .unwrap();
    }

    /// JSON text for attrs built from hostile pieces: deep nesting, extreme exponents,
    /// escapes (valid pairs and lone halves), control escapes.
    fn hostile_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (any::<i32>(), 280i32..330).prop_map(|(m, e)| format!("{m}e{e}")),
            (any::<i32>(), -400i32..-280).prop_map(|(m, e)| format!("{m}.5e{e}")),
            any::<f64>().prop_filter_map("finite", |x| x.is_finite().then(|| format!("{x:e}"))),
            proptest::sample::select(vec![
                r#""\ud800""#,
                r#""\udfff""#,
                r#""\ud83d\ude00""#,
                r#""\u0000""#,
                r#""\ud800\u0041""#,
                r#""plain""#,
                "true",
                "null",
                "[]",
                "{}",
                "18446744073709551616",
                "-9223372036854775809",
            ])
            .prop_map(str::to_owned),
        ];
        leaf.prop_recursive(8, 64, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(inner, 0..4).prop_map(|v| {
                    let m: Vec<String> = v
                        .iter()
                        .enumerate()
                        .map(|(i, x)| format!(r#""k{i}":{x}"#))
                        .collect();
                    format!("{{{}}}", m.join(","))
                }),
            ]
        })
    }

    proptest! {
        /// Whatever ingestion accepts, the leaderboards' decoder decodes; and whatever that
        /// decoder refuses, ingestion refused.
        #[test]
        fn accepted_events_always_decode(v in hostile_value(), depth in 0usize..140) {
            let attrs = format!("{}{v}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            let raw = with_attrs(&format!(r#"{{"v":{attrs}}}"#));
            if let Ok(e) = Event::from_str(&raw, "t", now()) {
                prop_assert!(decode(&e.json).is_ok(), "accepted but undecodable: {}", e.json);
            }
            if decode(&raw).is_err() {
                prop_assert!(Event::from_str(&raw, "t", now()).is_err());
            }
        }

        /// Arbitrary text never panics the validator.
        #[test]
        fn garbage_never_panics(s in ".{0,200}") {
            let _ = Event::from_str(&s, "t", now());
        }

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
