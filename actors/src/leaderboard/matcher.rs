//! Rule matching: event-type patterns, dotted event paths, and the `conditions` / `scope` operators.
//!
//! A condition map such as `{"attrs.mode": {"eq": "ranked"}, "attrs.score": {"gte": 10, "lt": 99}}`
//! holds when every operator on every path holds. Semantics, chosen once here:
//! - a path that is missing fails every operator except `exists: false` (so `ne` and `nin` on a
//!   missing path fail too); a path holding JSON `null` exists;
//! - `gt gte lt lte` hold only for JSON numbers (a numeric string never satisfies them);
//! - `eq ne in nin` compare JSON values, numbers numerically (`1 == 1.0`), arrays and objects
//!   element-wise with the same rule.

use serde::{Serialize, Serializer};
use serde_json::{Map, Number, Value};
use thiserror::Error;

/// Why an `event_type` pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error("event_type must not be empty")]
    Empty,
    #[error("event_type {0:?}: '*' is only allowed once, at the end (\"*\" or \"match.*\")")]
    MisplacedStar(String),
}

/// Why a conditions object (`scope`, a rule's `conditions`) is refused. `field` is the
/// object's path, `at` the path of one condition in it (`scope.attrs.mode`); `got` is the
/// offending JSON as written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConditionError {
    #[error("{field}: expected an object of path → operators, got {got}")]
    NotAnObject { field: String, got: String },
    #[error("{field}: invalid path {path:?}")]
    InvalidPath { field: String, path: String },
    #[error("{at}: expected an object of operators such as {{\"eq\": …}}, got {got}")]
    OperatorsNotAnObject { at: String, got: String },
    #[error("{at}: no operators")]
    NoOperators { at: String },
    #[error("{at}.{op}: expected a number, got {got}")]
    NotANumber { at: String, op: String, got: String },
    #[error("{at}.{op}: expected an array, got {got}")]
    NotAnArray { at: String, op: String, got: String },
    #[error("{at}.exists: expected true or false, got {got}")]
    NotABool { at: String, got: String },
    #[error(
        "{at}: unknown operator {op:?} (expected eq, ne, gt, gte, lt, lte, in, nin or exists)"
    )]
    UnknownOperator { at: String, op: String },
}

/// Follows a dotted path (`actor.metadata.region`) through JSON objects.
pub fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(event, |v, segment| v.as_object()?.get(segment))
}

/// Whether `pattern` selects events of type `ty`.
///
/// `*` matches every type except Phoenix's own `leaderboard.*` events (a window close must
/// not score on a catch-all board; name them to score them); a pattern ending in `*` (such as `match.*`) matches types that start
/// with the part before the `*` and are longer than it — so `match.*` matches `match.completed`
/// and `match.round.won` but not `match` itself (a family, not its parent). Anything else is an
/// exact comparison. See [`validate_event_type_pattern`] for the accepted shapes.
pub fn event_type_matches(pattern: &str, ty: &str) -> bool {
    if pattern == "*" {
        return !ty.starts_with("leaderboard.");
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => ty.len() > prefix.len() && ty.starts_with(prefix),
        None => pattern == ty,
    }
}

/// Rejects empty patterns and a `*` anywhere but at the end.
pub fn validate_event_type_pattern(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    if pattern.trim_end_matches('*').contains('*') || pattern.ends_with("**") {
        return Err(PatternError::MisplacedStar(pattern.to_owned()));
    }
    Ok(())
}

