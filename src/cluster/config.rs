//! `[cluster]`: run as one node of a cluster over NATS JetStream (SPEC §11). Without the
//! table Phoenix runs embedded on sled, unchanged.

use serde::Deserialize;

/// The `[cluster]` table: SPEC §11's three keys, plus tuning keys with defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster: 1–32 of `A-Z a-z 0-9 - _` (it is part of NATS
    /// subjects and lease values). Env: `PHOENIX_CLUSTER_NODE_ID`.
    pub node_id: String,
    /// NATS servers of the JetStream cluster (any of them will do; the client fails over).
    /// Env: `PHOENIX_CLUSTER_NATS_URLS` (comma-separated).
    pub nats_urls: Vec<String>,
    /// JetStream replicas of every stream and bucket (1–5); a publish is acknowledged once
    /// this many servers' quorum stored it. Env: `PHOENIX_CLUSTER_REPLICAS`.
    pub replicas: usize,
    /// Seconds a tenant lease lasts without renewal (renewed every third of it). A dead
    /// node's tenants move after about this long (default 5: with the dedupe rebuild of a
    /// busy tenant, failover stays within 15 s).
    #[serde(default = "lease_ttl")]
    pub lease_ttl_seconds: u64,
    /// Milliseconds a request forwarded to a tenant's owner may take before it is answered
    /// 503. Keep it above the JetStream log's sync deadline (20 s, which outlasts a stream
    /// leader election), or an ingest that the owner will still acknowledge is answered 503
    /// (stored but not acknowledged: the client's retry is then a `duplicate`).
    #[serde(default = "forward_timeout")]
    pub forward_timeout_ms: u64,
    /// Requests this node forwards to owners at once; one more is answered 503
    /// (`phoenix_cluster_forwarded_total{result="refused"}`).
    #[serde(default = "max_forwards")]
    pub max_forwards_in_flight: usize,
    /// WebSocket views of tenants owned elsewhere: the most this node relays into its
    /// sessions at once, and the most it serves as owner to other nodes' sessions. One more
    /// subscription gets a 503 error frame (`phoenix_cluster_remote_views` on the owner).
    #[serde(default = "max_remote_views")]
    pub max_remote_views: usize,
    /// Seconds an owner keeps a remote view without renewal (the relaying node renews every
    /// third of it): a view whose node died is dropped after about this long.
    #[serde(default = "remote_view_lease")]
    pub remote_view_lease_seconds: u64,
}

const fn lease_ttl() -> u64 {
    5
}
const fn forward_timeout() -> u64 {
    25_000
}
const fn max_forwards() -> usize {
    1_024
}
const fn max_remote_views() -> usize {
    4_096
}
const fn remote_view_lease() -> u64 {
    6
}

impl ClusterConfig {
    /// Apply `PHOENIX_CLUSTER_*` overrides (a `replicas` that is no number becomes 0, which
    /// validation reports).
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("PHOENIX_CLUSTER_NODE_ID") {
            self.node_id = v;
        }
        if let Some(v) = get("PHOENIX_CLUSTER_NATS_URLS") {
            self.nats_urls = v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = get("PHOENIX_CLUSTER_REPLICAS") {
            self.replicas = v.trim().parse().unwrap_or(0);
        }
    }

    /// Every problem, each with its path.
    pub fn problems(&self, out: &mut Vec<String>) {
        let id_ok = (1..=32).contains(&self.node_id.len())
            && self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            out.push(format!(
                "cluster.node_id: {:?} must be 1-32 characters of A-Z a-z 0-9 - _",
                self.node_id
            ));
        }
        if self.nats_urls.is_empty() {
            out.push("cluster.nats_urls: give at least one nats:// URL".into());
        }
        for (i, u) in self.nats_urls.iter().enumerate() {
            let ok = u
                .strip_prefix("nats://")
                .or_else(|| u.strip_prefix("tls://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
            if !ok {
                out.push(format!(
                    "cluster.nats_urls[{i}]: {u:?} is not a nats:// or tls:// URL"
                ));
            }
        }
        if !(1..=5).contains(&self.replicas) {
            out.push("cluster.replicas: must be 1 to 5 (JetStream's limit)".into());
        }
        if !(3..=3_600).contains(&self.lease_ttl_seconds) {
            out.push("cluster.lease_ttl_seconds: must be 3 to 3600".into());
        }
        if !(100..=600_000).contains(&self.forward_timeout_ms) {
            out.push("cluster.forward_timeout_ms: must be 100 to 600000".into());
        }
        if self.max_forwards_in_flight == 0 {
            out.push("cluster.max_forwards_in_flight: must be at least 1".into());
        }
        if self.max_remote_views == 0 {
            out.push("cluster.max_remote_views: must be at least 1".into());
        }
        if !(3..=300).contains(&self.remote_view_lease_seconds) {
            out.push("cluster.remote_view_lease_seconds: must be 3 to 300".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ClusterConfig {
        toml::from_str(
            r#"node_id = "n1"
nats_urls = ["nats://127.0.0.1:4222"]
replicas = 3"#,
        )
        .expect("parses")
    }

    #[test]
    fn defaults_and_a_valid_table() {
        let c = good();
        assert_eq!(c.lease_ttl_seconds, 5);
        assert_eq!(c.forward_timeout_ms, 25_000);
        let mut p = Vec::new();
        c.problems(&mut p);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn bad_values_are_each_reported_with_their_path() {
        let mut c = good();
        c.node_id = "n.1".into();
        c.nats_urls = vec!["http://x".into()];
        c.replicas = 7;
        c.lease_ttl_seconds = 1;
        c.max_forwards_in_flight = 0;
        c.max_remote_views = 0;
        c.remote_view_lease_seconds = 1;
        let mut p = Vec::new();
        c.problems(&mut p);
        for key in [
            "cluster.node_id",
            "cluster.nats_urls[0]",
            "cluster.replicas",
            "cluster.lease_ttl_seconds",
            "cluster.max_forwards_in_flight",
            "cluster.max_remote_views",
            "cluster.remote_view_lease_seconds",
        ] {
            assert!(p.iter().any(|m| m.starts_with(key)), "{key}: {p:?}");
        }
        let unknown = toml::from_str::<ClusterConfig>(
            "node_id = \"n1\"\nnats_urls = []\nreplicas = 1\nleader = true",
        );
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn env_overrides() {
        let mut c = good();
        c.apply_env(&|k| match k {
            "PHOENIX_CLUSTER_NODE_ID" => Some("n9".into()),
            "PHOENIX_CLUSTER_NATS_URLS" => Some("nats://a:1, nats://b:2".into()),
            "PHOENIX_CLUSTER_REPLICAS" => Some("three".into()),
            _ => None,
        });
        assert_eq!(c.node_id, "n9");
        assert_eq!(c.nats_urls, ["nats://a:1", "nats://b:2"]);
        let mut p = Vec::new();
        c.problems(&mut p);
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
