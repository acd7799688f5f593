// The WebSocket side: PhoenixSocket (one connection that reconnects with backoff, resubscribes
// and resends unacknowledged ingest frames), LiveBoard (one subscription kept as a local view)
// and LiveView (the pure frame-applying logic, unit-testable with synthetic frames).

import { Emitter } from './emitter.js';
import { Backoff, PhoenixError, RETRYABLE_CODES, sleep } from './errors.js';
import { signedHeaders } from './signing.js';

/** Most events in one `ingest` frame. */
export const MAX_FRAME_EVENTS = 100;

// ---- LiveView: pure ---------------------------------------------------------------------

/**
 * The local copy of one view: `snapshot` replaces it, `update` applies changes, `seq` must
 * grow by exactly 1. Knows nothing of sockets.
 */
export class LiveView {
  constructor() {
    /** @type {Map<string, {rank: number, score: number}>} */
    this.entries = new Map();
    this.seq = null;
    this.window = null;
    this.timeframe = null;
  }

  /** Replace the view with a snapshot frame's entries. */
  snapshot(frame) {
    this.entries = new Map();
    for (const e of frame.entries ?? []) this.entries.set(e.user_id, { rank: e.rank, score: e.score });
    this.seq = frame.seq;
    this.window = frame.window ?? null;
    this.timeframe = frame.timeframe ?? null;
  }

  /**
   * Apply an update frame. Returns `{ ok: true, changes }`, or `{ ok: false, expected, got }`
   * when its seq does not follow the last one (frames were skipped: resubscribe).
   */
  update(frame) {
    if (this.seq === null || frame.seq !== this.seq + 1) {
      return { ok: false, expected: this.seq === null ? null : this.seq + 1, got: frame.seq };
    }
    const changes = frame.changes ?? [];
    for (const c of changes) {
      if (c.rank === null || c.rank === undefined) this.entries.delete(c.user_id);
      else this.entries.set(c.user_id, { rank: c.rank, score: c.score });
    }
    this.seq = frame.seq;
    return { ok: true, changes };
  }

  /** The view in rank order: `[{ rank, user_id, score }]` (fresh objects). */
  standings() {
    return [...this.entries]
      .map(([user_id, e]) => ({ rank: e.rank, user_id, score: e.score }))
      .sort((a, b) => a.rank - b.rank || (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0));
  }
}

// ---- PhoenixSocket ----------------------------------------------------------------------

function isNode() {
  return typeof globalThis.process?.versions?.node === 'string';
}

/**
 * One WebSocket connection to `GET /v1/ws`.
 *
 * Auth: `tenant` + `secret` (backends; HMAC headers on the upgrade — Node only, browsers
 * cannot set headers) or `token` / `getToken()` (game clients; `?token=`, works everywhere;
 * `getToken` is called before every connect so an expiring token can be renewed).
 *
 * Events: `open`, `close` `{code, reason}`, `reconnecting` `{attempt, delayMs}`, `error`
 * (an error frame without a subscription or ingest id, or a transport error).
 */
