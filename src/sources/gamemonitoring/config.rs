//! `[tenants.gamemonitoring]`: the webhook token, the vote API, and the reward rules —
//! validated while parsing, every problem reported with its path.

use serde::Deserialize;

use crate::types::Secret;
use phoenix_actors::rewards::Reward;

/// GAMEMONITORING vote rewards of one tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawGmConfig")]
pub struct GmConfig {
    /// The project's webhook token (HMAC key of the webhook signature).
    pub webhook_token: Secret,
    /// Base URL of the vote API, without a trailing `/`.
    pub api_base: String,
    /// Timeout of one vote lookup, in milliseconds.
    pub timeout_ms: u64,
    /// Whether each grant also enters the tenant's event stream (`gamemonitoring.vote`).
    pub emit_events: bool,
    /// Reward rules; at most one without `server_id` (the default).
    pub rewards: Vec<RewardRule>,
}

/// The file form of [`GmConfig`], before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGmConfig {
    /// The project's webhook token (HMAC key of the webhook signature).
    webhook_token: Secret,
    /// Vote API base URL (default `https://api.gamemonitoring.in`).
    #[serde(default = "default_api_base")]
    api_base: String,
    /// Vote lookup timeout in ms (default 5000, 1..=60000).
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    /// Each grant also becomes a `gamemonitoring.vote` event (default true).
    #[serde(default = "default_true")]
    emit_events: bool,
    /// `[[tenants.gamemonitoring.rewards]]`.
    #[serde(default)]
    rewards: Vec<RewardRule>,
}

fn default_api_base() -> String {
    "https://api.gamemonitoring.in".into()
}
fn default_timeout() -> u64 {
    5000
}
fn default_true() -> bool {
    true
}

/// A server id in the file: a string or an integer (the API sends either).
#[derive(Deserialize)]
#[serde(untagged)]
enum ServerId {
    Text(String),
    Number(i64),
}

fn server_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<ServerId>::deserialize(d)?.map(|s| match s {
        ServerId::Text(t) => t.trim().to_owned(),
        ServerId::Number(n) => n.to_string(),
    }))
}

/// `[[tenants.gamemonitoring.rewards]]`: what a vote for one server (or any server) grants.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RewardRule {
    /// The vote's `server.id` this rule applies to; absent: the default rule.
    #[serde(default, deserialize_with = "server_id")]
    pub server_id: Option<String>,
    /// Coins added to the player's balance.
    pub coins: u64,
    /// Items granted (recorded in the ledger for the game to hand out).
    #[serde(default)]
    pub items: Vec<String>,
    /// A role granted.
    #[serde(default)]
    pub role: Option<String>,
    /// Days of VIP time granted.
    #[serde(default)]
    pub vip_days: Option<u32>,
}

impl RewardRule {
    pub fn reward(&self) -> Reward {
        Reward {
            coins: self.coins,
            items: self.items.clone(),
            role: self.role.clone(),
            vip_days: self.vip_days,
        }
    }
}

/// Every problem of a `[tenants.gamemonitoring]` section, each with its field.
#[derive(Debug, thiserror::Error)]
#[error("gamemonitoring: {}", .0.join("; "))]
pub struct GmConfigError(pub Vec<String>);

impl TryFrom<RawGmConfig> for GmConfig {
    type Error = GmConfigError;

    fn try_from(raw: RawGmConfig) -> Result<GmConfig, GmConfigError> {
        let mut problems = Vec::new();
        if raw.webhook_token.expose().trim().len() < 8 {
            problems.push("webhook_token: must be at least 8 characters".to_owned());
        }
        let api_base = raw.api_base.trim().trim_end_matches('/').to_owned();
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|s| api_base.starts_with(s) && api_base.len() > s.len());
        if !scheme_ok || api_base.contains(['?', '#', ' ']) {
            problems.push("api_base: must be an http(s) URL without query or fragment".into());
        }
        if !(1..=60_000).contains(&raw.timeout_ms) {
            problems.push("timeout_ms: must be between 1 and 60000".into());
        }
        let mut servers = std::collections::HashSet::new();
        let mut defaults = 0;
        for (i, r) in raw.rewards.iter().enumerate() {
            match &r.server_id {
                None => defaults += 1,
                Some(s) if s.is_empty() => {
                    problems.push(format!("rewards[{i}].server_id: cannot be empty"))
                }
                Some(s) => {
                    if !servers.insert(s.clone()) {
                        problems.push(format!("rewards[{i}].server_id: {s:?} has two rules"));
                    }
                }
            }
            if r.items.iter().any(|it| it.trim().is_empty()) {
                problems.push(format!("rewards[{i}].items: items cannot be empty"));
            }
            if r.role.as_ref().is_some_and(|x| x.trim().is_empty()) {
                problems.push(format!("rewards[{i}].role: cannot be empty"));
            }
        }
        if defaults > 1 {
            problems.push("rewards: at most one rule without server_id (the default)".into());
        }
        if !problems.is_empty() {
            return Err(GmConfigError(problems));
        }
        Ok(GmConfig {
            webhook_token: raw.webhook_token,
            api_base,
            timeout_ms: raw.timeout_ms,
            emit_events: raw.emit_events,
            rewards: raw.rewards,
        })
    }
}

