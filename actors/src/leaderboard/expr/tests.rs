//! Unit and property tests of the points expression: parsing, evaluation, limits.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn event() -> Value {
    json!({
        "type": "match.completed",
        "actor": {"user_id": "u1", "metadata": {"level": 7, "region": "na"}},
        "subject": {"type": "match", "id": "m1"},
        "attrs": {"score": 120, "kills": 5, "a": 3, "b": -2.5, "t": true, "f": false,
                  "z": 0, "s": "str", "n": null, "o": {"x": 1}}
    })
}

fn ev(src: &str) -> Option<f64> {
    Expr::parse(src).expect(src).eval(&event())
}

fn perr(src: &str) -> ExprError {
    Expr::parse(src).expect_err(src)
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(ev("1+2*3"), Some(7.0));
    assert_eq!(ev("(1+2)*3"), Some(9.0));
    assert_eq!(ev("-2*3"), Some(-6.0));
    assert_eq!(ev("2*-3"), Some(-6.0));
    assert_eq!(ev("2-3-4"), Some(-5.0));
    assert_eq!(ev("8/4/2"), Some(1.0));
    assert_eq!(ev("--2"), Some(2.0));
    assert_eq!(ev("1 - -1"), Some(2.0));
    assert_eq!(ev("0.1 + 0.2"), Some(0.1 + 0.2));
    assert_eq!(ev("1e3 + 2.5E-1"), Some(1000.25));
}

#[test]
fn spec_example_and_paths() {
    let e = Expr::parse("attrs.score * 0.1 + max(attrs.kills - 3, 0)").expect("parses");
    assert_eq!(e.eval(&event()), Some(120.0 * 0.1 + 2.0));
    assert_eq!(e.paths(), ["attrs.score", "attrs.kills"]);
    assert_eq!(ev("actor.metadata.level * 2"), Some(14.0));
    assert_eq!(ev("attrs.t + attrs.f + true + false"), Some(2.0));
    assert_eq!(ev("min(3, attrs.b, 9)"), Some(-2.5));
    assert_eq!(ev("max(attrs.a)"), Some(3.0));
    assert_eq!(ev("abs(attrs.b)"), Some(2.5));
}

#[test]
fn no_score_cases() {
    assert_eq!(ev("attrs.missing + 1"), None);
    assert_eq!(ev("attrs.s"), None);
    assert_eq!(ev("attrs.n"), None);
    assert_eq!(ev("attrs.o"), None);
    assert_eq!(ev("attrs.o.x.y"), None);
    assert_eq!(ev("subject.type"), None);
    assert_eq!(ev("1 / attrs.z"), None);
    assert_eq!(ev("1 / (attrs.a - 3)"), None);
    assert_eq!(ev("max(1, attrs.missing)"), None);
    assert_eq!(ev("1e308 * 10"), None);
    assert_eq!(ev("0 / 5"), Some(0.0));
    assert_eq!(
        Expr::parse("attrs.x")
            .expect("ok")
            .eval(&json!({"attrs": {"x": 1e308}})),
        Some(1e308)
    );
}

#[test]
fn errors_carry_positions() {
    let e = perr("(1 + 2");
    assert_eq!(e.position, 6);
    assert!(e.message.starts_with("expected ')'"), "{e}");
    assert!(
        e.to_string().starts_with("at position 6: expected ')'"),
        "{e}"
    );
    assert_eq!(perr("").position, 0);
    assert_eq!(perr("   ").message, "empty expression");
    assert_eq!(perr("1 + 2 3").position, 6);
    assert_eq!(perr("1 + foo(2)").position, 4);
    assert!(perr("1 + foo(2)")
        .message
        .contains("unknown function 'foo'"));
    assert_eq!(perr("2 * occurred_at.x").position, 4);
    assert_eq!(perr("type").position, 0);
    assert_eq!(perr("attrs").position, 5);
    assert_eq!(perr("attrs.").position, 6);
    assert_eq!(perr("1 +").position, 3);
    assert_eq!(perr("1 # 2").position, 2);
    assert_eq!(perr("1.").position, 2);
    assert_eq!(perr("2e").position, 2);
    assert_eq!(perr("12abc").position, 2);
    assert_eq!(perr("1e999").message, "number out of range");
    assert_eq!(perr("abs(1, 2)").position, 0);
    assert_eq!(perr("min()").position, 0);
    assert_eq!(perr("max(1,)").position, 6);
    assert_eq!(perr("()").position, 1);
    assert_eq!(perr("é + 1").position, 0);
    assert_eq!(
        perr("1 + é").position,
        4,
        "positions count characters, not bytes"
    );
}

