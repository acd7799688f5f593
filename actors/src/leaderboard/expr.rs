//! The points expression language: parse once when a leaderboard is saved, evaluate per event.
//!
//! Grammar (whitespace is free between tokens):
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := '-' unary | primary
//! primary := number | 'true' | 'false' | path | func '(' expr (',' expr)* ')' | '(' expr ')'
//! number  := digits ('.' digits)? (('e' | 'E') ('+' | '-')? digits)?
//! path    := ('attrs' | 'actor' | 'subject') ('.' ident)+        e.g. attrs.score, actor.metadata.level
//! func    := 'min' | 'max' (one or more arguments) | 'abs' (exactly one)
//! ```
//! Evaluation: a path holding a JSON number gives its value, a boolean gives 1/0; anything else
//! (missing, string, object, null) gives no score, as do division by zero and a non-finite result.
//! Sources are limited to [`MAX_SOURCE_CHARS`] characters and [`MAX_DEPTH`] levels of nesting so
//! that parsing, evaluating and dropping never recurse deeply.

use std::fmt;

use serde_json::Value;

use super::matcher::lookup;

/// Longest accepted source, in characters.
pub const MAX_SOURCE_CHARS: usize = 4096;
/// Deepest accepted syntax tree.
pub const MAX_DEPTH: usize = 64;

/// Path roots an expression may read.
const ROOTS: [&str; 3] = ["attrs", "actor", "subject"];

