//! A leaderboard definition (SPEC §3): parsed and checked once when saved, then used to score
//! every event. Pure and synchronous.

use std::borrow::Cow;

use serde_json::{json, Value};
use thiserror::Error;

use super::close::RewardsError;
use super::expr::{Expr, ExprError, Known};
use super::matcher::{
    event_type_matches, validate_event_type_pattern, ConditionError, Conditions, PatternError,
};
use super::rank::{SortOrder, Ties, UnknownName};
use super::schedule::{Calendar, Schedule, ScheduleError, MAX_SCHEDULES};
use super::window::Timeframe;

/// Most rules in one definition.
pub const MAX_RULES: usize = 64;
/// Largest `entry.max_members` and `entry.max_attempts` (and the member cap when
/// `max_members` is not set).
pub const MAX_ENTRY_LIMIT: u32 = 1_000_000;

/// Who may score and how often (SPEC §12 `entry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryRules {
    /// Only members (joined through the members API, in log order) score.
    pub join_required: bool,
    /// Most members at once; a join past it is refused (409).
    pub max_members: Option<u32>,
    /// Most scored events per user per window; later ones are counted, not scored.
    pub max_attempts: Option<u32>,
}

impl EntryRules {
    /// The member cap in force.
    pub fn member_cap(&self) -> usize {
        self.max_members.unwrap_or(MAX_ENTRY_LIMIT) as usize
    }

    fn from_json(v: &Value) -> Result<EntryRules, DefinitionError> {
        let Some(obj) = v.as_object() else {
            return invalid("entry", "be an object");
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !["join_required", "max_members", "max_attempts"].contains(&k.as_str()))
        {
            return Err(DefinitionError::UnknownField(format!("entry.{k}")));
        }
        let join_required = match obj.get("join_required") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return invalid("entry.join_required", "be true or false"),
        };
        let limit = |f: &str| match obj.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (1..=u64::from(MAX_ENTRY_LIMIT)).contains(&n) => {
                    Ok(Some(u32::try_from(n).expect("checked range")))
                }
                _ => invalid(
                    format!("entry.{f}"),
                    format!("be an integer from 1 to {MAX_ENTRY_LIMIT}"),
                ),
            },
        };
        Ok(EntryRules {
            join_required,
            max_members: limit("max_members")?,
            max_attempts: limit("max_attempts")?,
        })
    }

    fn to_json(self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("join_required".into(), self.join_required.into());
        if let Some(n) = self.max_members {
            o.insert("max_members".into(), n.into());
        }
        if let Some(n) = self.max_attempts {
            o.insert("max_attempts".into(), n.into());
        }
        Value::Object(o)
    }
}

/// How the points of one user in one window combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    Count,
    Max,
    Min,
    Avg,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Max => "max",
            Aggregation::Min => "min",
            Aggregation::Avg => "avg",
        }
    }

    fn parse(s: &str) -> Option<Aggregation> {
        Some(match s {
            "sum" => Aggregation::Sum,
            "count" => Aggregation::Count,
            "max" => Aggregation::Max,
            "min" => Aggregation::Min,
            "avg" => Aggregation::Avg,
            _ => return None,
        })
    }
}

/// One scoring rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub event_type: String,
    pub conditions: Conditions,
    pub points: Expr,
    /// The expression as the tenant wrote it (returned by GET).
    pub points_source: String,
}

/// A validated leaderboard definition.
#[derive(Debug, Clone)]
pub struct Definition {
    pub id: String,
    pub name: String,
    pub scope: Conditions,
    pub rules: Vec<Rule>,
    pub aggregation: Aggregation,
    pub timeframes: Vec<Timeframe>,
    pub sort_order: SortOrder,
    pub late_grace_seconds: u64,
    /// Reward tiers granted when a window closes (SPEC §12); empty: none.
    pub rewards: Vec<super::close::RewardTier>,
    /// Time zone and schedules: where every window starts and ends.
    pub calendar: Calendar,
    /// `None` when the definition has no `entry` (anyone scores, without limit).
    pub entry: Option<EntryRules>,
    pub ties: Ties,
    /// `timeframes` followed by one timeframe per schedule: everything the board keeps.
    pub frames: Vec<Timeframe>,
}