export class PhoenixSocket extends Emitter {
  /**
   * @param {object} o
   * @param {string} o.baseUrl `http(s)://host:port` (or `ws(s)://`)
   * @param {string} [o.tenant] @param {string} [o.secret]
   * @param {string} [o.token]  @param {() => Promise<string>|string} [o.getToken]
   * @param {Function} [o.WebSocket] a WebSocket constructor; defaults to `globalThis.WebSocket`,
   *   or this package's NodeWebSocket in Node (always, for HMAC auth, which needs headers)
   * @param {object} [o.reconnect] `{ baseDelayMs = 250, maxDelayMs = 10000 }`, or `false`
   * @param {number} [o.maxInFlight] most unacknowledged streamed events (default 500;
   *   keep it at or below the server's `ws_max_inflight_events`, default 1000)
   * @param {number} [o.ingestAttempts] tries of an ingest frame answered UNAVAILABLE (default 5)
   * @param {number} [o.pingIntervalMs] keep-alive ping (default 15000); the socket is dropped
   *   and reconnected when nothing arrives for two intervals
   */
  constructor({
    baseUrl,
    tenant,
    secret,
    token,
    getToken,
    WebSocket,
    reconnect = {},
    maxInFlight = 500,
    ingestAttempts = 5,
    pingIntervalMs = 15_000,
  } = {}) {
    super();
    if (!baseUrl) throw new TypeError('baseUrl is required');
    if (!(secret && tenant) && !token && !getToken) {
      throw new TypeError('PhoenixSocket needs tenant + secret, token or getToken');
    }
    if (!(maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
    this.url = `${String(baseUrl).replace(/\/+$/, '').replace(/^http/, 'ws')}/v1/ws`;
    this.tenant = tenant;
    this.secret = secret;
    this.getToken = getToken ?? (token ? () => token : null);
    this.WebSocketImpl = WebSocket;
    this.reconnectPolicy = reconnect === false ? null : { baseDelayMs: 250, maxDelayMs: 10_000, ...reconnect };
    this.maxInFlight = maxInFlight;
    this.ingestAttempts = ingestAttempts;
    this.pingIntervalMs = pingIntervalMs;

    this.ws = null;
    this.state = 'idle'; // idle | connecting | open | waiting | closed
    this.reconnects = 0;
    this.boards = new Map();
    this.nextId = 1;
    this.inflight = 0;
    /** Ingest frames not yet acknowledged, by frame id, in send order. */
    this.pendingIngest = new Map();
    this.roomWaiters = [];
    this._attempt = 0;
    this._timer = null;
    this._pingTimer = null;
    this._lastHeard = 0;
  }

  /** Connect (idempotent); resolves once the socket is open the first time. */
  connect() {
    if (this.state === 'closed') return Promise.reject(new Error('socket closed'));
    if (this.state === 'open') return Promise.resolve();
    const opened = new Promise((resolve, reject) => {
      const offOpen = this.once('open', () => {
        offClose();
        resolve();
      });
      const offClose = this.on('close', (c) => {
        if (!c.final) return;
        offOpen();
        offClose();
        reject(new Error(`socket closed before it opened (${c.reason})`));
      });
    });
    if (this.state === 'idle') this._open();
    return opened;
  }

  /** Close for good: no reconnect; pending ingests are rejected. */
  close() {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this._timer);
    clearInterval(this._pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= 1) {
      try {
        ws.close(1000, 'client closed');
      } catch {
        /* already closing */
      }
    }
    const err = new Error('socket closed');
    for (const p of this.pendingIngest.values()) p.reject(err);
    this.pendingIngest.clear();
    this.inflight = 0;
    for (const w of this.roomWaiters.splice(0)) w.reject(err);
    this.emit('close', { code: 1000, reason: 'client closed', final: true });
  }

  async _constructor() {
    if (this.WebSocketImpl) return this.WebSocketImpl;
    if (!this.secret && globalThis.WebSocket) return globalThis.WebSocket;
    if (isNode()) return (await import('./node-ws.js')).NodeWebSocket;
    throw new TypeError(
      this.secret
        ? 'tenant HMAC on a WebSocket needs custom headers, which browsers cannot send: use a client token'
        : 'no WebSocket implementation: pass options.WebSocket',
    );
  }

  async _open() {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    let ws;
    try {
      const Impl = await this._constructor();
      if (this.secret) {
        const headers = await signedHeaders(this.tenant, this.secret, 'GET', '/v1/ws', '');
        ws = new Impl(this.url, undefined, { headers });
      } else {
        const token = await this.getToken();
        ws = new Impl(`${this.url}?token=${encodeURIComponent(token)}`);
      }
    } catch (e) {
      this.emit('error', e);
      this._scheduleReconnect();
      return;
    }
    if (this.state === 'closed') {
      ws.close?.();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.state = 'open';
      this._lastHeard = Date.now();
      this._startPing(ws);
      this.emit('open', { reconnects: this.reconnects });
      for (const board of this.boards.values()) board._resubscribe('connect');
      for (const p of this.pendingIngest.values()) this._sendIngest(p);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this._lastHeard = Date.now();
      this._attempt = 0;
      let frame;
      try {
        frame = JSON.parse(typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data));
      } catch {
        this.emit('error', new Error('a frame that is not JSON'));
        return;
      }
      this._onFrame(frame);
    };
    ws.onerror = (ev) => {
      if (this.ws !== ws) return;
      const detail = ev?.status ? `HTTP ${ev.status}: ${ev.body ?? ''}` : (ev?.message ?? 'WebSocket error');
      this.emit('error', new Error(detail));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this._dropped(ev?.code ?? 1006, ev?.reason ?? '');
    };
  }

