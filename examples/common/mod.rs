//! What the examples share (each includes it with `mod common;`): the tenant they sign as
//! (`--tenant`, `--secret`) and the signature headers of seed 000 §3.
#![allow(dead_code)]

/// The tenant whose HMAC secret signs the example's requests.
#[derive(clap::Args, Clone)]
pub struct Tenant {
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    #[arg(long, default_value = "demo-secret-0123456789")]
    pub secret: String,
}

impl Tenant {
    /// The `X-Tenant-Id`, `X-Timestamp` and `X-Signature` headers of `method path` with
    /// `body`, signed now.
    pub fn headers(&self, method: &str, path: &str, body: &[u8]) -> [(&'static str, String); 3] {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = phoenix::auth::sign(self.secret.as_bytes(), method, path, &ts, body);
        [
            ("X-Tenant-Id", self.tenant.clone()),
            ("X-Timestamp", ts),
            ("X-Signature", sig),
        ]
    }

    /// An HTTP request `method url` (whose path is `path`) with `body`, signed now.
    pub fn request(
        &self,
        client: &reqwest::Client,
        method: &str,
        url: &str,
        path: &str,
        body: String,
    ) -> reqwest::RequestBuilder {
        let mut req = client.request(method.parse().expect("an HTTP method"), url);
        for (name, value) in self.headers(method, path, body.as_bytes()) {
            req = req.header(name, value);
        }
        req.body(body)
    }

    /// A WebSocket upgrade request to `url` signed for `GET /v1/ws`.
    pub fn ws_request(
        &self,
        url: &str,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().expect("a WebSocket URL");
        for (name, value) in self.headers("GET", "/v1/ws", b"") {
            req.headers_mut()
                .insert(name, value.parse().expect("a header value"));
        }
        req
    }
}
