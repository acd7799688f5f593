// PhoenixClient against the real binary: ingestion, leaderboard CRUD and queries, tokens.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { PhoenixClient, PhoenixError } from '../src/index.js';
import { Phoenix, TENANT, SECRET, SCORE_BOARD, event, eventually } from '../support/harness.js';

let phoenix;
let backend;

before(async () => {
  phoenix = await Phoenix.start();
  backend = new PhoenixClient({ baseUrl: phoenix.base, tenant: TENANT, secret: SECRET });
});
after(async () => {
  await phoenix?.stop();
});

async function loggedIds() {
  const ids = [];
  for (let from = 1; ; ) {
    const page = await backend.readLog({ from, limit: 1000 });
    if (page.events.length === 0) return ids;
    ids.push(...page.events.map((e) => e.event.event_id));
    from = page.next;
  }
}

test('health and ready', async () => {
  assert.equal(await backend.health(), true);
  // `/ready` is 503 while the tenants rebuild their dedupe windows after the listener is
  // up, so a fresh server becomes ready shortly after its first line, not with it.
  assert.equal(await eventually('ready', () => backend.ready()), true);
  const nobody = new PhoenixClient({ baseUrl: 'http://127.0.0.1:1', tenant: TENANT, secret: SECRET, timeoutMs: 1000 });
  assert.equal(await nobody.health(), false);
});

test('ingest: accepted, then duplicate for the same event_id; an id is generated when missing', async () => {
  const e = event('js-single-1', 'alice', 10);
  assert.deepEqual(await backend.ingest(e), { event_id: 'js-single-1', status: 'accepted', attempts: 1 });
  assert.equal((await backend.ingest(e)).status, 'duplicate');
  const { event_id: _, ...noId } = event('x', 'alice', 1);
  const r = await backend.ingest(noId);
  assert.equal(r.status, 'accepted');
  assert.match(r.event_id, /^evt_[0-9a-f-]{36}$/);
  const ids = await loggedIds();
  assert.equal(ids.filter((i) => i === 'js-single-1').length, 1);
  assert.ok(ids.includes(r.event_id));
});

test('ingest: a validation error is a PhoenixError with the envelope, not retried, nothing stored', async () => {
  const before = (await loggedIds()).length;
  const bad = event('js-bad-1', 'alice', 1, { occurred_at: new Date(Date.now() + 3 * 3600_000).toISOString() });
  await assert.rejects(backend.ingest(bad), (e) => {
    assert.ok(e instanceof PhoenixError);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'VALIDATION_ERROR');
    assert.equal(e.retryable, false);
    return true;
  });
  assert.equal((await loggedIds()).length, before);
});

test('ingestBulk: per-event results in order; the invalid one is failed and not retried', async () => {
  const good1 = event('js-bulk-1', 'bob', 5);
  const bad = { ...event('js-bulk-2', 'bob', 5), type: '' };
  const dup = event('js-single-1', 'alice', 10);
  const out = await backend.ingestBulk([good1, bad, dup]);
  assert.deepEqual(out.results.map((r) => [r.event_id, r.status]), [
    ['js-bulk-1', 'accepted'],
    ['js-bulk-2', 'failed'],
    ['js-single-1', 'duplicate'],
  ]);
  assert.equal(out.requests, 1, 'a validation failure is not retried');
  assert.deepEqual([out.status, out.accepted, out.duplicates, out.failed], ['partial', 1, 1, 1]);
  const ids = await loggedIds();
  assert.ok(ids.includes('js-bulk-1'));
  assert.ok(!ids.includes('js-bulk-2'));
  await assert.rejects(backend.ingestBulk([]), TypeError);
});

test('leaderboards: create, replace, get, list, delete', async () => {
  assert.equal((await backend.putLeaderboard('crud', SCORE_BOARD)).created, true);
  const again = await backend.putLeaderboard('crud', { ...SCORE_BOARD, name: 'Renamed' });
  assert.equal(again.created, false);
  assert.equal(again.definition.name, 'Renamed');
  assert.equal((await backend.getLeaderboard('crud')).name, 'Renamed');
  assert.ok((await backend.listLeaderboards()).some((b) => b.id === 'crud'));
  assert.equal(await backend.deleteLeaderboard('crud'), true);
  assert.equal(await backend.getLeaderboard('crud'), null);
  assert.equal(await backend.deleteLeaderboard('crud'), false);
  await assert.rejects(
    backend.putLeaderboard('broken', { ...SCORE_BOARD, rules: [{ event_type: 'x', points_expression: 'attrs.score * (' }] }),
    (e) => e.status === 400 && e.code === 'VALIDATION_ERROR' && /points_expression/.test(e.message),
  );
});

test('standings and a user query follow ingestion', async () => {
  // Its own event type: the board is built from the whole log, earlier tests' events included.
  const board = { ...SCORE_BOARD, rules: [{ event_type: 'ranked.done', points_expression: 'attrs.score' }] };
  await backend.putLeaderboard('ranked', board);
  const t = { type: 'ranked.done' };
  await backend.ingestBulk([event('r1', 'carol', 30, t), event('r2', 'dave', 20, t), event('r3', 'erin', 10, t), event('r4', 'carol', 5, t)]);
  const s = await eventually('standings', async () => {
    const s = await backend.standings('ranked', { timeframe: 'daily', limit: 10 });
    return s.total === 3 ? s : null;
  });
  assert.deepEqual(s.entries.map((e) => [e.rank, e.user_id, e.score]), [
    [1, 'carol', 35],
    [2, 'dave', 20],
    [3, 'erin', 10],
  ]);
  const u = await backend.userStanding('ranked', 'dave', { timeframe: 'daily', around: 1 });
  assert.equal(u.rank, 2);
  assert.deepEqual(u.entries.map((e) => e.user_id), ['carol', 'dave', 'erin']);
  assert.equal(await backend.userStanding('ranked', 'nobody', { timeframe: 'daily' }), null);
  await assert.rejects(backend.standings('ranked', { timeframe: 'yearly' }), (e) => e.status === 400);
  await assert.rejects(backend.standings('no-such-board'), (e) => e.status === 404 && e.code === 'NOT_FOUND');
});

test('tokens: POST /v1/tokens, then read-only use; bad requests are 400', async () => {
  await backend.putLeaderboard('tok', SCORE_BOARD);
  const t = await backend.createToken({ userId: 'alice', leaderboards: ['tok'], ttlSeconds: 120 });
  assert.equal(t.user_id, 'alice');
  assert.equal(t.tenant, TENANT);
  assert.deepEqual(t.leaderboards, ['tok']);
  assert.match(t.token, /^pxt1\./);
  const player = new PhoenixClient({ baseUrl: phoenix.base, token: t.token });
  assert.equal((await player.standings('tok')).leaderboard, 'tok');
  // Read-only: a token cannot ingest.
  await assert.rejects(player.ingest(event('tok-1', 'alice', 1)), (e) => e.status === 401 && !e.retryable);
  await assert.rejects(backend.createToken({ userId: 'alice', ttlSeconds: 0 }), (e) => e.status === 400 && /ttl_seconds/.test(e.message));
  await assert.rejects(backend.createToken({ userId: '' }), (e) => e.status === 400);
});
