//! Requests without the tenant signature: public routes, client tokens (Bearer) and the
//! operator API.

use serde_json::Value;

use super::{decode, OPERATOR};

/// `method base+path`, with a Bearer `token` and a JSON `body` if given: the raw response.
pub async fn send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json").body(body);
    }
    req.send().await.expect("request")
}

/// Like [`send`]: the status and the decoded body.
pub async fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    decode(send(base, method, path, token, body).await).await
}

/// A GET with no credentials at all.
pub async fn get(base: &str, path: &str) -> (u16, Value) {
    call(base, "GET", path, None, None).await
}

/// An operator API call (Bearer `operator_token`).
pub async fn operator(base: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    call(
        base,
        method,
        path,
        Some(OPERATOR),
        body.map(Value::to_string),
    )
    .await
}
