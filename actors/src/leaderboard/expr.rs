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

/// Event paths whose values were read once for every board (by the tenant's feed): `values[i]`
/// is what `paths[i]` gives under [`path_number`]. A path not listed is looked up in the event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    paths: &'a [Box<str>],
    values: &'a [Option<f64>],
}

impl<'a> Known<'a> {
    /// `values[i]` belongs to `paths[i]` (extra entries of the longer slice are ignored).
    pub fn new(paths: &'a [Box<str>], values: &'a [Option<f64>]) -> Known<'a> {
        Known { paths, values }
    }

    /// The value of `path`, if it is known.
    fn get(&self, path: &str) -> Option<Option<f64>> {
        let i = self.paths.iter().position(|p| **p == *path)?;
        self.values.get(i).copied()
    }
}

/// What the event path `path` gives an expression: a finite JSON number its value, a boolean
/// 1 or 0, anything else (missing, string, object, null) no score.
pub fn path_number(event: &Value, path: &str) -> Option<f64> {
    match lookup(event, path)? {
        Value::Number(n) => n.as_f64().and_then(finite),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
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
        eval(&self.root, event, Known::default())
    }

    /// [`Expr::eval`] reading the paths in `known` from there instead of the event.
    pub fn eval_known(&self, event: &Value, known: Known<'_>) -> Option<f64> {
        eval(&self.root, event, known)
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

fn eval(node: &Node, event: &Value, known: Known<'_>) -> Option<f64> {
    match node {
        Node::Num(x) => Some(*x),
        Node::Path(p) => match known.get(p) {
            Some(v) => v,
            None => path_number(event, p),
        },
        Node::Neg(a) => Some(-eval(a, event, known)?),
        Node::Bin(op, a, b) => {
            let (x, y) = (eval(a, event, known)?, eval(b, event, known)?);
            finite(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div if y == 0.0 => return None,
                BinOp::Div => x / y,
            })
        }
        Node::Call(f, args) => {
            let mut values = args.iter().map(|a| eval(a, event, known));
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
mod tests;