#[test]
fn depth_and_length_limits() {
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(perr(&deep).message.contains("nested deeper"));
    let ok = format!("{}1{}", "(".repeat(20), ")".repeat(20));
    assert_eq!(ev(&ok), Some(1.0));
    let chain = vec!["1"; 100].join(" + ");
    assert!(perr(&chain).message.contains("nested deeper"));
    assert!(perr(&"-".repeat(5000)).message.contains("longer than"));
    assert!(perr(&format!("{}1", "-".repeat(100)))
        .message
        .contains("nested deeper"));
}

#[test]
fn display_is_canonical() {
    let e = Expr::parse("attrs.score*0.1+max(attrs.kills-3,0)").expect("ok");
    assert_eq!(
        e.to_string(),
        "((attrs.score * 0.1) + max((attrs.kills - 3.0), 0.0))"
    );
    assert_eq!(
        Expr::parse("-2*3").expect("ok").to_string(),
        "((-2.0) * 3.0)"
    );
}

fn node() -> impl Strategy<Value = Node> {
    let num = prop_oneof![
        (0u32..100).prop_map(f64::from),
        (0u32..10_000).prop_map(|x| f64::from(x) / 100.0),
        any::<f64>().prop_filter_map("finite", |x| x.is_finite().then_some(x.abs())),
    ]
    .prop_map(Node::Num);
    let path = (
        0usize..3,
        proptest::collection::vec("[a-z_][a-z0-9_]{0,5}", 1..3),
    )
        .prop_map(|(r, segs)| Node::Path(format!("{}.{}", ROOTS[r], segs.join("."))));
    let leaf = prop_oneof![num, path];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let op = prop_oneof![
            Just(BinOp::Add),
            Just(BinOp::Sub),
            Just(BinOp::Mul),
            Just(BinOp::Div)
        ];
        prop_oneof![
            inner.clone().prop_map(|a| Node::Neg(Box::new(a))),
            (op, inner.clone(), inner.clone()).prop_map(|(o, a, b)| Node::Bin(
                o,
                Box::new(a),
                Box::new(b)
            )),
            inner.clone().prop_map(|a| Node::Call(Func::Abs, vec![a])),
            (
                prop_oneof![Just(Func::Min), Just(Func::Max)],
                proptest::collection::vec(inner, 1..4)
            )
                .prop_map(|(f, args)| Node::Call(f, args)),
        ]
    })
}

/// A generated source (parenthesised only where needed), its value under textbook
/// precedence computed independently of the parser, and whether it is atomic.
type Sourced = (String, Option<f64>, bool);

fn wrap(s: &Sourced) -> String {
    if s.2 {
        s.0.clone()
    } else {
        format!("({})", s.0)
    }
}

fn fold_ops(first: Sourced, rest: Vec<(bool, Sourced)>, ops: [char; 2]) -> Sourced {
    let atomic = first.2 && rest.is_empty();
    let (s, v) = rest
        .into_iter()
        .fold((first.0, first.1), |(s, v), (pick_first, rhs)| {
            let op = if pick_first { ops[0] } else { ops[1] };
            let val = match (v, rhs.1, op) {
                (Some(_), Some(0.0), '/') => None,
                (Some(a), Some(b), '/') => Some(a / b),
                (Some(a), Some(b), '*') => Some(a * b),
                (Some(a), Some(b), '+') => Some(a + b),
                (Some(a), Some(b), _) => Some(a - b),
                _ => None,
            };
            (format!("{s} {op} {}", rhs.0), val.filter(|x| x.is_finite()))
        });
    (s, v, atomic)
}

