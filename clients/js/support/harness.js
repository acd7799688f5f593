// Test harness: start the real `phoenix` binary on 127.0.0.1 with a temp data dir (as
// tests/common/mod.rs does), restart it on the same port, and small polling helpers.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const TENANT = 'demo';
export const SECRET = 'demo-secret-0123456789';
export const OPERATOR = 'test-operator-token';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PHOENIX_BIN = process.env.PHOENIX_BIN
  ? path.resolve(process.env.PHOENIX_BIN)
  : path.resolve(here, '..', '..', '..', 'target', 'debug', 'phoenix');

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function configText(dataDir, listen, extra) {
  return `
listen = "${listen}"
data_dir = "${dataDir.replace(/\\/g, '\\\\')}"
operator_token = "${OPERATOR}"
ws_push_interval_ms = 20
${extra}
[[tenants]]
id = "${TENANT}"
secret = "${SECRET}"

[[tenants]]
id = "paused"
secret = "paused-secret-0123456789"
status = "suspended"
`;
}

/**
 * A running `phoenix serve`. `Phoenix.start({ port, extra })`: `port` 0 picks any; give a
 * fixed port to restart on the same address. `restart()` SIGKILLs (no shutdown hook, no
 * final flush) and starts again with the same data dir and port.
 */
export class Phoenix {
  static async start({ port = 0, extra = '', dir } = {}) {
    if (!existsSync(PHOENIX_BIN)) {
      throw new Error(`no phoenix binary at ${PHOENIX_BIN}: run \`cargo build --bin phoenix\` or set PHOENIX_BIN`);
    }
    const p = new Phoenix();
    p.dir = dir ?? mkdtempSync(path.join(os.tmpdir(), 'phoenix-js-'));
    p.port = port;
    p.extra = extra;
    await p._spawn();
    return p;
  }

  async _spawn() {
    const config = path.join(this.dir, 'phoenix.toml');
    const listen = `127.0.0.1:${this.port}`;
    writeFileSync(config, configText(path.join(this.dir, 'data'), listen, this.extra));
    const env = { ...process.env, PHOENIX_LOG: 'warn' };
    delete env.PHOENIX_LISTEN;
    delete env.PHOENIX_DATA_DIR;
    const child = spawn(PHOENIX_BIN, ['serve', '--config', config], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`phoenix exited (${code}) before listening`)));
    });
    const m = /^phoenix listening on (http:\/\/\S+)$/.exec(first.trim());
    if (!m) throw new Error(`unexpected first line ${JSON.stringify(first)}`);
    this.base = m[1];
    this.port = Number(new URL(this.base).port);
    // Keep draining stdout so the child never blocks on a full pipe.
    lines.on('line', () => {});
  }

  /** SIGKILL and wait for the exit. */
  async kill() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** Kill -9, then start again on the same port and data dir (retrying the bind briefly). */
  async restart() {
    await this.kill();
    for (let i = 0; ; i++) {
      try {
        await this._spawn();
        return;
      } catch (e) {
        if (i >= 20) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Kill and remove the temp dir. */
  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async metrics() {
    const r = await fetch(`${this.base}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR}` } });
    return r.text();
  }
}

/** A valid event in the seed's shape. */
export function event(id, user, score, extra = {}) {
  return {
    tenant_id: 'placeholder',
    event_id: id,
    type: 'match.completed',
    actor: { user_id: user, metadata: { region: 'na-east', platform: 'ios' } },
    subject: { type: 'match', id: 'match-987' },
    occurred_at: new Date().toISOString(),
    attrs: { score, duration_seconds: 480, victory: true },
    ...extra,
  };
}

/** A board summing `attrs.score` of `match.completed`. */
export const SCORE_BOARD = {
  name: 'Score',
  rules: [{ event_type: 'match.completed', points_expression: 'attrs.score' }],
  aggregation: 'sum',
  timeframes: ['daily', 'all_time'],
  sort_order: 'desc',
};

/** Poll `f` until it returns a truthy value (or fail after `ms`). */
export async function eventually(what, f, ms = 10_000) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`never happened: ${what} (last: ${last?.stack ?? JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
