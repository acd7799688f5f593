// LiveView / LiveBoard: frame logic with synthetic frames (seq gaps), then against the real
// binary: live updates, a server killed and restarted during a session, streaming ingest
// with a bounded in-flight window.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { LiveView, LiveBoard, PhoenixSocket, PhoenixClient, Emitter } from '../src/index.js';
import { NodeWebSocket } from '../src/node-ws.js';
import { Phoenix, TENANT, SECRET, SCORE_BOARD, event, eventually, freePort } from '../support/harness.js';

const snap = (seq, entries) => ({ id: 's', type: 'snapshot', seq, window: 'all_time', entries });
const upd = (seq, changes) => ({ id: 's', type: 'update', seq, window: 'all_time', changes });
const E = (rank, user_id, score) => ({ rank, user_id, score });

test('LiveView applies updates: moves, entries and users leaving the view', () => {
  const v = new LiveView();
  v.snapshot(snap(7, [E(1, 'bob', 120), E(2, 'alice', 102)]));
  const r = v.update(
    upd(8, [
      { user_id: 'carol', rank: 1, score: 130, previous_rank: null },
      { user_id: 'bob', rank: 2, score: 120, previous_rank: 1 },
      { user_id: 'alice', rank: null, score: null, previous_rank: 2 },
    ]),
  );
  assert.equal(r.ok, true);
  assert.deepEqual(v.standings(), [E(1, 'carol', 130), E(2, 'bob', 120)]);
  assert.equal(v.seq, 8);
});

test('LiveView reports a seq gap and changes nothing', () => {
  const v = new LiveView();
  v.snapshot(snap(1, [E(1, 'a', 5)]));
  const r = v.update(upd(3, [{ user_id: 'b', rank: 1, score: 9, previous_rank: null }]));
  assert.deepEqual(r, { ok: false, expected: 2, got: 3 });
  assert.deepEqual(v.standings(), [E(1, 'a', 5)]);
  assert.equal(v.update(upd(1, [])).ok, false, 'a repeated seq is a gap too');
});

/** A stand-in for PhoenixSocket that records what a LiveBoard sends. */
class FakeSocket extends Emitter {
  constructor() {
    super();
    this.sent = [];
    this.reconnectPolicy = { baseDelayMs: 1, maxDelayMs: 2 };
  }
  _register(board) {
    this.board = board;
    board._resubscribe('start');
  }
  _unregister() {}
  _send(frame) {
    this.sent.push(frame);
    return true;
  }
}

test('LiveBoard resubscribes on a seq gap, ignores stale updates, and takes the new snapshot', () => {
  const sock = new FakeSocket();
  const board = new LiveBoard({ socket: sock, id: 's', leaderboard: 'weekly', timeframe: 'weekly', top: 10 });
  assert.deepEqual(sock.sent[0], { type: 'subscribe', id: 's', leaderboard: 'weekly', timeframe: 'weekly', window: 'current', view: { top: 10 } });
  const events = [];
  for (const name of ['snapshot', 'change', 'resync']) board.on(name, (p) => events.push([name, p.reason ?? p.seq]));
  board._onFrame(snap(1, [E(1, 'a', 5)]));
  board._onFrame(upd(2, [{ user_id: 'b', rank: 2, score: 1, previous_rank: null }]));
  board._onFrame(upd(4, [{ user_id: 'c', rank: 1, score: 99, previous_rank: null }])); // 3 was skipped
  assert.equal(sock.sent.length, 2, 'a gap sends subscribe again');
  assert.deepEqual(sock.sent[1], sock.sent[0]);
  board._onFrame(upd(5, [{ user_id: 'x', rank: 1, score: 1e9, previous_rank: null }])); // stale, before the snapshot
  assert.deepEqual(board.standings(), [E(1, 'a', 5), E(2, 'b', 1)]);
  board._onFrame(snap(9, [E(1, 'c', 99), E(2, 'a', 5), E(3, 'b', 1)]));
  assert.deepEqual(board.standings(), [E(1, 'c', 99), E(2, 'a', 5), E(3, 'b', 1)]);
  board._onFrame(upd(10, [{ user_id: 'b', rank: 2, score: 6, previous_rank: 3 }, { user_id: 'a', rank: 3, score: 5, previous_rank: 2 }]));
  assert.deepEqual(board.standings().map((e) => e.user_id), ['c', 'b', 'a']);
  assert.deepEqual(events, [
    ['snapshot', 'start'],
    ['change', 2],
    ['resync', 'gap'],
    ['snapshot', 'gap'],
    ['change', 10],
  ]);
  assert.equal(board.resyncs, 1);
});

test('LiveBoard: a refused subscribe rejects ready()', async () => {
  const sock = new FakeSocket();
  const board = new LiveBoard({ socket: sock, id: 's', leaderboard: 'nope', top: 3 });
  board._onError(Object.assign(new Error('leaderboard nope not found'), { code: 'NOT_FOUND', status: 404, retryable: false }));
  await assert.rejects(board.ready(), /not found/);
  assert.equal(board.closed, true);
});

