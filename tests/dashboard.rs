//! End-to-end browser test of the live-ops dashboard in headless Debian Chromium, driven by
//! playwright-core (tests/browser/dashboard.mjs). `.ci/run` installs chromium and
//! playwright-core; elsewhere the test says it is skipped when they are missing.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::json;

#[tokio::test]
async fn dashboard_shows_standings_moving_live() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = root
        .join("tests/browser/node_modules/playwright-core")
        .exists()
        && Path::new("/usr/bin/chromium").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !tools {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install chromium, node and playwright-core (.ci/run)"
        );
        eprintln!("SKIPPED: dashboard browser test needs /usr/bin/chromium, node and tests/browser/node_modules (see .ci/run)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    let (s, _) = c
        .put_board("score", &json!({"name": "Score", "rules": [{"event_type": "match.*", "points_expression": "attrs.score"}], "timeframes": ["daily", "all_time"]}))
        .await;
    assert_eq!(s, 201);
    let shot = std::env::var("DASHBOARD_SCREENSHOT").unwrap_or_default();
    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(root.join("tests/browser/dashboard.mjs"))
            .env("PHOENIX_BASE", base)
            .env("OPERATOR", OPERATOR)
            .env("TENANT", TENANT)
            .env("SECRET", SECRET)
            .env("SHOT", shot)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("dashboard ok"), "{stdout}");
}