/// A parse failure, positioned at a 0-based character offset into the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct ExprError {
    pub position: usize,
    pub message: String,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        position,
        message: message.into(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    fn symbol(self) -> char {
        match self {
            BinOp::Add => '+',
            BinOp::Sub => '-',
            BinOp::Mul => '*',
            BinOp::Div => '/',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Min,
    Max,
    Abs,
}

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Min => "min",
            Func::Max => "max",
            Func::Abs => "abs",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A literal; the parser only produces finite, non-negative values (`true` is 1, `false` 0).
    Num(f64),
    /// A dotted event path including its root, e.g. `attrs.score`.
    Path(String),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

/// A compiled points expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
}

impl Expr {
    /// Parses and checks `src`; the error carries the character position of the problem.
    pub fn parse(src: &str) -> Result<Expr, ExprError> {
        let chars: Vec<char> = src.chars().collect();
        if chars.len() > MAX_SOURCE_CHARS {
            return err(
                MAX_SOURCE_CHARS,
                format!("expression longer than {MAX_SOURCE_CHARS} characters"),
            );
        }
        let tokens = lex(&chars)?;
        let mut p = Parser { tokens, at: 0 };
        if p.peek().kind == Tok::End {
            return err(p.peek().pos, "empty expression");
        }
        let (root, _) = p.expr(0)?;
        let t = p.peek();
        if t.kind != Tok::End {
            return err(
                t.pos,
                format!("unexpected {} after the end of the expression", t.kind),
            );
        }
        Ok(Expr { root })
    }

    /// The points this expression gives `event`, or `None` when it gives no score.
    pub fn eval(&self, event: &Value) -> Option<f64> {
        eval(&self.root, event)
    }

    /// Every event path the expression reads, in source order.
    pub fn paths(&self) -> Vec<&str> {
        fn walk<'a>(n: &'a Node, out: &mut Vec<&'a str>) {
            match n {
                Node::Num(_) => {}
                Node::Path(p) => out.push(p),
                Node::Neg(a) => walk(a, out),
                Node::Bin(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Node::Call(_, args) => args.iter().for_each(|a| walk(a, out)),
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn eval(node: &Node, event: &Value) -> Option<f64> {
    match node {
        Node::Num(x) => Some(*x),
        Node::Path(p) => match lookup(event, p)? {
            Value::Number(n) => n.as_f64().and_then(finite),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        },
        Node::Neg(a) => Some(-eval(a, event)?),
        Node::Bin(op, a, b) => {
            let (x, y) = (eval(a, event)?, eval(b, event)?);
            finite(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div if y == 0.0 => return None,
                BinOp::Div => x / y,
            })
        }
        Node::Call(f, args) => {
            let mut values = args.iter().map(|a| eval(a, event));
            let first = values.next()??;
            match f {
                Func::Abs => Some(first.abs()),
                Func::Min => values.try_fold(first, |acc, v| Some(acc.min(v?))),
                Func::Max => values.try_fold(first, |acc, v| Some(acc.max(v?))),
            }
        }
    }
}

/// Fully parenthesised canonical form; parsing it gives back an equal expression.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_node(&self.root, f)
    }
}

fn write_node(n: &Node, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match n {
        // `{:?}` is the shortest representation that parses back to the same f64.
        Node::Num(x) => write!(f, "{x:?}"),
        Node::Path(p) => f.write_str(p),
        Node::Neg(a) => {
            f.write_str("(-")?;
            write_node(a, f)?;
            f.write_str(")")
        }
        Node::Bin(op, a, b) => {
            f.write_str("(")?;
            write_node(a, f)?;
            write!(f, " {} ", op.symbol())?;
            write_node(b, f)?;
            f.write_str(")")
        }
        Node::Call(func, args) => {
            write!(f, "{}(", func.name())?;
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_node(a, f)?;
            }
            f.write_str(")")
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    /// An identifier, or a dotted path of identifiers.
    Name(String),
    Op(char),
    LParen,
    RParen,
    Comma,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(x) => write!(f, "number {x}"),
            Tok::Name(n) => write!(f, "'{n}'"),
            Tok::Op(c) => write!(f, "'{c}'"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
            Tok::End => f.write_str("end of expression"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn lex(chars: &[char]) -> Result<Vec<Token>, ExprError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '+' | '-' | '*' | '/' => Tok::Op(c),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '0'..='9' => {
                let digits = |i: &mut usize| {
                    let s = *i;
                    while *i < chars.len() && chars[*i].is_ascii_digit() {
                        *i += 1;
                    }
                    *i > s
                };
                digits(&mut i);
                if i < chars.len() && chars[i] == '.' {
                    i += 1;
                    if !digits(&mut i) {
                        return err(i, "expected digits after '.'");
                    }
                }
                if i < chars.len() && matches!(chars[i], 'e' | 'E') {
                    i += 1;
                    if i < chars.len() && matches!(chars[i], '+' | '-') {
                        i += 1;
                    }
                    if !digits(&mut i) {
                        return err(i, "expected digits in the exponent");
                    }
                }
                if i < chars.len() && is_ident(chars[i]) {
                    return err(i, format!("unexpected '{}' in a number", chars[i]));
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse::<f64>() {
                    Ok(x) if x.is_finite() => out.push(Token {
                        kind: Tok::Num(x),
                        pos: start,
                    }),
                    _ => return err(start, "number out of range"),
                }
                continue;
            }
            c if is_ident_start(c) => {
                loop {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                    if i < chars.len() && chars[i] == '.' {
                        i += 1;
                        if i >= chars.len() || !is_ident_start(chars[i]) {
                            return err(i, "expected a field name after '.'");
                        }
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    kind: Tok::Name(chars[start..i].iter().collect()),
                    pos: start,
                });
                continue;
            }
            other => return err(i, format!("unexpected character '{other}'")),
        };
        out.push(Token { kind, pos: start });
        i += 1;
    }
    out.push(Token {
        kind: Tok::End,
        pos: chars.len(),
    });
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

/// A parsed node and its tree depth.
type Parsed = (Node, usize);

impl Parser {
    fn peek(&self) -> &Token {
        // `lex` always ends the stream with `End`, and `bump` never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != Tok::End {
            self.at += 1;
        }
        t
    }

    fn check_depth(depth: usize, pos: usize) -> Result<(), ExprError> {
        if depth > MAX_DEPTH {
            return err(
                pos,
                format!("expression nested deeper than {MAX_DEPTH} levels"),
            );
        }
        Ok(())
    }

    fn expr(&mut self, nesting: usize) -> Result<Parsed, ExprError> {
        self.chain(nesting, [('+', BinOp::Add), ('-', BinOp::Sub)], Self::term)
    }

    fn term(&mut self, nesting: usize) -> Result<Parsed, ExprError> {
        self.chain(nesting, [('*', BinOp::Mul), ('/', BinOp::Div)], Self::unary)
    }

    /// A left-associative chain of `operand`s joined by the operators of one precedence level.
    fn chain(
        &mut self,
        nesting: usize,
        ops: [(char, BinOp); 2],
        operand: fn(&mut Self, usize) -> Result<Parsed, ExprError>,
    ) -> Result<Parsed, ExprError> {
        let (mut lhs, mut depth) = operand(self, nesting)?;
        while let Tok::Op(c) = self.peek().kind {
            let Some(&(_, op)) = ops.iter().find(|(o, _)| *o == c) else {
                break;
            };
            let pos = self.bump().pos;
            let (rhs, rd) = operand(self, nesting)?;
            depth = depth.max(rd) + 1;
            Self::check_depth(depth, pos)?;
            lhs = Node::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok((lhs, depth))
    }

    fn unary(&mut self, nesting: usize) -> Result<Parsed, ExprError> {
        if self.peek().kind == Tok::Op('-') {
            let pos = self.bump().pos;
            Self::check_depth(nesting + 1, pos)?;
            let (inner, d) = self.unary(nesting + 1)?;
            Self::check_depth(d + 1, pos)?;
            return Ok((Node::Neg(Box::new(inner)), d + 1));
        }
        self.primary(nesting)
    }

    fn primary(&mut self, nesting: usize) -> Result<Parsed, ExprError> {
        let t = self.bump();
        match t.kind {
            Tok::Num(x) => Ok((Node::Num(x), 1)),
            Tok::LParen => {
                Self::check_depth(nesting + 1, t.pos)?;
                let inner = self.expr(nesting + 1)?;
                self.expect_close(t.pos)?;
                Ok(inner)
            }
            Tok::Name(name) => self.name(name, t.pos, nesting),
            other => err(
                t.pos,
                format!("expected a number, a path or '(' but found {other}"),
            ),
        }
    }

    fn expect_close(&mut self, open: usize) -> Result<(), ExprError> {
        let t = self.bump();
        if t.kind != Tok::RParen {
            return err(
                t.pos,
                format!("expected ')' (to close '(' at position {open})"),
            );
        }
        Ok(())
    }

    fn name(&mut self, name: String, pos: usize, nesting: usize) -> Result<Parsed, ExprError> {
        match name.as_str() {
            "true" => return Ok((Node::Num(1.0), 1)),
            "false" => return Ok((Node::Num(0.0), 1)),
            _ => {}
        }
        if self.peek().kind == Tok::LParen {
            let func = match name.as_str() {
                "min" => Func::Min,
                "max" => Func::Max,
                "abs" => Func::Abs,
                _ => {
                    return err(
                        pos,
                        format!("unknown function '{name}' (expected min, max or abs)"),
                    )
                }
            };
            let open = self.bump().pos;
            Self::check_depth(nesting + 1, open)?;
            let mut args = Vec::new();
            let mut depth = 0;
            if self.peek().kind != Tok::RParen {
                loop {
                    let (a, d) = self.expr(nesting + 1)?;
                    args.push(a);
                    depth = depth.max(d);
                    if self.peek().kind != Tok::Comma {
                        break;
                    }
                    self.bump();
                }
            }
            self.expect_close(open)?;
            match (func, args.len()) {
                (Func::Abs, 1) | (Func::Min | Func::Max, 1..) => {}
                (Func::Abs, n) => {
                    return err(pos, format!("abs takes exactly 1 argument, got {n}"))
                }
                (f, _) => return err(pos, format!("{} needs at least 1 argument", f.name())),
            }
            Self::check_depth(depth + 1, pos)?;
            return Ok((Node::Call(func, args), depth + 1));
        }
        let root = name.split('.').next().unwrap_or_default();
        if !ROOTS.contains(&root) {
            return err(
                pos,
                format!("unknown name '{name}' (paths start with attrs., actor. or subject.)"),
            );
        }
        if !name.contains('.') {
            return err(
                pos + name.len(),
                format!("expected a field after '{name}', e.g. {name}.score"),
            );
        }
        Ok((Node::Path(name), 1))
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
                (any::<bool>(), proptest::collection::vec(inner, 1..4)).prop_map(
                    |(is_min, args)| {
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
                    }
                ),
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
}
