// Signing and token minting, checked against an independent node:crypto computation and
// against the real server (it accepts our signatures and our locally minted tokens).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { buildSignature, canonical, hmacHex, mintToken, signedHeaders, PhoenixClient, PhoenixError } from '../src/index.js';
import { Phoenix, TENANT, SECRET, SCORE_BOARD } from '../support/harness.js';

// The seed's Node snippet (000 §3), verbatim apart from the fixed timestamp.
function seedSignature(secret, method, path, body, timestamp) {
  const canonicalString = [method.toUpperCase(), path, timestamp, body].join('\n');
  const digest = crypto.createHmac('sha256', secret).update(canonicalString).digest('hex');
  return { timestamp, signature: `hmac-sha256=${digest}` };
}

test('signatures match the seed snippet computed with node:crypto', async () => {
  const body = JSON.stringify({ event_id: 'evt_ü', type: 'match.completed', attrs: { score: 1550 } });
  for (const [method, path, b] of [
    ['post', '/v1/events', body],
    ['GET', '/v1/ws', ''],
    ['PUT', '/v1/leaderboards/weekly%20ranked', '{}'],
  ]) {
    const ours = await buildSignature(SECRET, method, path, b, 1_700_000_000);
    assert.deepEqual(ours, seedSignature(SECRET, method, path, b, '1700000000'));
  }
  assert.equal(canonical('get', '/x', 5, ''), 'GET\n/x\n5\n');
});

test('a fixed vector: HMAC-SHA256 of the RFC 4231 test case 2', async () => {
  // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
  assert.equal(
    await hmacHex('Jefe', 'what do ya want for nothing?'),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  );
});

test('signedHeaders uses the current time within a second', async () => {
  const h = await signedHeaders(TENANT, SECRET, 'POST', '/v1/events', '{}');
  assert.equal(h['X-Tenant-Id'], TENANT);
  assert.ok(Math.abs(Number(h['X-Timestamp']) - Date.now() / 1000) < 2);
  assert.match(h['X-Signature'], /^hmac-sha256=[0-9a-f]{64}$/);
});

test('mintToken produces the pxt1 format of src/tokens.rs', async () => {
  const tok = await mintToken(SECRET, { tenant: 'acme', userId: 'alice', ttlSeconds: 60, leaderboards: ['w'], now: 1000 });
  const [prefix, payload, sig] = tok.split('.');
  assert.equal(prefix, 'pxt1');
  assert.deepEqual(JSON.parse(Buffer.from(payload, 'base64url').toString()), { t: 'acme', u: 'alice', exp: 1060, lb: ['w'] });
  assert.equal(sig, crypto.createHmac('sha256', SECRET).update(`pxt1.${payload}`).digest('hex'));
});

let phoenix;
before(async () => {
  phoenix = await Phoenix.start();
});
after(async () => {
  await phoenix?.stop();
});

test('the server accepts our signatures and refuses a wrong secret with the envelope', async () => {
  const good = new PhoenixClient({ baseUrl: phoenix.base, tenant: TENANT, secret: SECRET });
  assert.equal((await good.putLeaderboard('signed', SCORE_BOARD)).created, true);
  const bad = new PhoenixClient({ baseUrl: phoenix.base, tenant: TENANT, secret: 'not-the-secret-000000', retry: { attempts: 3 } });
  await assert.rejects(bad.listLeaderboards(), (e) => {
    assert.ok(e instanceof PhoenixError);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'UNAUTHORIZED');
    assert.equal(e.body.error.status, 401);
    assert.equal(e.retryable, false);
    return true;
  });
});

test('a locally minted token is accepted for queries; a tampered one is refused', async () => {
  const backend = new PhoenixClient({ baseUrl: phoenix.base, tenant: TENANT, secret: SECRET });
  await backend.putLeaderboard('minted', SCORE_BOARD);
  const token = await backend.mintToken({ userId: 'alice', leaderboards: ['minted'] });
  const player = new PhoenixClient({ baseUrl: phoenix.base, token });
  const s = await player.standings('minted');
  assert.equal(s.leaderboard, 'minted');
  assert.equal(s.total, 0);
  // The token names only "minted": another board is 403.
  await assert.rejects(player.standings('signed'), (e) => e.status === 403 && e.code === 'FORBIDDEN');
  const forged = new PhoenixClient({ baseUrl: phoenix.base, token: `${token.slice(0, -2)}00` });
  await assert.rejects(forged.standings('minted'), (e) => e.status === 401 && e.code === 'UNAUTHORIZED');
});