/// Why a definition was refused, one variant per cause; every message names the field path.
#[derive(Debug, Clone, Error)]
pub enum DefinitionError {
    #[error("id: {0:?} must be 1-64 characters of A-Z a-z 0-9 - _ .")]
    BadId(String),
    #[error("definition must be a JSON object")]
    NotAnObject,
    /// A member no definition (or no part of one) has.
    #[error("{0}: unknown field")]
    UnknownField(String),
    #[error("{0}: required")]
    Required(String),
    #[error("{0}: required string")]
    RequiredString(String),
    /// A member of the wrong type, size or range: `rule` says what it must be.
    #[error("{path}: must {rule}")]
    Invalid {
        path: String,
        rule: Cow<'static, str>,
    },
    #[error("aggregation: unknown aggregation {0:?} (expected sum, count, max, min or avg)")]
    UnknownAggregation(String),
    /// `given` is the listed JSON value as written.
    #[error(
        "timeframes[{index}]: unknown timeframe {given} (expected hourly, daily, weekly, monthly or all_time; other windows go in schedules)"
    )]
    UnknownTimeframe { index: usize, given: String },
    #[error("timeframes[{index}]: {timeframe} is listed twice")]
    DuplicateTimeframe { index: usize, timeframe: Timeframe },
    #[error("sort_order: {0}")]
    SortOrder(#[source] UnknownName),
    #[error("ties: {0}")]
    Ties(#[source] UnknownName),
    #[error(
        "timezone: unknown time zone {0:?} (expected an IANA name such as \"America/Los_Angeles\")"
    )]
    UnknownTimeZone(String),
    #[error("schedules: at most {MAX_SCHEDULES} schedules")]
    TooManySchedules,
    #[error("schedules[{index}].id: {id:?} is listed twice")]
    DuplicateSchedule { index: usize, id: String },
    /// A schedule is refused (the message names its path).
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// `scope` or a rule's `conditions` is refused (the message names its path).
    #[error(transparent)]
    Conditions(#[from] ConditionError),
    /// `rewards` is refused (the message names its path).
    #[error(transparent)]
    Rewards(#[from] RewardsError),
    /// A rule's `event_type` pattern is refused.
    #[error("{path}: {reason}")]
    EventType {
        path: String,
        #[source]
        reason: PatternError,
    },
    /// A rule's `points_expression` does not parse.
    #[error("{path}: {source}")]
    Expr {
        path: String,
        #[source]
        source: ExprError,
    },
}

/// `Err(Invalid)`: `path` must be what `rule` says.
fn invalid<T>(
    path: impl Into<String>,
    rule: impl Into<Cow<'static, str>>,
) -> Result<T, DefinitionError> {
    Err(DefinitionError::Invalid {
        path: path.into(),
        rule: rule.into(),
    })
}

/// Leaderboard ids appear in URLs and sled keys: keep them plain.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Definition {
    /// Parse and check a definition; every error names its field.
    pub fn from_json(id: &str, v: &Value) -> Result<Definition, DefinitionError> {
        if !valid_id(id) {
            return Err(DefinitionError::BadId(id.to_owned()));
        }
        let Some(obj) = v.as_object() else {
            return Err(DefinitionError::NotAnObject);
        };
        const KNOWN: [&str; 13] = [
            "timezone",
            "schedules",
            "entry",
            "ties",
            "rewards",
            "name",
            "scope",
            "rules",
            "aggregation",
            "timeframes",
            "sort_order",
            "late_grace_seconds",
            "id",
        ];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(DefinitionError::UnknownField(k.clone()));
        }
        let name = match obj.get("name") {
            None | Some(Value::Null) => id.to_owned(),
            Some(Value::String(s)) if s.len() <= 200 => s.clone(),
            Some(_) => return invalid("name", "be a string of at most 200 characters"),
        };
        let scope = match obj.get("scope") {
            None | Some(Value::Null) => Conditions::from_json(&Value::Null, "scope"),
            Some(s) => Conditions::from_json(s, "scope"),
        }
        .map_err(DefinitionError::Conditions)?;
        let rules = match obj.get("rules") {
            Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_RULES => list
                .iter()
                .enumerate()
                .map(|(i, r)| parse_rule(i, r))
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) => {
                return invalid("rules", format!("hold 1 to {MAX_RULES} rules"))
            }
            None | Some(Value::Null) => return Err(DefinitionError::Required("rules".into())),
            Some(_) => return invalid("rules", "be an array"),
        };
        let aggregation = match obj.get("aggregation") {
            None | Some(Value::Null) => Aggregation::Sum,
            Some(Value::String(s)) => Aggregation::parse(s)
                .ok_or_else(|| DefinitionError::UnknownAggregation(s.clone()))?,
            Some(_) => return invalid("aggregation", "be a string"),
        };
        let timeframes = match obj.get("timeframes") {
            None | Some(Value::Null) => vec![Timeframe::AllTime],
            Some(Value::Array(list)) if !list.is_empty() => {
                let mut out = Vec::new();
                for (i, t) in list.iter().enumerate() {
                    let tf = t
                        .as_str()
                        .ok_or_else(|| DefinitionError::Invalid {
                            path: format!("timeframes[{i}]"),
                            rule: "be a string".into(),
                        })?
                        .parse::<Timeframe>()
                        .ok()
                        .filter(Timeframe::is_builtin)
                        .ok_or_else(|| DefinitionError::UnknownTimeframe {
                            index: i,
                            given: t.to_string(),
                        })?;
                    if out.contains(&tf) {
                        return Err(DefinitionError::DuplicateTimeframe {
                            index: i,
                            timeframe: tf,
                        });
                    }
                    out.push(tf);
                }
                out
            }
            Some(_) => return invalid("timeframes", "be a non-empty array"),
        };
        let sort_order = match obj.get("sort_order") {
            None | Some(Value::Null) => SortOrder::Desc,
            Some(Value::String(s)) => s.parse().map_err(DefinitionError::SortOrder)?,
            Some(_) => return invalid("sort_order", "be \"desc\" or \"asc\""),
        };
        let late_grace_seconds = match obj.get("late_grace_seconds") {
            None | Some(Value::Null) => 3600,
            Some(v) => match v.as_u64() {
                Some(n) if n <= 366 * 86_400 => n,
                _ => return invalid("late_grace_seconds", "be an integer from 0 to 31622400"),
            },
        };
        let rewards = super::close::parse_rewards(obj.get("rewards").unwrap_or(&Value::Null))
            .map_err(DefinitionError::Rewards)?;
        let tz = match obj.get("timezone") {
            None | Some(Value::Null) => chrono_tz::Tz::UTC,
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| DefinitionError::UnknownTimeZone(s.clone()))?,
            Some(_) => return invalid("timezone", "be an IANA time zone name"),
        };
        let schedules = match obj.get("schedules") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) if list.len() <= MAX_SCHEDULES => {
                let mut out: Vec<Schedule> = Vec::new();
                for (i, v) in list.iter().enumerate() {
                    let s = Schedule::from_json(&format!("schedules[{i}]"), v, tz)
                        .map_err(DefinitionError::Schedule)?;
                    if out.iter().any(|o| o.id == s.id) {
                        return Err(DefinitionError::DuplicateSchedule {
                            index: i,
                            id: s.id.as_str().to_owned(),
                        });
                    }
                    out.push(s);
                }
                out
            }
            Some(Value::Array(_)) => return Err(DefinitionError::TooManySchedules),
            Some(_) => return invalid("schedules", "be an array"),
        };
        let entry = match obj.get("entry") {
            None | Some(Value::Null) => None,
            Some(v) => Some(EntryRules::from_json(v)?),
        };
        let ties = match obj.get("ties") {
            None | Some(Value::Null) => Ties::FirstToReach,
            Some(Value::String(s)) => s.parse().map_err(DefinitionError::Ties)?,
            Some(_) => return invalid("ties", "be \"first_to_reach\" or \"shared\""),
        };
        let frames = timeframes
            .iter()
            .copied()
            .chain(schedules.iter().map(|s| Timeframe::Schedule(s.id)))
            .collect();
        Ok(Definition {
            rewards,
            id: id.to_owned(),
            name,
            scope,
            rules,
            aggregation,
            timeframes,
            sort_order,
            late_grace_seconds,
            calendar: Calendar { tz, schedules },
            entry,
            ties,
            frames,
        })
    }

    /// Whether the board keeps windows of `tf` (a listed timeframe or one of its schedules).
    pub fn has_timeframe(&self, tf: Timeframe) -> bool {
        self.frames.contains(&tf)
    }

    /// Whether only members score.
    pub fn join_required(&self) -> bool {
        self.entry.is_some_and(|e| e.join_required)
    }

    /// The definition as the API returns it. The §12 fields appear only when set, so a board
    /// defined without them prints (and checkpoints under) exactly the text it always did.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "scope": self.scope.to_json(),
            "rules": self.rules.iter().map(|r| json!({
                "event_type": r.event_type,
                "conditions": r.conditions.to_json(),
                "points_expression": r.points_source,
            })).collect::<Vec<_>>(),
            "aggregation": self.aggregation.as_str(),
            "timeframes": self.timeframes.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "sort_order": self.sort_order.as_str(),
            "late_grace_seconds": self.late_grace_seconds,
        });
        let o = v.as_object_mut().expect("object");
        if self.calendar.tz != chrono_tz::Tz::UTC {
            o.insert("timezone".into(), self.calendar.tz.name().into());
        }
        if !self.calendar.schedules.is_empty() {
            let list = self.calendar.schedules.iter().map(Schedule::to_json);
            o.insert("schedules".into(), list.collect());
        }
        if let Some(e) = self.entry {
            o.insert("entry".into(), e.to_json());
        }
        if self.ties != Ties::FirstToReach {
            o.insert("ties".into(), self.ties.as_str().into());
        }
        // Only when set, so boards without rewards keep their canonical JSON (and checkpoints).
        if !self.rewards.is_empty() {
            o.insert("rewards".into(), super::close::rewards_json(&self.rewards));
        }
        v
    }

    /// The points `event` (type `ty`) earns on this board, or `None` if it does not score:
    /// the scope must hold; every rule whose type and conditions match and whose expression
    /// evaluates contributes its points (summed). No rule producing a number → no score.
    pub fn score(&self, ty: &str, event: &Value) -> Option<f64> {
        self.score_known(ty, event, Known::default())
    }

    /// [`Definition::score`] with the event paths in `known` already read.
    pub fn score_known(&self, ty: &str, event: &Value, known: Known<'_>) -> Option<f64> {
        if !self.scope.matches(event) {
            return None;
        }
        let mut total: Option<f64> = None;
        for r in &self.rules {
            if event_type_matches(&r.event_type, ty) && r.conditions.matches(event) {
                if let Some(p) = r.points.eval_known(event, known) {
                    total = Some(total.unwrap_or(0.0) + p);
                }
            }
        }
        total.filter(|t| t.is_finite())
    }
}

