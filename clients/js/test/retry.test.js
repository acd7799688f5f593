// Retries against a local fake of the ingestion API on 127.0.0.1 that fails on purpose:
// only the failed events are sent again, with the same event ids; accepted, duplicate and
// validation-failed ones never are; 4xx requests are not retried.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { PhoenixClient, PhoenixError } from '../src/index.js';
import { event } from '../support/harness.js';

/** A fake Phoenix whose answers come from `script` (one function per request, in order). */
let server;
let base;
let script = [];
let seen = [];

before(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const parsed = body ? JSON.parse(body) : null;
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: parsed });
      const step = script.shift();
      if (!step) {
        res.writeHead(500).end('no scripted answer');
        return;
      }
      step(req, res, parsed);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((r) => server.close(r)));

function reset(steps) {
  script = steps;
  seen = [];
}

const json = (res, status, body) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
const envelope = (code, status, message) => ({ error: { code, message, status } });
/** Answer each event with `status(event, index)` → a result object. */
const bulk = (f) => (req, res, body) => json(res, 202, { status: 'partial', results: body.events.map(f) });
const accept = (e) => ({ event_id: e.event_id, status: 'accepted' });

function client(retry = {}) {
  return new PhoenixClient({
    baseUrl: base,
    tenant: 'demo',
    secret: 'demo-secret-0123456789',
    retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 20, ...retry },
  });
}

test('bulk: only the event that failed with a retryable cause is sent again', async () => {
  reset([
    bulk((e, i) =>
      [
        accept(e),
        { event_id: e.event_id, status: 'failed', error: 'Validation failed: event_type cannot be empty' },
        { event_id: e.event_id, status: 'failed', error: 'storage busy', code: 'UNAVAILABLE' },
        { event_id: e.event_id, status: 'duplicate' },
      ][i]),
    bulk(accept),
  ]);
  const retries = [];
  const events = [event('a', 'u1', 1), event('b', 'u1', 1), event('c', 'u1', 1), event('d', 'u1', 1)];
  const out = await client({ onRetry: (r) => retries.push(r) }).ingestBulk(events);
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[0].body.events.map((e) => e.event_id), ['a', 'b', 'c', 'd']);
  assert.deepEqual(seen[1].body.events.map((e) => e.event_id), ['c'], 'only the retryable failure is re-sent');
  assert.deepEqual(seen[1].body.events[0], events[2], 'the same event, unchanged');
  assert.deepEqual(out.results.map((r) => r.status), ['accepted', 'failed', 'accepted', 'duplicate']);
  assert.match(out.results[1].error, /Validation failed/);
  assert.equal(out.status, 'partial');
  assert.deepEqual([out.accepted, out.duplicates, out.failed, out.attempts], [2, 1, 1, 2]);
  assert.equal(retries.length, 1);
  assert.equal(retries[0].events, 1);
  // Every attempt is signed afresh over the exact body sent.
  assert.ok(seen.every((s) => /^hmac-sha256=[0-9a-f]{64}$/.test(s.headers['x-signature'])));
});

test('bulk: a 503 or a dropped connection for the whole request retries every event with the same ids', async () => {
  reset([
    (req, res) => json(res, 503, envelope('UNAVAILABLE', 503, 'disk space low')),
    (req) => req.socket.destroy(),
    bulk(accept),
  ]);
  const events = [{ type: 'x', actor: { user_id: 'u' }, occurred_at: new Date().toISOString(), attrs: {} }, event('k', 'u', 2)];
  const out = await client().ingestBulk(events);
  assert.equal(seen.length, 3);
  const ids = seen.map((s) => s.body.events.map((e) => e.event_id));
  assert.match(ids[0][0], /^evt_/, 'an event without an id gets one');
  assert.deepEqual(ids[1], ids[0]);
  assert.deepEqual(ids[2], ids[0]);
  assert.equal(out.status, 'accepted');
  assert.equal(out.attempts, 3);
});

test('bulk: more than 100 events go in several requests, and a retry re-sends only the failed request', async () => {
  const events = Array.from({ length: 150 }, (_, i) => event(`e${i}`, 'u', 1));
  reset([bulk(accept), (req, res) => json(res, 500, envelope('INTERNAL_ERROR', 500, 'oops')), bulk(accept)]);
  const out = await client().ingestBulk(events);
  assert.deepEqual(seen.map((s) => s.body.events.length), [100, 50, 50]);
  assert.deepEqual(seen[2].body.events.map((e) => e.event_id), seen[1].body.events.map((e) => e.event_id));
  assert.equal(out.accepted, 150);
  assert.deepEqual(out.results.map((r) => r.event_id), events.map((e) => e.event_id));
});

test('bulk: a request-level 4xx is thrown at once, never retried', async () => {
  reset([(req, res) => json(res, 401, envelope('UNAUTHORIZED', 401, 'Invalid signature'))]);
  await assert.rejects(client().ingestBulk([event('z', 'u', 1)]), (e) => e instanceof PhoenixError && e.code === 'UNAUTHORIZED');
  assert.equal(seen.length, 1);
});

test('bulk: when attempts run out the unanswered events come back failed and retryable', async () => {
  reset(Array.from({ length: 3 }, () => (req, res) => json(res, 503, envelope('UNAVAILABLE', 503, 'busy'))));
  const out = await client({ attempts: 3 }).ingestBulk([event('q', 'u', 1)]);
  assert.equal(seen.length, 3);
  assert.equal(out.status, 'failed');
  assert.deepEqual(out.results[0], { event_id: 'q', status: 'failed', error: 'busy', code: 'UNAVAILABLE', retryable: true });
});

test('single: a 5xx is retried with the same event, a 400 is not', async () => {
  reset([
    (req, res) => json(res, 500, envelope('INTERNAL_ERROR', 500, 'Internal error')),
    (req, res, body) => json(res, 202, { event_id: body.event_id, status: 'accepted' }),
  ]);
  const r = await client().ingest(event('s1', 'u', 1));
  assert.deepEqual(r, { event_id: 's1', status: 'accepted', attempts: 2 });
  assert.deepEqual(seen[0].body, seen[1].body);

  reset([(req, res) => json(res, 400, envelope('VALIDATION_ERROR', 400, 'occurred_at is more than 1 h ahead'))]);
  await assert.rejects(client().ingest(event('s2', 'u', 1)), (e) => e.status === 400 && e.code === 'VALIDATION_ERROR' && !e.retryable);
  assert.equal(seen.length, 1);
});

test('backoff: exponential caps with jitter in [cap/2, cap], bounded by maxDelayMs', async () => {
  const { Backoff } = await import('../src/index.js');
  const lo = new Backoff({ baseDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
  const hi = new Backoff({ baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.999999 });
  assert.deepEqual([1, 2, 3, 4, 5, 50].map((n) => lo.delay(n)), [50, 100, 200, 400, 500, 500]);
  assert.deepEqual([1, 2, 3, 4, 5, 50].map((n) => Math.round(hi.delay(n))), [100, 200, 400, 800, 1000, 1000]);
  assert.throws(() => new Backoff({ baseDelayMs: 0 }), RangeError);
});
