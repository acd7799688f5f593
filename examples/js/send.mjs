// Send signed events to Phoenix with the JavaScript client (clients/js): a board, one event,
// a bulk batch (failed events retried with the same ids), a stream over the WebSocket, and
// the standings.
//
// Run (server: `cargo run --release -- serve --config phoenix.example.toml`), Node >= 18:
//   node examples/js/send.mjs                         # board "score", 1 + 100 + 200 events
//   node examples/js/send.mjs --count 1000 --stream 5000 --board score
// Options: --url http://127.0.0.1:8080, --tenant demo, --secret demo-secret-0123456789,
//   --count N (bulk events), --stream N (events over the WebSocket, 0 to skip), --board ID.

import { parseArgs } from 'node:util';
import { PhoenixClient, PhoenixSocket } from '../../clients/js/src/index.js';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    tenant: { type: 'string', default: 'demo' },
    secret: { type: 'string', default: 'demo-secret-0123456789' },
    count: { type: 'string', default: '100' },
    stream: { type: 'string', default: '200' },
    board: { type: 'string', default: 'score' },
  },
});

const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar'];
const match = () => ({
  type: 'match.completed',
  actor: { user_id: users[Math.floor(Math.random() * users.length)], metadata: { region: 'na-east' } },
  occurred_at: new Date().toISOString(),
  attrs: { score: Math.floor(Math.random() * 2000), kills: Math.floor(Math.random() * 10) },
});

const phoenix = new PhoenixClient({
  baseUrl: o.url,
  tenant: o.tenant,
  secret: o.secret,
  retry: { attempts: 5, onRetry: (r) => console.log(`retry ${r.what} #${r.attempt} in ${Math.round(r.delayMs)} ms: ${r.error?.message}`) },
});

const { created } = await phoenix.putLeaderboard(o.board, {
  name: 'Score',
  rules: [{ event_type: 'match.*', points_expression: 'attrs.score' }],
  timeframes: ['daily', 'all_time'],
});
console.log(`board ${o.board}: ${created ? 'created' : 'unchanged/replaced'}`);

console.log('single:', await phoenix.ingest(match()));

const bulk = await phoenix.ingestBulk(Array.from({ length: Number(o.count) }, match));
console.log(`bulk: ${bulk.accepted} accepted, ${bulk.duplicates} duplicate, ${bulk.failed} failed in ${bulk.requests} request(s)`);

const n = Number(o.stream);
if (n > 0) {
  const socket = new PhoenixSocket({ baseUrl: o.url, tenant: o.tenant, secret: o.secret, maxInFlight: 500 });
  const started = Date.now();
  const batches = [];
  for (let i = 0; i < n; i += 50) batches.push(socket.ingest(Array.from({ length: Math.min(50, n - i) }, match)));
  const results = (await Promise.all(batches)).flat();
  const secs = (Date.now() - started) / 1000;
  console.log(`stream: ${results.filter((r) => r.status === 'accepted').length}/${n} accepted in ${secs.toFixed(2)} s`);
  socket.close();
}

const s = await phoenix.standings(o.board, { timeframe: 'daily', limit: 5 });
console.log(`top 5 of ${s.window} (${s.total} players):`);
for (const e of s.entries) console.log(`  ${String(e.rank).padStart(2)}. ${e.user_id.padEnd(10)} ${e.score}`);