fn expr_error(path: String, source: ExprError) -> DefinitionError {
    DefinitionError::Expr { path, source }
}

fn parse_rule(i: usize, v: &Value) -> Result<Rule, DefinitionError> {
    let at = |f: &str| format!("rules[{i}].{f}");
    let Some(obj) = v.as_object() else {
        return invalid(format!("rules[{i}]"), "be an object");
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["event_type", "conditions", "points_expression"].contains(&k.as_str()))
    {
        return Err(DefinitionError::UnknownField(at(k)));
    }
    let event_type = match obj.get("event_type") {
        Some(Value::String(s)) => {
            validate_event_type_pattern(s).map_err(|reason| DefinitionError::EventType {
                path: at("event_type"),
                reason,
            })?;
            s.clone()
        }
        _ => return Err(DefinitionError::RequiredString(at("event_type"))),
    };
    let conditions = Conditions::from_json(
        obj.get("conditions").unwrap_or(&Value::Null),
        &at("conditions"),
    )
    .map_err(DefinitionError::Conditions)?;
    let (points, points_source) = match obj.get("points_expression") {
        Some(Value::String(s)) => (
            Expr::parse(s).map_err(|source| expr_error(at("points_expression"), source))?,
            s.clone(),
        ),
        Some(Value::Number(n)) => {
            let s = n.to_string();
            (
                Expr::parse(&s).map_err(|source| expr_error(at("points_expression"), source))?,
                s,
            )
        }
        _ => return Err(DefinitionError::RequiredString(at("points_expression"))),
    };
    Ok(Rule {
        event_type,
        conditions,
        points,
        points_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_example() -> Value {
        json!({ "name": "Weekly ranked score",
          "scope": { "actor.metadata.region": { "eq": "na-east" } },
          "rules": [ { "event_type": "match.completed",
                       "conditions": { "attrs.mode": { "eq": "ranked" } },
                       "points_expression": "attrs.score * 0.1 + max(attrs.kills - 3, 0)" } ],
          "aggregation": "sum",
          "timeframes": ["hourly", "daily", "weekly", "monthly", "all_time"],
          "sort_order": "desc",
          "late_grace_seconds": 3600 })
    }

    fn ev(region: &str, mode: &str, score: f64, kills: f64) -> Value {
        json!({"type": "match.completed", "actor": {"user_id": "u", "metadata": {"region": region}},
               "attrs": {"mode": mode, "score": score, "kills": kills}})
    }

    #[test]
    fn the_spec_example_parses_and_scores() {
        let d = Definition::from_json("weekly", &spec_example()).unwrap();
        assert_eq!(d.timeframes.len(), 5);
        assert_eq!(
            d.score("match.completed", &ev("na-east", "ranked", 1550.0, 5.0)),
            Some(157.0)
        );
        assert_eq!(
            d.score("match.completed", &ev("na-east", "ranked", 100.0, 1.0)),
            Some(10.0)
        );
        assert_eq!(
            d.score("match.completed", &ev("na-east", "casual", 1550.0, 5.0)),
            None,
            "condition"
        );
        assert_eq!(
            d.score("match.completed", &ev("eu-west", "ranked", 1550.0, 5.0)),
            None,
            "scope"
        );
        assert_eq!(
            d.score("match.started", &ev("na-east", "ranked", 1550.0, 5.0)),
            None,
            "type"
        );
        let back = Definition::from_json("weekly", &d.to_json()).unwrap();
        assert_eq!(back.to_json(), d.to_json());
    }

    #[test]
    fn every_rule_that_matches_contributes() {
        let d = Definition::from_json(
            "x",
            &json!({"rules": [
                {"event_type": "*", "points_expression": "1"},
                {"event_type": "match.*", "points_expression": "attrs.score"},
                {"event_type": "match.completed", "points_expression": "attrs.missing"}
            ]}),
        )
        .unwrap();
        assert_eq!(
            d.score("match.completed", &ev("x", "r", 10.0, 0.0)),
            Some(11.0)
        );
        assert_eq!(d.score("login", &ev("x", "r", 10.0, 0.0)), Some(1.0));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"rules": []}), "rules: must hold"),
            (json!({}), "rules: required"),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1 +"}]}),
                "rules[0].points_expression: at position 3",
            ),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1", "conditions": {"attrs.x": {"like": 1}}}]}),
                "rules[0].conditions",
            ),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1"}], "aggregation": "median"}),
                "aggregation: unknown aggregation \"median\"",
            ),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1"}], "timeframes": ["yearly"]}),
                "timeframes[0]:",
            ),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1"}], "sort_order": "up"}),
                "sort_order:",
            ),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1"}], "scope": {"x": {"eq": 1, "bogus": 2}}}),
                "scope",
            ),
            (
                json!({"rules": [{"event_type": "a*b", "points_expression": "1"}]}),
                "rules[0].event_type",
            ),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1"}], "colour": "red"}),
                "colour: unknown field",
            ),
            (
                json!({"rules": [{"event_type": "a", "points_expression": "1"}], "late_grace_seconds": -1}),
                "late_grace_seconds",
            ),
        ];
        for (v, want) in cases {
            let err = Definition::from_json("x", &v).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        assert!(Definition::from_json("bad id", &spec_example()).is_err());
    }

    /// The checkpoint tag is `to_json().to_string()`: a board defined without the §12 fields
    /// must keep the exact text it had before them, or every old data dir rebuilds.
    #[test]
    fn old_definitions_keep_their_exact_text() {
        let d = Definition::from_json("weekly", &spec_example()).unwrap();
        assert_eq!(
            d.to_json().to_string(),
            r#"{"aggregation":"sum","id":"weekly","late_grace_seconds":3600,"name":"Weekly ranked score","rules":[{"conditions":{"attrs.mode":{"eq":"ranked"}},"event_type":"match.completed","points_expression":"attrs.score * 0.1 + max(attrs.kills - 3, 0)"}],"scope":{"actor.metadata.region":{"eq":"na-east"}},"sort_order":"desc","timeframes":["hourly","daily","weekly","monthly","all_time"]}"#
        );
    }

    fn live_ops() -> Value {
        json!({"rules": [{"event_type": "*", "points_expression": "1"}],
               "timeframes": ["daily", "weekly"],
               "timezone": "America/Los_Angeles",
               "schedules": [{"id": "weekly_tue", "cron": "0 10 * * 2"},
                             {"id": "winter_cup", "start": "2026-12-20T00:00:00Z", "end": "2027-01-03T00:00:00Z"}],
               "entry": {"join_required": true, "max_members": 1000, "max_attempts": 5},
               "ties": "shared"})
    }

    #[test]
    fn live_ops_fields_parse_and_round_trip() {
        let d = Definition::from_json("cup", &live_ops()).unwrap();
        assert_eq!(d.calendar.tz, chrono_tz::Tz::America__Los_Angeles);
        assert_eq!(d.frames.len(), 4);
        assert!(d.has_timeframe("weekly_tue".parse().unwrap()));
        assert!(!d.has_timeframe("nope".parse().unwrap()));
        assert!(!d.has_timeframe(Timeframe::Hourly));
        assert!(d.join_required());
        assert_eq!(
            d.entry,
            Some(EntryRules {
                join_required: true,
                max_members: Some(1000),
                max_attempts: Some(5)
            })
        );
        assert_eq!(d.ties, Ties::Shared);
        let back = Definition::from_json("cup", &d.to_json()).unwrap();
        assert_eq!(back.to_json(), d.to_json());
        assert_eq!(d.to_json()["schedules"], live_ops()["schedules"]);
    }

    #[test]
    fn live_ops_errors_name_the_field() {
        let with = |k: &str, v: Value| {
            let mut d = live_ops();
            d[k] = v;
            d
        };
        let cases = [
            (
                with("timezone", json!("Mars/Olympus")),
                "timezone: unknown time zone",
            ),
            (with("timezone", json!(5)), "timezone:"),
            (
                with("schedules", json!([{"id": "a", "cron": "0 10 * *"}])),
                "schedules[0].cron",
            ),
            (
                with(
                    "schedules",
                    json!([{"id": "a", "start": "2027-01-03T00:00:00Z", "end": "2026-12-20T00:00:00Z"}]),
                ),
                "schedules[0].end",
            ),
            (
                with("schedules", json!([{"id": "a"}])),
                "schedules[0]: needs either",
            ),
            (
                with(
                    "schedules",
                    json!([{"id": "a", "cron": "0 10 * * 2"}, {"id": "a", "cron": "0 9 * * 2"}]),
                ),
                "schedules[1].id: \"a\" is listed twice",
            ),
            (
                with("schedules", json!([{"id": "weekly", "cron": "0 10 * * 2"}])),
                "schedules[0].id",
            ),
            (
                with("schedules", json!({"id": "a"})),
                "schedules: must be an array",
            ),
            (with("ties", json!("random")), "ties: unknown ties"),
            (
                with("entry", json!({"max_members": 0})),
                "entry.max_members",
            ),
            (
                with("entry", json!({"max_members": -3})),
                "entry.max_members",
            ),
            (
                with("entry", json!({"max_attempts": 0})),
                "entry.max_attempts",
            ),
            (
                with("entry", json!({"max_attempts": 1.5})),
                "entry.max_attempts",
            ),
            (
                with("entry", json!({"join_required": "yes"})),
                "entry.join_required",
            ),
            (
                with("entry", json!({"vip": true})),
                "entry.vip: unknown field",
            ),
            (with("entry", json!(true)), "entry: must be an object"),
        ];
        for (v, want) in cases {
            let err = Definition::from_json("x", &v).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }
}