  _startPing(ws) {
    clearInterval(this._pingTimer);
    if (!(this.pingIntervalMs > 0)) return;
    this._pingTimer = setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this._lastHeard > 2 * this.pingIntervalMs) {
        // A dead peer (no RST, no close): drop it and reconnect.
        ws.terminate ? ws.terminate() : ws.close();
        this._dropped(1006, 'no answer to ping');
        return;
      }
      this._send({ type: 'ping', id: 'keepalive' });
    }, this.pingIntervalMs);
  }

  _dropped(code, reason) {
    clearInterval(this._pingTimer);
    this.ws = null;
    if (this.state === 'closed') return;
    this.emit('close', { code, reason, final: false });
    // Not acknowledged yet: the frames are resent on the next connection (same event ids).
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    if (this.state === 'closed') return;
    if (!this.reconnectPolicy) {
      this.close();
      return;
    }
    this.state = 'waiting';
    this._attempt++;
    const delayMs = new Backoff(this.reconnectPolicy).delay(this._attempt);
    this.emit('reconnecting', { attempt: this._attempt, delayMs });
    this._timer = setTimeout(() => {
      this.reconnects++;
      this._open();
    }, delayMs);
  }

  _send(frame) {
    const ws = this.ws;
    if (this.state !== 'open' || !ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  _onFrame(frame) {
    switch (frame.type) {
      case 'snapshot':
      case 'update': {
        const board = this.boards.get(frame.id);
        if (board) board._onFrame(frame);
        return;
      }
      case 'ack':
        return this._onAck(frame);
      case 'pong':
        return;
      case 'error': {
        const err = PhoenixError.fromResponse(frame.error?.status ?? 0, frame);
        if (frame.id && this.pendingIngest.has(frame.id)) return this._onIngestError(frame.id, err);
        const board = frame.id ? this.boards.get(frame.id) : undefined;
        if (board) return board._onError(err);
        this.emit('error', err);
        return;
      }
      default:
        this.emit('frame', frame);
    }
  }

  // ---- subscriptions ----

  /** A LiveBoard on this socket (subscribes now if open, else on connect). */
  liveBoard(spec) {
    const board = new LiveBoard({ ...spec, socket: this });
    return board;
  }

  _register(board) {
    if (this.boards.has(board.id)) throw new Error(`subscription id ${board.id} is in use`);
    this.boards.set(board.id, board);
    if (this.state === 'idle') this._open();
    else if (this.state === 'open') board._resubscribe('start');
  }

  _unregister(board) {
    if (this.boards.get(board.id) === board) {
      this.boards.delete(board.id);
      this._send({ type: 'unsubscribe', id: board.id });
    }
  }

  // ---- streaming ingest ----

  /**
   * Stream events over the socket; resolves with one result per event (as bulk ingest:
   * `accepted`, `duplicate`, or `failed` with the validation error) once they are fsync'd.
   * At most `maxInFlight` events are unacknowledged: the promise waits for room first.
   * Frames not acknowledged when the connection drops are resent after reconnecting, with
   * the same event ids, so nothing is lost or counted twice. An error frame with a
   * transient code (UNAVAILABLE) is retried with backoff; any other rejects.
   */
  async ingest(events) {
    const list = Array.isArray(events) ? events : [events];
    if (list.length === 0) throw new TypeError('ingest needs at least one event');
    const chunk = Math.min(MAX_FRAME_EVENTS, this.maxInFlight);
    const parts = [];
    for (let i = 0; i < list.length; i += chunk) parts.push(this._ingestFrame(list.slice(i, i + chunk)));
    return (await Promise.all(parts)).flat();
  }

  /** Events currently sent or queued and not yet acknowledged. */
  get inFlight() {
    return this.inflight;
  }

  async _ingestFrame(events) {
    if (this.state === 'closed') throw new Error('socket closed');
    await this._acquire(events.length);
    const id = `ingest-${this.nextId++}`;
    const withIds = events.map((e) =>
      e && typeof e === 'object' && e.event_id == null
        ? { ...e, event_id: `evt_${globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`}` }
        : e,
    );
    return new Promise((resolve, reject) => {
      const p = {
        id,
        events: withIds,
        attempts: 0,
        resolve: (r) => {
          this._release(p);
          resolve(r);
        },
        reject: (e) => {
          this._release(p);
          reject(e);
        },
      };
      this.pendingIngest.set(id, p);
      if (this.state === 'idle') this._open();
      else this._sendIngest(p);
    });
  }

  /** Reserve room for `n` events in the window, waiting (first come, first served) if full. */
  _acquire(n) {
    if (this.roomWaiters.length === 0 && this.inflight + n <= this.maxInFlight) {
      this.inflight += n;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.roomWaiters.push({ n, resolve, reject }));
  }

  _release(p) {
    if (!this.pendingIngest.delete(p.id)) return;
    this.inflight -= p.events.length;
    while (this.roomWaiters.length && this.inflight + this.roomWaiters[0].n <= this.maxInFlight) {
      const w = this.roomWaiters.shift();
      this.inflight += w.n;
      w.resolve();
    }
  }

  _sendIngest(p) {
    // Counted only when it left: a frame queued while disconnected goes on the next open.
    if (this._send({ type: 'ingest', id: p.id, events: p.events })) p.attempts++;
  }

  _onAck(frame) {
    const p = this.pendingIngest.get(frame.id);
    if (p) p.resolve(frame.results ?? []);
  }

  async _onIngestError(id, err) {
    const p = this.pendingIngest.get(id);
    if (!p) return;
    if (RETRYABLE_CODES.has(err.code) && p.attempts < this.ingestAttempts) {
      await sleep(new Backoff(this.reconnectPolicy ?? {}).delay(p.attempts));
      if (this.pendingIngest.get(id) === p) this._sendIngest(p);
      return;
    }
    p.reject(err);
  }
}

// ---- LiveBoard --------------------------------------------------------------------------

let boardCounter = 0;

/**
 * A live view of one leaderboard: the top N (`top`) or a user's neighbourhood (`around`,
 * `radius`), for a `timeframe` (default `all_time`) and `window` (default `current`).
 *
 * Keeps the view from the `snapshot` and `update` frames; on a `seq` gap it resubscribes
 * (a fresh snapshot); after a reconnect it resubscribes too.
 *
 * Events: `snapshot` `{ standings, window, reason }` (reason: `start`, `connect`, `gap`,
 * `server`), `change` `{ changes, standings, seq }`, `resync` `{ reason, expected, got }`,
 * `error` (a PhoenixError from an error frame after the first snapshot).
 *
 * Pass `socket` to share one connection, or connection options (baseUrl, token, …) to have
 * the board open and own its socket.
 */
export class LiveBoard extends Emitter {
  constructor({ socket, id, leaderboard, timeframe, window, top, around, radius, ...connection } = {}) {
    super();
    if (!leaderboard) throw new TypeError('leaderboard is required');
    if ((top === undefined) === (around === undefined)) throw new TypeError('give exactly one of top or around');
    this.ownsSocket = !socket;
    this.socket = socket ?? new PhoenixSocket(connection);
    this.id = id ?? `lb-${++boardCounter}`;
    this.leaderboard = leaderboard;
    this.timeframe = timeframe ?? 'all_time';
    this.window = window ?? 'current';
    this.viewSpec = top !== undefined ? { top } : radius === undefined ? { around } : { around, radius };
    this.view = new LiveView();
    this.awaiting = null; // the reason of the subscribe whose snapshot is awaited
    this.snapshots = 0;
    this.resyncs = 0;
    this.closed = false;
    this._readyPromise = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    // Unobserved rejections must not crash the process; `ready()` re-exposes it.
    this._readyPromise.catch(() => {});
    this.socket._register(this);
  }

  /** Resolves with the standings at the first snapshot; rejects on a subscribe error. */
  ready() {
    return this._readyPromise;
  }

  /** The current view in rank order. */
  standings() {
    return this.view.standings();
  }

  /** The window key of the view (follows rollover of `current`). */
  get windowKey() {
    return this.view.window;
  }

  /** Stop watching (and close the socket if this board opened it). */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.socket._unregister(this);
    if (this.ownsSocket) this.socket.close();
  }

  _subscribeFrame() {
    return {
      type: 'subscribe',
      id: this.id,
      leaderboard: this.leaderboard,
      timeframe: this.timeframe,
      window: this.window,
      view: this.viewSpec,
    };
  }

  _resubscribe(reason) {
    if (this.closed) return;
    this.awaiting = reason;
    this.socket._send(this._subscribeFrame());
  }

  _onFrame(frame) {
    if (this.closed) return;
    if (frame.type === 'snapshot') {
      this.view.snapshot(frame);
      this.snapshots++;
      const reason = this.awaiting ?? 'server';
      this.awaiting = null;
      const standings = this.view.standings();
      this._resolveReady(standings);
      this.emit('snapshot', { standings, window: frame.window, seq: frame.seq, reason });
      return;
    }
    // Updates of the subscription being replaced are stale until its snapshot arrives.
    if (this.awaiting) return;
    const r = this.view.update(frame);
    if (!r.ok) {
      this.resyncs++;
      this.emit('resync', { reason: 'gap', expected: r.expected, got: r.got });
      this._resubscribe('gap');
      return;
    }
    this.emit('change', { changes: r.changes, standings: this.view.standings(), seq: frame.seq });
  }

  _onError(err) {
    if (this.closed) return;
    if (err.retryable) {
      // The server could not serve the subscription just now: ask again after a while.
      const delay = new Backoff(this.socket.reconnectPolicy ?? {}).delay(Math.min(++this.resyncs, 6));
      setTimeout(() => this._resubscribe(this.awaiting ?? 'retry'), delay);
    } else if (this.snapshots === 0) {
      this._rejectReady(err);
      // A subscribe the server refused (unknown board, bad view): stop, do not retry forever.
      this.close();
    }
    this.emit('error', err);
  }
}