fn sourced() -> impl Strategy<Value = Sourced> {
    let atom = prop_oneof![
        (0u32..20).prop_map(|x| (x.to_string(), Some(f64::from(x)), true)),
        (0u32..400).prop_map(|x| (
            format!("{}.{:02}", x / 100, x % 100),
            Some(f64::from(x) / 100.0),
            true
        )),
        Just(("attrs.a".to_owned(), Some(3.0), true)),
        Just(("attrs.b".to_owned(), Some(-2.5), true)),
        Just(("attrs.t".to_owned(), Some(1.0), true)),
        Just(("false".to_owned(), Some(0.0), true)),
        Just(("attrs.z".to_owned(), Some(0.0), true)),
        Just(("actor.metadata.level".to_owned(), Some(7.0), true)),
        Just(("attrs.s".to_owned(), None, true)),
        Just(("attrs.nope".to_owned(), None, true)),
    ];
    atom.prop_recursive(4, 40, 5, |inner| {
        let factor = prop_oneof![
            inner.clone().prop_map(|s| (wrap(&s), s.1, true)),
            inner
                .clone()
                .prop_map(|s| (format!("-{}", wrap(&s)), s.1.map(|x| -x), true)),
            inner
                .clone()
                .prop_map(|s| (format!("abs({})", s.0), s.1.map(f64::abs), true)),
            (any::<bool>(), proptest::collection::vec(inner, 1..4)).prop_map(|(is_min, args)| {
                let src = args
                    .iter()
                    .map(|a| a.0.clone())
                    .collect::<Vec<_>>()
                    .join(", ");
                let vals: Option<Vec<f64>> = args.iter().map(|a| a.1).collect();
                let v = vals.and_then(|vs| {
                    vs.into_iter()
                        .reduce(|a, b| if is_min { a.min(b) } else { a.max(b) })
                });
                (
                    format!("{}({src})", if is_min { "min" } else { "max" }),
                    v,
                    true,
                )
            }),
        ];
        let term = (
            factor.clone(),
            proptest::collection::vec((any::<bool>(), factor), 0..3),
        )
            .prop_map(|(first, rest)| fold_ops(first, rest, ['*', '/']));
        (
            term.clone(),
            proptest::collection::vec((any::<bool>(), term), 0..3),
        )
            .prop_map(|(first, rest)| fold_ops(first, rest, ['+', '-']))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn display_parse_round_trip(root in node()) {
        let e = Expr { root };
        let shown = e.to_string();
        let back = Expr::parse(&shown);
        prop_assert_eq!(back.as_ref(), Ok(&e), "{}", shown);
    }

    #[test]
    fn eval_matches_reference((src, want, _) in sourced()) {
        let got = Expr::parse(&src).map(|e| e.eval(&event()));
        prop_assert_eq!(got, Ok(want), "{}", src);
    }

    /// Paths read once by the feed give the same points as each board reading the event: for
    /// every path of the expression known, some known, or a known path the expression lacks.
    #[test]
    fn known_paths_evaluate_as_the_event((src, _, _) in sourced(), pick in any::<u64>()) {
        let e = Expr::parse(&src).expect("generated sources parse");
        let ev = event();
        let mut paths: Vec<Box<str>> = e.paths().into_iter().map(Box::from).collect();
        paths.push("attrs.not_in_the_expression".into());
        let chosen: Vec<Box<str>> = paths
            .into_iter()
            .enumerate()
            .filter(|(i, _)| pick >> (i % 64) & 1 == 1)
            .map(|(_, p)| p)
            .collect();
        let values: Vec<Option<f64>> = chosen.iter().map(|p| path_number(&ev, p)).collect();
        prop_assert_eq!(e.eval_known(&ev, Known::new(&chosen, &values)), e.eval(&ev), "{}", src);
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,60}") {
        let _ = Expr::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_near_miss(s in "[0-9a-z_.+*/()\\-, eE]{0,60}") {
        if let Ok(e) = Expr::parse(&s) {
            prop_assert_eq!(Expr::parse(&e.to_string()), Ok(e));
        }
    }
}
