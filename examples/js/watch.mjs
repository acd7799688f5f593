// A live top 10 in the terminal with the JavaScript client's LiveBoard: it follows update
// frames, resubscribes on a seq gap and reconnects (with backoff) when the server restarts.
//
// Run (server from the README, a board from `node examples/js/send.mjs`), Node >= 18:
//   node examples/js/watch.mjs --board score --timeframe daily
//   node examples/js/watch.mjs --board score --around alice --radius 3
// Options: --url http://127.0.0.1:8080, --tenant demo, --secret demo-secret-0123456789
//   (tenant HMAC, Node only), or --as-player alice to fetch a client token and connect as a
//   game client (what a browser does); --top 10, --window current.

import { parseArgs } from 'node:util';
import { PhoenixClient, LiveBoard } from '../../clients/js/src/index.js';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    tenant: { type: 'string', default: 'demo' },
    secret: { type: 'string', default: 'demo-secret-0123456789' },
    'as-player': { type: 'string' },
    board: { type: 'string', default: 'score' },
    timeframe: { type: 'string', default: 'daily' },
    window: { type: 'string', default: 'current' },
    top: { type: 'string', default: '10' },
    around: { type: 'string' },
    radius: { type: 'string', default: '5' },
  },
});

let auth = { tenant: o.tenant, secret: o.secret };
if (o['as-player']) {
  // A backend would mint this and hand it to the game client; here we ask for one.
  const backend = new PhoenixClient({ baseUrl: o.url, tenant: o.tenant, secret: o.secret });
  const player = o['as-player'];
  auth = { getToken: async () => (await backend.createToken({ userId: player, leaderboards: [o.board] })).token };
}

const view = o.around ? { around: o.around, radius: Number(o.radius) } : { top: Number(o.top) };
const board = new LiveBoard({ baseUrl: o.url, ...auth, leaderboard: o.board, timeframe: o.timeframe, window: o.window, ...view });

let status = 'connecting';
let moved = new Map();
function draw() {
  const lines = [`${o.board} · ${o.timeframe} · ${board.windowKey ?? '…'} · ${status}`, ''];
  for (const e of board.standings()) {
    const m = moved.get(e.user_id);
    const mark = m === undefined ? ' ' : m === null ? '+' : m > e.rank ? '↑' : m < e.rank ? '↓' : ' ';
    lines.push(`${mark} ${String(e.rank).padStart(3)}. ${e.user_id.padEnd(16)} ${e.score}`);
  }
  process.stdout.write(`\x1b[2J\x1b[H${lines.join('\n')}\n`);
}

board.on('snapshot', (s) => {
  status = `live (snapshot: ${s.reason})`;
  moved = new Map();
  draw();
});
board.on('change', ({ changes }) => {
  moved = new Map(changes.filter((c) => c.rank !== null).map((c) => [c.user_id, c.previous_rank]));
  draw();
});
board.on('resync', (r) => {
  status = `resyncing (seq ${r.got}, expected ${r.expected})`;
  draw();
});
board.socket.on('reconnecting', (r) => {
  status = `reconnecting in ${Math.round(r.delayMs)} ms (attempt ${r.attempt})`;
  draw();
});
board.on('error', (e) => console.error(`error: ${e.code} ${e.message}`));

try {
  await board.ready();
} catch (e) {
  console.error(`cannot watch ${o.board}: ${e.message}`);
  process.exit(1);
}
process.on('SIGINT', () => {
  board.close();
  process.exit(0);
});
