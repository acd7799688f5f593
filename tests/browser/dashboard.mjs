// Drives the live-ops dashboard in headless Debian Chromium: log in with the operator token,
// pick a board, ingest signed events over HTTP, and see the live table change without a
// reload. Run by tests/dashboard.rs with PHOENIX_BASE, OPERATOR, TENANT, SECRET, SHOT set.
import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";

const { PHOENIX_BASE: base, OPERATOR: op, TENANT: tenant, SECRET: secret, SHOT: shot } = process.env;

async function ingest(events) {
  const body = JSON.stringify({ events });
  const ts = Math.floor(Date.now() / 1000).toString();
  const sig = createHmac("sha256", secret).update(["POST", "/v1/events/bulk", ts, body].join("\n")).digest("hex");
  const r = await fetch(`${base}/v1/events/bulk`, { method: "POST", body,
    headers: { "X-Tenant-Id": tenant, "X-Timestamp": ts, "X-Signature": `hmac-sha256=${sig}`, "Content-Type": "application/json" } });
  if (r.status !== 202) throw new Error(`ingest answered ${r.status}: ${await r.text()}`);
}
const ev = (id, user, score) => ({ event_id: id, type: "match.completed", actor: { user_id: user },
  occurred_at: new Date().toISOString(), attrs: { score } });

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  // CI runs this beside the rest of the suite on 2 cores: a wait that takes 10 s there passes
  // in 1 s on a quiet machine. Every wait gets 30 s; a missing update still fails.
  page.setDefaultTimeout(30000);
  await page.goto(`${base}/`);
  // A wrong token is refused.
  await page.fill("#token", "not-the-token");
  await page.press("#token", "Enter");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("failed"));
  await page.fill("#token", op);
  await page.press("#token", "Enter");
  await page.waitForSelector("#app:not(.hidden)");
  await page.selectOption("#tenant", tenant);
  await page.waitForFunction(() => [...document.querySelectorAll("#board option")].some((o) => o.value === "score"));
  await page.selectOption("#board", "score");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "live");

  await ingest([ev("b1", "alice", 100), ev("b2", "bob", 80), ev("b3", "carol", 60)]);
  await page.waitForFunction(() => document.querySelectorAll("#live tbody tr").length === 3, null, { timeout: 30000 });
  const first = await page.$$eval("#live tbody tr", (rows) => rows.map((r) => r.dataset.user));
  if (first.join() !== "alice,bob,carol") throw new Error(`unexpected order ${first}`);

  // carol overtakes everyone: the table updates in place, no reload.
  const marker = await page.evaluate(() => (window.__noReload = true));
  await ingest([ev("b4", "carol", 500)]);
  await page.waitForFunction(() => document.querySelector("#live tbody tr")?.dataset.user === "carol", null, { timeout: 30000 });
  if (!(await page.evaluate(() => window.__noReload === true))) throw new Error("page reloaded");
  const rowClass = await page.$eval("#live tbody tr", (r) => r.className);
  if (rowClass !== "up") throw new Error(`carol's row should animate up, has class "${rowClass}"`);

  // User search and the ingestion panel.
  await page.fill("#user", "bob");
  await page.press("#user", "Enter");
  await page.waitForFunction(() => document.querySelector("#user-result").textContent.includes("rank 3"));
  await page.waitForFunction(() => document.querySelectorAll("#ingest tbody tr").length > 0, null, { timeout: 30000 });

  // Live-ops: the season board's windows with "closes in", its closed window picked from a
  // list with winners and grants, the editor's inline errors, and the player view.
  await page.selectOption("#board", "season");
  await page.waitForFunction(() => [...document.querySelectorAll("#windows tbody tr")].some((r) => r.dataset.tf === "hourly"
    && /\d+(s|m|h)/.test(r.querySelector(".closes-in").textContent)), null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll("#closes-pick option").length > 0, null, { timeout: 40000 });
  await page.selectOption("#closes-pick", { index: 0 });
  await page.waitForFunction(() => document.querySelector("#closes-results tbody tr td:nth-child(2)")?.textContent === "ann", null, { timeout: 30000 });
  const grants = await page.$$eval("#closes-grants tbody tr", (rows) => rows.map((r) => `${r.dataset.user}:${r.children[2].textContent}`));
  if (grants.join() !== "ann:1000,ben:300,cat:300") throw new Error(`unexpected grants ${grants}`);

  await page.fill("#ed-rewards", '[{"ranks": [1, 1], "coins": 10}, {"ranks": [9, 2], "coins": 5}]');
  await page.click("#editor button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#err-rewards").textContent.includes("rewards[1].ranks"), null, { timeout: 30000 });
  if ((await page.textContent("#err-rules")) !== "") throw new Error("the error belongs next to rewards only");
  await page.fill("#ed-rewards", '[{"ranks": [1, 1], "coins": 1000, "items": ["gold-cup"]}, {"ranks": [2, 3], "coins": 300}]');
  await page.fill("#ed-name", "Season (edited)");
  await page.click("#editor button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#editor-status").textContent === "saved season", null, { timeout: 30000 });
  if ((await page.textContent("#err-rewards")) !== "") throw new Error("error not cleared after a good save");

  await page.fill("#player", "ann");
  await page.press("#player", "Enter");
  await page.waitForFunction(() => document.querySelector("#player-wallet").textContent.includes("balance 1000"), null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelector("#player-ranks tbody tr[data-board=season]") !== null, null, { timeout: 30000 });
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  console.log(`dashboard ok (marker ${marker})`);
} finally {
  await browser.close();
}