/// One operator applied to the value at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Value),
    Ne(Value),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    In(Vec<Value>),
    Nin(Vec<Value>),
    /// `true`: the path must be present; `false`: it must be missing.
    Exists(bool),
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Eq(_) => "eq",
            Op::Ne(_) => "ne",
            Op::Gt(_) => "gt",
            Op::Gte(_) => "gte",
            Op::Lt(_) => "lt",
            Op::Lte(_) => "lte",
            Op::In(_) => "in",
            Op::Nin(_) => "nin",
            Op::Exists(_) => "exists",
        }
    }

    fn parse(name: &str, arg: &Value, at: &str) -> Result<Op, ConditionError> {
        let number = || {
            arg.as_f64().ok_or_else(|| ConditionError::NotANumber {
                at: at.to_owned(),
                op: name.to_owned(),
                got: arg.to_string(),
            })
        };
        let list = || match arg {
            Value::Array(items) => Ok(items.clone()),
            _ => Err(ConditionError::NotAnArray {
                at: at.to_owned(),
                op: name.to_owned(),
                got: arg.to_string(),
            }),
        };
        Ok(match name {
            "eq" => Op::Eq(arg.clone()),
            "ne" => Op::Ne(arg.clone()),
            "gt" => Op::Gt(number()?),
            "gte" => Op::Gte(number()?),
            "lt" => Op::Lt(number()?),
            "lte" => Op::Lte(number()?),
            "in" => Op::In(list()?),
            "nin" => Op::Nin(list()?),
            "exists" => Op::Exists(arg.as_bool().ok_or_else(|| ConditionError::NotABool {
                at: at.to_owned(),
                got: arg.to_string(),
            })?),
            other => {
                return Err(ConditionError::UnknownOperator {
                    at: at.to_owned(),
                    op: other.to_owned(),
                })
            }
        })
    }

    fn holds(&self, value: Option<&Value>) -> bool {
        let Some(v) = value else {
            return matches!(self, Op::Exists(false));
        };
        let num = || v.as_f64().filter(|_| v.is_number());
        match self {
            Op::Eq(x) => json_eq(v, x),
            Op::Ne(x) => !json_eq(v, x),
            Op::Gt(x) => num().is_some_and(|n| n > *x),
            Op::Gte(x) => num().is_some_and(|n| n >= *x),
            Op::Lt(x) => num().is_some_and(|n| n < *x),
            Op::Lte(x) => num().is_some_and(|n| n <= *x),
            Op::In(xs) => xs.iter().any(|x| json_eq(v, x)),
            Op::Nin(xs) => !xs.iter().any(|x| json_eq(v, x)),
            Op::Exists(want) => *want,
        }
    }

    fn arg_json(&self) -> Value {
        match self {
            Op::Eq(v) | Op::Ne(v) => v.clone(),
            Op::Gt(x) | Op::Gte(x) | Op::Lt(x) | Op::Lte(x) => number_json(*x),
            Op::In(xs) | Op::Nin(xs) => Value::Array(xs.clone()),
            Op::Exists(b) => Value::Bool(*b),
        }
    }
}