// ---- against the real binary ----

let phoenix;
let backend;

before(async () => {
  // A fixed port, so a restart comes back on the same address.
  phoenix = await Phoenix.start({ port: await freePort() });
  backend = new PhoenixClient({ baseUrl: phoenix.base, tenant: TENANT, secret: SECRET });
  await backend.putLeaderboard('live', SCORE_BOARD);
});
after(async () => {
  await phoenix?.stop();
});

/** Standings from HTTP in the shape LiveBoard keeps. */
async function httpTop(board, limit = 10) {
  const s = await backend.standings(board, { limit });
  return s.entries.map((e) => ({ rank: e.rank, user_id: e.user_id, score: e.score }));
}

test('LiveBoard with a client token: snapshot, then live changes match the HTTP standings', async () => {
  await backend.ingestBulk([event('lv-1', 'ann', 10), event('lv-2', 'ben', 20)]);
  await eventually('applied', async () => (await httpTop('live')).length === 2);
  const { token } = await backend.createToken({ userId: 'ann', leaderboards: ['live'] });
  const board = new LiveBoard({ baseUrl: phoenix.base, token, WebSocket: NodeWebSocket, leaderboard: 'live', top: 3 });
  try {
    const first = await board.ready();
    assert.deepEqual(first, [E(1, 'ben', 20), E(2, 'ann', 10)]);
    const changes = [];
    board.on('change', (c) => changes.push(c));
    await backend.ingest(event('lv-3', 'cat', 30));
    await backend.ingest(event('lv-4', 'ann', 15)); // ann 25: second
    await backend.ingest(event('lv-5', 'dan', 1)); // fourth: outside the top 3
    await eventually('view has ann at 25', () => board.standings().some((e) => e.user_id === 'ann' && e.score === 25));
    assert.deepEqual(board.standings(), [E(1, 'cat', 30), E(2, 'ann', 25), E(3, 'ben', 20)]);
    assert.deepEqual(board.standings(), await httpTop('live', 3));
    assert.ok(changes.length >= 1);
    assert.equal(board.resyncs, 0);
  } finally {
    board.close();
  }
});

test('LiveBoard around a user follows that user as they climb', async () => {
  await backend.putLeaderboard('around', { ...SCORE_BOARD, rules: [{ event_type: 'around.scored', points_expression: 'attrs.score' }] });
  const t = { type: 'around.scored' };
  await backend.ingestBulk([1, 2, 3, 4, 5].map((n) => event(`ar-${n}`, `u${n}`, n * 10, t)));
  await eventually('applied', async () => (await httpTop('around')).length === 5);
  const board = new LiveBoard({ baseUrl: phoenix.base, tenant: TENANT, secret: SECRET, leaderboard: 'around', around: 'u2', radius: 1 });
  try {
    assert.deepEqual(await board.ready(), [E(3, 'u3', 30), E(4, 'u2', 20), E(5, 'u1', 10)]);
    await backend.ingest(event('ar-6', 'u2', 25, t)); // u2: 45, between u4 (40) and u5 (50)
    const want = [E(1, 'u5', 50), E(2, 'u2', 45), E(3, 'u4', 40)];
    await eventually('u2 moved up', () => JSON.stringify(board.standings()) === JSON.stringify(want));
  } finally {
    board.close();
  }
});