impl GmConfig {
    /// The rule for a vote's server: the one naming it, else the default, else none.
    pub fn rule_for(&self, server_id: Option<&str>) -> Option<&RewardRule> {
        server_id
            .and_then(|s| {
                self.rewards
                    .iter()
                    .find(|r| r.server_id.as_deref() == Some(s))
            })
            .or_else(|| self.rewards.iter().find(|r| r.server_id.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GmConfig, String> {
        toml::from_str::<GmConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_rules() {
        let c = parse(
            r#"
            webhook_token = "gm-webhook-token-0123"
            [[rewards]]
            server_id = 1
            coins = 100
            items = ["crate"]
            role = "voter"
            vip_days = 3
            [[rewards]]
            coins = 10
            [[rewards]]
            server_id = "srv-2"
            coins = 0
        "#,
        )
        .unwrap();
        assert_eq!(c.api_base, "https://api.gamemonitoring.in");
        assert_eq!(c.timeout_ms, 5000);
        assert!(c.emit_events);
        assert!(!format!("{c:?}").contains("gm-webhook-token-0123"));
        assert_eq!(c.rule_for(Some("1")).unwrap().coins, 100);
        assert_eq!(c.rule_for(Some("srv-2")).unwrap().coins, 0);
        assert_eq!(c.rule_for(Some("99")).unwrap().coins, 10, "default rule");
        assert_eq!(c.rule_for(None).unwrap().coins, 10);
    }

    #[test]
    fn no_default_rule_means_no_rule() {
        let c = parse(
            r#"
            webhook_token = "gm-webhook-token-0123"
            api_base = "http://127.0.0.1:9/"
            [[rewards]]
            server_id = "1"
            coins = 5
        "#,
        )
        .unwrap();
        assert_eq!(c.api_base, "http://127.0.0.1:9");
        assert!(c.rule_for(Some("2")).is_none());
        assert!(c.rule_for(None).is_none());
        assert_eq!(c.rule_for(Some("1")).unwrap().reward().coins, 5);
    }

    #[test]
    fn reports_every_problem() {
        let err = parse(
            r#"
            webhook_token = "short"
            api_base = "ftp://x"
            timeout_ms = 0
            [[rewards]]
            coins = 1
            [[rewards]]
            coins = 2
            role = ""
            [[rewards]]
            server_id = "1"
            coins = 1
            items = [""]
            [[rewards]]
            server_id = 1
            coins = 1
        "#,
        )
        .unwrap_err();
        for needle in [
            "webhook_token:",
            "api_base:",
            "timeout_ms:",
            "rewards[1].role:",
            "rewards[2].items:",
            "rewards[3].server_id: \"1\" has two rules",
            "at most one rule without server_id",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
        assert!(parse("webhook_token = \"gm-webhook-token\"\nbogus = 1").is_err());
        assert!(parse("webhook_token = \"gm-webhook-token\"\n[[rewards]]\ncoins = -1").is_err());
        assert!(
            parse("webhook_token = \"gm-webhook-token\"\n[[rewards]]\ncoins = 1\nextra = 2")
                .is_err()
        );
    }

    #[test]
    fn the_example_file_configures_demo() {
        let c = crate::config::Config::from_toml(include_str!("../../../phoenix.example.toml"))
            .unwrap();
        c.validate().unwrap();
        let demo = c.tenants.iter().find(|t| t.id == "demo").unwrap();
        let gm = demo.gamemonitoring.as_ref().unwrap();
        assert_eq!(gm.rule_for(Some("1")).unwrap().coins, 100);
        assert_eq!(gm.rule_for(Some("7")).unwrap().coins, 10);
    }
}