/// Writes whole numbers back as JSON integers so `{"gte": 10}` survives a round trip unchanged.
fn number_json(x: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact in f64
    if x.fract() == 0.0 && x.abs() < EXACT {
        // Exact: `x` is an integer of magnitude below 2^53.
        Value::from(x as i64)
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// JSON equality with numbers compared by value (`1 == 1.0`), recursively.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(i), Some(j), _, _) => i == j,
                (_, _, Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// A parsed `conditions` or `scope` map: every path's operators must all hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions(pub Vec<(String, Vec<Op>)>);

impl Conditions {
    /// Parses the JSON object form. `field` prefixes error messages (e.g. `rules[0].conditions`
    /// or `scope`) so they name the offending path: `scope.attrs.mode: unknown operator "like" …`.
    /// `null` is accepted as "no conditions".
    pub fn from_json(json: &Value, field: &str) -> Result<Conditions, ConditionError> {
        let map = match json {
            Value::Null => return Ok(Conditions::default()),
            Value::Object(map) => map,
            other => {
                return Err(ConditionError::NotAnObject {
                    field: field.to_owned(),
                    got: other.to_string(),
                })
            }
        };
        let mut out = Vec::with_capacity(map.len());
        for (path, ops) in map {
            let at = format!("{field}.{path}");
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(ConditionError::InvalidPath {
                    field: field.to_owned(),
                    path: path.clone(),
                });
            }
            let Value::Object(ops) = ops else {
                return Err(ConditionError::OperatorsNotAnObject {
                    at,
                    got: ops.to_string(),
                });
            };
            if ops.is_empty() {
                return Err(ConditionError::NoOperators { at });
            }
            let ops = ops
                .iter()
                .map(|(name, arg)| Op::parse(name, arg, &at))
                .collect::<Result<Vec<_>, _>>()?;
            out.push((path.clone(), ops));
        }
        Ok(Conditions(out))
    }

    /// Whether `event` satisfies every operator on every path (an empty map always holds).
    pub fn matches(&self, event: &Value) -> bool {
        self.0.iter().all(|(path, ops)| {
            let v = lookup(event, path);
            ops.iter().all(|op| op.holds(v))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON object form accepted by [`Conditions::from_json`].
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (path, ops) in &self.0 {
            let ops: Map<String, Value> = ops
                .iter()
                .map(|op| (op.name().to_owned(), op.arg_json()))
                .collect();
            map.insert(path.clone(), Value::Object(ops));
        }
        Value::Object(map)
    }
}

impl Serialize for Conditions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "type": "match.completed",
            "actor": {"user_id": "u1", "metadata": {"region": "na-east", "level": 7}},
            "subject": {"type": "match"},
            "attrs": {"mode": "ranked", "score": 42, "ratio": 0.5, "flag": true, "nil": null,
                      "num_str": "50", "tags": ["a", "b"], "pos": {"x": 1, "y": 2.0}}
        })
    }

    fn holds(conds: Value) -> bool {
        Conditions::from_json(&conds, "c")
            .expect("valid")
            .matches(&event())
    }

    #[test]
    fn lookup_walks_objects_only() {
        let e = event();
        assert_eq!(lookup(&e, "actor.metadata.region"), Some(&json!("na-east")));
        assert_eq!(lookup(&e, "type"), Some(&json!("match.completed")));
        assert_eq!(lookup(&e, "attrs.tags.0"), None);
        assert_eq!(lookup(&e, "attrs.mode.x"), None);
        assert_eq!(lookup(&e, "attrs.missing"), None);
        assert_eq!(lookup(&e, "attrs.nil"), Some(&Value::Null));
    }

    #[test]
    fn event_type_patterns() {
        assert!(event_type_matches("match.completed", "match.completed"));
        assert!(!event_type_matches("match.completed", "match.started"));
        assert!(event_type_matches("*", "anything.at.all"));
        assert!(!event_type_matches("*", "leaderboard.window_closed"));
        assert!(event_type_matches(
            "leaderboard.*",
            "leaderboard.window_closed"
        ));
        assert!(event_type_matches("match.*", "match.completed"));
        assert!(event_type_matches("match.*", "match.round.won"));
        assert!(
            !event_type_matches("match.*", "match"),
            "a family does not include its parent"
        );
        assert!(!event_type_matches("match.*", "match."));
        assert!(!event_type_matches("match.*", "matchmaking.done"));
        assert!(event_type_matches("nm.player_*", "nm.player_xp"));
        assert!(validate_event_type_pattern("match.*").is_ok());
        assert!(validate_event_type_pattern("*").is_ok());
        assert!(validate_event_type_pattern("").is_err());
        assert!(validate_event_type_pattern("m*.x").is_err());
        assert!(validate_event_type_pattern("match.**").is_err());
    }

    #[test]
    fn eq_and_ne() {
        assert!(holds(json!({"attrs.mode": {"eq": "ranked"}})));
        assert!(!holds(json!({"attrs.mode": {"eq": "casual"}})));
        assert!(
            holds(json!({"attrs.score": {"eq": 42.0}})),
            "numbers compare by value"
        );
        assert!(
            !holds(json!({"attrs.num_str": {"eq": 50}})),
            "no string/number coercion"
        );
        assert!(holds(json!({"attrs.pos": {"eq": {"x": 1.0, "y": 2}}})));
        assert!(holds(json!({"attrs.tags": {"eq": ["a", "b"]}})));
        assert!(holds(json!({"attrs.nil": {"eq": null}})));
        assert!(holds(json!({"attrs.mode": {"ne": "casual"}})));
        assert!(!holds(json!({"attrs.mode": {"ne": "ranked"}})));
        assert!(
            !holds(json!({"attrs.missing": {"ne": "x"}})),
            "missing path fails ne"
        );
        assert!(
            !holds(json!({"attrs.missing": {"eq": null}})),
            "missing is not null"
        );
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_eq(
            &json!(9_007_199_254_740_993_i64),
            &json!(9_007_199_254_740_992_i64)
        ));
    }

    #[test]
    fn numeric_comparisons() {
        assert!(holds(json!({"attrs.score": {"gt": 41}})));
        assert!(!holds(json!({"attrs.score": {"gt": 42}})));
        assert!(holds(json!({"attrs.score": {"gte": 42}})));
        assert!(holds(json!({"attrs.score": {"lt": 42.5}})));
        assert!(!holds(json!({"attrs.score": {"lt": 42}})));
        assert!(holds(json!({"attrs.score": {"lte": 42}})));
        assert!(holds(json!({"attrs.ratio": {"gte": 0.5, "lt": 1}})));
        assert!(
            !holds(json!({"attrs.num_str": {"gt": 1}})),
            "a string never satisfies gt"
        );
        assert!(!holds(json!({"attrs.flag": {"gte": 0}})), "nor does a bool");
        assert!(!holds(json!({"attrs.missing": {"lt": 1}})));
        assert!(!holds(json!({"attrs.pos": {"lte": 100}})));
    }

    #[test]
    fn in_nin_exists() {
        assert!(holds(json!({"attrs.mode": {"in": ["casual", "ranked"]}})));
        assert!(holds(json!({"attrs.score": {"in": [1, 42.0]}})));
        assert!(!holds(json!({"attrs.mode": {"in": []}})));
        assert!(holds(json!({"attrs.mode": {"nin": ["casual"]}})));
        assert!(!holds(json!({"attrs.mode": {"nin": ["ranked"]}})));
        assert!(
            !holds(json!({"attrs.missing": {"nin": ["x"]}})),
            "missing path fails nin"
        );
        assert!(holds(json!({"attrs.mode": {"exists": true}})));
        assert!(holds(json!({"attrs.nil": {"exists": true}})));
        assert!(!holds(json!({"attrs.missing": {"exists": true}})));
        assert!(holds(json!({"attrs.missing": {"exists": false}})));
        assert!(!holds(json!({"attrs.mode": {"exists": false}})));
    }

    #[test]
    fn all_paths_must_hold() {
        assert!(holds(json!({})));
        assert!(holds(Value::Null));
        assert!(holds(
            json!({"attrs.mode": {"eq": "ranked"}, "actor.metadata.region": {"eq": "na-east"}})
        ));
        assert!(!holds(
            json!({"attrs.mode": {"eq": "ranked"}, "actor.metadata.region": {"eq": "eu"}})
        ));
        assert!(!holds(json!({"attrs.score": {"gte": 10, "lt": 40}})));
    }

    #[test]
    fn parse_errors_name_the_path() {
        let e = |v: Value| {
            Conditions::from_json(&v, "rules[0].conditions")
                .expect_err("invalid")
                .to_string()
        };
        assert_eq!(
            e(json!({"attrs.mode": {"like": "r%"}})),
            "rules[0].conditions.attrs.mode: unknown operator \"like\" \
             (expected eq, ne, gt, gte, lt, lte, in, nin or exists)"
        );
        assert_eq!(
            e(json!({"attrs.score": {"gt": "10"}})),
            "rules[0].conditions.attrs.score.gt: expected a number, got \"10\""
        );
        assert!(e(json!({"attrs.mode": {"in": "ranked"}}))
            .starts_with("rules[0].conditions.attrs.mode.in: expected an array"));
        assert!(e(json!({"attrs.mode": {"exists": 1}}))
            .starts_with("rules[0].conditions.attrs.mode.exists:"));
        assert!(e(json!({"attrs.mode": "ranked"}))
            .starts_with("rules[0].conditions.attrs.mode: expected an object"));
        assert!(e(json!({"attrs.mode": {}})).ends_with("no operators"));
        assert!(e(json!({"attrs..mode": {"eq": 1}})).contains("invalid path"));
        assert!(e(json!([1])).starts_with("rules[0].conditions: expected an object"));
        let scope = Conditions::from_json(&json!({"x": {"bogus": 1}}), "scope")
            .expect_err("bad")
            .to_string();
        assert!(scope.starts_with("scope.x: unknown operator \"bogus\""));
    }

    #[test]
    fn to_json_round_trips() {
        let src = json!({
            "attrs.mode": {"eq": "ranked", "ne": {"a": [1, 2]}},
            "attrs.score": {"gte": 10, "lt": 99.5, "gt": -3, "lte": 1e20},
            "attrs.tags": {"in": ["a", 1], "nin": []},
            "actor.user_id": {"exists": true}
        });
        let c = Conditions::from_json(&src, "c").expect("valid");
        assert_eq!(c.to_json(), src);
        assert_eq!(serde_json::to_value(&c).ok(), Some(src));
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(Value::from),
            (-5i32..5).prop_map(|x| Value::from(f64::from(x) / 2.0)),
            "[ab]{0,2}".prop_map(Value::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// `ne` is the negation of `eq` and `nin` of `in` whenever the path exists; both fail
        /// when it does not.
        #[test]
        fn negations_are_consistent(v in proptest::option::of(scalar()), x in scalar(), xs in proptest::collection::vec(scalar(), 0..3)) {
            let event = match &v {
                Some(v) => json!({"attrs": {"k": v}}),
                None => json!({"attrs": {}}),
            };
            let check = |op: &str, arg: &Value| {
                Conditions::from_json(&json!({"attrs.k": {op: arg}}), "c").expect("valid").matches(&event)
            };
            let list = Value::Array(xs);
            if v.is_some() {
                prop_assert_eq!(check("ne", &x), !check("eq", &x));
                prop_assert_eq!(check("nin", &list), !check("in", &list));
            } else {
                prop_assert!(!check("eq", &x) && !check("ne", &x) && !check("in", &list) && !check("nin", &list));
            }
            prop_assert_eq!(check("exists", &json!(true)), v.is_some());
        }
    }
}