test('the server is killed and restarted during a LiveBoard session: the view is correct afterwards', async () => {
  await backend.putLeaderboard('restart', { ...SCORE_BOARD, rules: [{ event_type: 'restart.scored', points_expression: 'attrs.score' }] });
  const t = { type: 'restart.scored' };
  await backend.ingestBulk([event('rs-1', 'p1', 10, t), event('rs-2', 'p2', 20, t), event('rs-3', 'p3', 30, t)]);
  await eventually('applied', async () => (await httpTop('restart')).length === 3);

  // A backend socket with tenant HMAC headers (Node only), shared by a board and streaming ingest.
  const socket = new PhoenixSocket({
    baseUrl: phoenix.base,
    tenant: TENANT,
    secret: SECRET,
    reconnect: { baseDelayMs: 50, maxDelayMs: 400 },
  });
  const seen = { open: 0, close: 0, reconnecting: 0 };
  for (const k of Object.keys(seen)) socket.on(k, () => seen[k]++);
  const board = socket.liveBoard({ leaderboard: 'restart', top: 10 });
  const reasons = [];
  board.on('snapshot', (s) => reasons.push(s.reason));
  try {
    assert.deepEqual(await board.ready(), [E(1, 'p3', 30), E(2, 'p2', 20), E(3, 'p1', 10)]);

    await phoenix.kill();
    await eventually('the client saw the close', () => seen.close >= 1);
    // Streamed while the server is down: queued, sent after the reconnect.
    const whileDown = socket.ingest([event('rs-4', 'p1', 100, t), event('rs-5', 'p4', 5, t)]);
    await phoenix.restart();
    const results = await whileDown;
    assert.deepEqual(results.map((r) => r.status), ['accepted', 'accepted']);
    await eventually('resubscribed after the reconnect', () => reasons.includes('connect'));
    // And after the restart, more changes arrive live.
    await backend.ingest(event('rs-6', 'p2', 50, t));
    const want = [E(1, 'p1', 110), E(2, 'p2', 70), E(3, 'p3', 30), E(4, 'p4', 5)];
    await eventually('the view caught up', () => JSON.stringify(board.standings()) === JSON.stringify(want));
    assert.deepEqual(await httpTop('restart'), want);
    assert.ok(seen.reconnecting >= 1 && socket.reconnects >= 1, JSON.stringify(seen));
    assert.ok(seen.open >= 2);
    // Exactly once in the log, even though the frame may have been sent twice.
    const page = await backend.readLog({ from: 1, limit: 1000 });
    const ids = page.events.map((e) => e.event.event_id).filter((id) => id.startsWith('rs-'));
    assert.deepEqual(ids.sort(), ['rs-1', 'rs-2', 'rs-3', 'rs-4', 'rs-5', 'rs-6']);
  } finally {
    socket.close();
  }
});

test('streaming ingest keeps at most maxInFlight events unacknowledged and acks every event', async () => {
  let outstanding = 0;
  let maxOutstanding = 0;
  // Count what really crosses the socket: events sent in ingest frames minus events acked.
  class CountingWS extends NodeWebSocket {
    send(data) {
      const f = JSON.parse(data);
      if (f.type === 'ingest') {
        outstanding += f.events.length;
        maxOutstanding = Math.max(maxOutstanding, outstanding);
      }
      super.send(data);
    }
    _emit(type, ev) {
      if (type === 'message') {
        const f = JSON.parse(ev.data);
        if (f.type === 'ack') outstanding -= f.results.length;
      }
      super._emit(type, ev);
    }
  }
  const socket = new PhoenixSocket({ baseUrl: phoenix.base, tenant: TENANT, secret: SECRET, WebSocket: CountingWS, maxInFlight: 8 });
  try {
    await socket.connect();
    const calls = [];
    for (let i = 0; i < 20; i++) {
      calls.push(socket.ingest([event(`st-${i}-a`, `s${i % 4}`, 1), event(`st-${i}-b`, `s${i % 4}`, 1), event(`st-${i}-c`, 's9', 1)]));
      assert.ok(socket.inFlight <= 8);
    }
    // One invalid event among valid ones: a per-event failure, the rest accepted.
    calls.push(socket.ingest([event('st-bad', 's1', 1, { type: '' }), event('st-ok', 's1', 1)]));
    // A batch larger than the window is split into frames that fit.
    calls.push(socket.ingest(Array.from({ length: 20 }, (_, i) => event(`st-big-${i}`, 's1', 1))));
    const results = (await Promise.all(calls)).flat();
    assert.equal(results.length, 20 * 3 + 2 + 20);
    assert.equal(results.filter((r) => r.status === 'accepted').length, results.length - 1);
    const bad = results.find((r) => r.status === 'failed');
    assert.equal(bad.event_id, 'st-bad');
    assert.match(bad.error, /Validation failed/);
    assert.ok(maxOutstanding <= 8, `max outstanding ${maxOutstanding}`);
    assert.ok(maxOutstanding >= 6, `the window was used (max ${maxOutstanding})`);
    assert.equal(socket.inFlight, 0);
    // Re-sending gives duplicates, not new events.
    const again = await socket.ingest([event('st-0-a', 's0', 1)]);
    assert.equal(again[0].status, 'duplicate');
  } finally {
    socket.close();
  }
});

test('a client token cannot stream events; HMAC auth refuses a wrong secret before the upgrade', async () => {
  const { token } = await backend.createToken({ userId: 'ann' });
  const reader = new PhoenixSocket({ baseUrl: phoenix.base, token, WebSocket: NodeWebSocket });
  try {
    await assert.rejects(reader.ingest([event('tk-1', 'ann', 1)]), (e) => e.code === 'FORBIDDEN' && e.status === 403);
  } finally {
    reader.close();
  }
  const wrong = new PhoenixSocket({ baseUrl: phoenix.base, tenant: TENANT, secret: 'wrong-secret-000000000', reconnect: false });
  const errored = wrong.next('error', 5000);
  await assert.rejects(wrong.connect(), /closed before it opened/);
  const err = await errored;
  assert.match(err.message, /HTTP 401/);
  assert.match(err.message, /UNAUTHORIZED/);
  wrong.close();
});
