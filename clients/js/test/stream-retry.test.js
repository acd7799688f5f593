// Streaming ingest against a scripted fake /v1/ws on 127.0.0.1: an UNAVAILABLE error frame
// is retried with the same frame, a connection dropped before the ack is resent after the
// reconnect with the same event ids, and a VALIDATION error frame rejects without a retry.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';

import { PhoenixSocket } from '../src/index.js';
import { FrameParser } from '../src/node-ws.js';
import { event } from '../support/harness.js';

/** An unmasked server text frame (payloads here stay under 64 KiB). */
function text(obj) {
  const data = Buffer.from(JSON.stringify(obj));
  const head = data.length < 126 ? Buffer.from([0x81, data.length]) : Buffer.from([0x81, 126, data.length >> 8, data.length & 255]);
  return Buffer.concat([head, data]);
}

let server;
let base;
/** Called for each ingest frame the fake receives: `(frame, socket, connection number)`. */
let onIngest = () => {};
const received = [];
let connections = 0;

before(async () => {
  server = http.createServer((req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket) => {
    const n = ++connections;
    const accept = crypto.createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const parser = new FrameParser(1 << 20);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      for (const f of parser.push(chunk)) {
        if (f.opcode !== 1) continue;
        const frame = JSON.parse(f.payload.toString());
        if (frame.type === 'ingest') {
          received.push({ connection: n, id: frame.id, ids: frame.events.map((e) => e.event_id) });
          onIngest(frame, socket, n);
        }
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => {
  server.closeAllConnections?.();
  return new Promise((r) => server.close(r));
});

const ack = (frame) => text({ type: 'ack', id: frame.id, results: frame.events.map((e) => ({ event_id: e.event_id, status: 'accepted' })) });
const error = (frame, code, status) => text({ type: 'error', id: frame.id, error: { code, message: `${code} for the test`, status } });

function socket() {
  return new PhoenixSocket({
    baseUrl: base,
    tenant: 'demo',
    secret: 'demo-secret-0123456789',
    reconnect: { baseDelayMs: 10, maxDelayMs: 40 },
  });
}

test('UNAVAILABLE is retried with the same frame; a drop before the ack is resent after reconnecting', async () => {
  received.length = 0;
  connections = 0;
  let calls = 0;
  onIngest = (frame, sock) => {
    calls++;
    if (calls === 1) sock.write(error(frame, 'UNAVAILABLE', 503));
    else if (calls === 2) sock.destroy(); // received, never acknowledged
    else sock.write(ack(frame));
  };
  const s = socket();
  try {
    const results = await s.ingest([event('sr-1', 'u', 1), event('sr-2', 'u', 2)]);
    assert.deepEqual(results.map((r) => [r.event_id, r.status]), [
      ['sr-1', 'accepted'],
      ['sr-2', 'accepted'],
    ]);
    assert.equal(received.length, 3);
    assert.ok(received.every((r) => r.id === received[0].id && JSON.stringify(r.ids) === '["sr-1","sr-2"]'), JSON.stringify(received));
    assert.deepEqual(received.map((r) => r.connection), [1, 1, 2], 'the third send is on the new connection');
    assert.equal(s.inFlight, 0);
  } finally {
    s.close();
  }
});

test('a VALIDATION_ERROR frame rejects the ingest and frees its room; nothing is resent', async () => {
  received.length = 0;
  onIngest = (frame, sock) => sock.write(error(frame, 'VALIDATION_ERROR', 400));
  const s = socket();
  try {
    await assert.rejects(s.ingest([event('sv-1', 'u', 1)]), (e) => e.code === 'VALIDATION_ERROR' && e.status === 400);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(received.length, 1);
    assert.equal(s.inFlight, 0);
  } finally {
    s.close();
  }
});
