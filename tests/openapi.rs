//! `GET /openapi.json` on the real binary: an OpenAPI 3.1 document that covers every route the
//! router registers (found by parsing every `.route(` call under `src/`), method by method,
//! with the auth schemes and the error envelope.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of the parenthesised argument list starting at `open` (the byte after `(`), up
/// to its matching `)`; string literals are skipped whole.
fn balanced(src: &str, open: usize) -> Option<&str> {
    let bytes = src.as_bytes();
    let (mut depth, mut i, mut in_str) = (1usize, open, false);
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&src[open..i]);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The HTTP methods of a route expression: `get(…)`, `routing::post(…)` and chained
/// `.put(…)`, `.delete(…)`.
fn methods_of(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for m in METHODS {
        let needle = format!("{m}(");
        let mut from = 0;
        while let Some(at) = expr[from..].find(&needle) {
            let at = from + at;
            let before = &expr[..at];
            let prev = before.chars().next_back();
            let standalone = match prev {
                None => true,
                Some(c) if c.is_alphanumeric() || c == '_' => false,
                Some(':') => before.ends_with("routing::"),
                Some(_) => true,
            };
            if standalone {
                found.insert(m.to_uppercase());
            }
            from = at + needle.len();
        }
    }
    found
}

/// `(path, method)` of every route under `src/`, or a panic naming the call it cannot read.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut calls = 0;
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        let name = file.display();
        assert!(
            !src.contains(".nest(")
                && !src.contains(".nest_service(")
                && !src.contains(".route_service("),
            "{name}: nested routers and services are not parsed; extend tests/openapi.rs"
        );
        let mut from = 0;
        while let Some(at) = src[from..].find(".route(") {
            let open = from + at + ".route(".len();
            calls += 1;
            let line = src[..open].lines().count();
            let args = balanced(&src, open)
                .unwrap_or_else(|| panic!("{name}:{line}: unbalanced .route( call"));
            let args = args.trim_start();
            let path = args
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(p, _)| p.to_owned())
                .unwrap_or_else(|| panic!("{name}:{line}: .route( without a literal path"));
            let rest = &args[path.len() + 2..];
            assert!(
                rest.trim_start().starts_with(','),
                "{name}:{line}: cannot read the route after {path:?}"
            );
            for unsupported in [
                "any(",
                "on(",
                "MethodFilter",
                "get_service(",
                "post_service(",
            ] {
                assert!(
                    !rest.contains(unsupported),
                    "{name}:{line}: {path}: `{unsupported}` is not parsed; extend tests/openapi.rs"
                );
            }
            let methods = methods_of(rest);
            assert!(
                !methods.is_empty(),
                "{name}:{line}: no method found for {path}"
            );
            let entry = routes.entry(path.clone()).or_default();
            for m in methods {
                assert!(
                    entry.insert(m.clone()),
                    "{name}:{line}: {m} {path} registered twice"
                );
            }
            from = open;
        }
    }
    assert!(
        calls >= 20,
        "only {calls} .route( calls found under src/: is the parser lost?"
    );
    routes
}

/// `(path, method)` of the document's operations.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[test]
fn the_parser_reads_chained_and_plain_methods() {
    assert_eq!(
        methods_of(r#", put(lb::put).get(lb::get).delete(lb::delete)"#),
        ["DELETE", "GET", "PUT"].map(String::from).into()
    );
    assert_eq!(
        methods_of(", axum::routing::post(h)"),
        ["POST".to_owned()].into()
    );
    // A handler named like a method is not a method.
    assert_eq!(methods_of(", get(x::post)"), ["GET".to_owned()].into());
    assert!(methods_of(", budget(x)").is_empty());
    assert_eq!(
        balanced(r#""/a(", get(f)) tail"#, 0),
        Some(r#""/a(", get(f)"#)
    );
}

#[tokio::test]
async fn the_served_document_covers_every_route_of_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let resp = plain::send(&server.base, "GET", "/openapi.json", None, None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );

    // The CLI prints the same document the server serves.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, doc);

    let routes = router_routes();
    let docs = documented(&doc);
    let mut missing = Vec::new();
    for (path, methods) in &routes {
        for m in methods {
            if !docs.get(path).is_some_and(|d| d.contains(m)) {
                missing.push(format!("{m} {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let mut extra = Vec::new();
    for (path, methods) in &docs {
        for m in methods {
            if !routes.get(path).is_some_and(|r| r.contains(m)) {
                extra.push(format!("{m} {path}"));
            }
        }
    }
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    assert!(routes.contains_key("/openapi.json"));
}

#[tokio::test]
async fn operations_declare_their_path_params_auth_and_error_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, doc) = plain::get(&server.base, "/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let envelope = &doc["components"]["schemas"]["ErrorEnvelope"];
    assert_eq!(envelope["required"], serde_json::json!(["error"]));
    for (path, item) in doc["paths"].as_object().unwrap() {
        let wanted: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, wanted, "{method} {path}: path parameters");
            for req in op["security"].as_array().into_iter().flatten() {
                let names: BTreeSet<&str> = req
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                for n in &names {
                    assert!(
                        schemes.contains_key(*n),
                        "{method} {path}: unknown scheme {n}"
                    );
                }
                // The tenant HMAC headers only ever go together.
                let hmac = ["tenant_id", "tenant_timestamp", "tenant_signature"];
                let has = hmac.iter().filter(|h| names.contains(**h)).count();
                assert!(
                    has == 0 || has == 3,
                    "{method} {path}: partial HMAC requirement {names:?}"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{method} {path}: no success response"
            );
        }
    }
    // Signed tenant routes, operator routes and public ones are told apart.
    let sec = |p: &str, m: &str| doc["paths"][p][m]["security"].clone();
    assert_eq!(
        sec("/v1/events", "post")[0]["tenant_signature"],
        serde_json::json!([])
    );
    assert_eq!(
        sec("/v1/admin/tenants", "get")[0]["operator"],
        serde_json::json!([])
    );
    assert!(sec("/v1/ws", "get")
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.get("client_token_query").is_some()));
    assert!(sec("/health", "get").is_null());
}

#[tokio::test]
async fn the_document_is_public_and_other_methods_get_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // No credentials at all, and a bearer that is not the operator's: both 200.
    for token in [None, Some("not-a-token")] {
        let (status, doc) = plain::call(&server.base, "GET", "/openapi.json", token, None).await;
        assert_eq!(status, 200, "{doc}");
    }
    let body = Some("{}".to_owned());
    let (status, body) = plain::call(&server.base, "POST", "/openapi.json", None, body).await;
    assert_envelope(status, &body, 405, "METHOD_NOT_ALLOWED");
}
