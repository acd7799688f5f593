// PhoenixClient: the HTTP API — ingestion with safe retries, leaderboard definitions and
// queries, client tokens — over `globalThis.fetch` (Node >= 18, browsers).

import { PhoenixError, Backoff, sleep } from './errors.js';
import { signedHeaders, mintToken } from './signing.js';

/** Most events in one bulk request (seed 000 §6). */
export const MAX_BULK = 100;

const DEFAULT_RETRY = { attempts: 5, baseDelayMs: 100, maxDelayMs: 5_000 };

/** A per-event bulk result that may be sent again: `retryable: true` or a transient code. */
export function isRetryableResult(r) {
  return r?.status === 'failed' && (r.retryable === true || r.code === 'UNAVAILABLE' || r.code === 'INTERNAL_ERROR');
}

function newEventId() {
  if (globalThis.crypto?.randomUUID) return `evt_${globalThis.crypto.randomUUID()}`;
  // Node 18 without the global: Math.random is fine for uniqueness, not for secrets.
  return `evt_${Date.now().toString(36)}_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

/** A copy of `event` with an `event_id` (generated once, so every retry reuses it). */
function withId(event) {
  if (!event || typeof event !== 'object' || Array.isArray(event)) {
    throw new TypeError('an event must be an object');
  }
  return event.event_id == null ? { ...event, event_id: newEventId() } : event;
}

function enc(segment) {
  return encodeURIComponent(String(segment));
}

function queryString(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v !== undefined && v !== null) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export class PhoenixClient {
  /**
   * @param {object} o
   * @param {string} o.baseUrl   e.g. `http://127.0.0.1:8080`
   * @param {string} [o.tenant]  tenant id (backends: tenant HMAC)
   * @param {string} [o.secret]  tenant secret (never ship it to a browser)
   * @param {string} [o.token]   a client token (game clients: read-only queries)
   * @param {Function} [o.fetch] defaults to `globalThis.fetch`
   * @param {number} [o.timeoutMs] per request (default 10 s)
   * @param {object} [o.retry]   `{ attempts, baseDelayMs, maxDelayMs, onRetry }` for ingestion
   */
  constructor({ baseUrl, tenant, secret, token, fetch, timeoutMs = 10_000, retry } = {}) {
    if (!baseUrl) throw new TypeError('baseUrl is required');
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.tenant = tenant;
    this.secret = secret;
    this.token = token;
    this.fetch = fetch ?? globalThis.fetch?.bind(globalThis);
    if (!this.fetch) throw new TypeError('no fetch: pass options.fetch');
    this.timeoutMs = timeoutMs;
    this.retry = { ...DEFAULT_RETRY, ...(retry ?? {}) };
  }

  // ---- transport ----------------------------------------------------------------------

  /**
   * One request. `path` is the route (signed), `query` an object (not signed). Auth is tenant
   * HMAC when a secret is set, else the client token as a Bearer. Resolves `{ status, body }`
   * for 2xx; throws PhoenixError otherwise (status 0 for network errors and timeouts).
   */
  async request(method, path, { query, body, headers = {} } = {}) {
    const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    const h = { ...headers };
    if (this.secret) {
      if (!this.tenant) throw new TypeError('tenant HMAC needs both tenant and secret');
      Object.assign(h, await signedHeaders(this.tenant, this.secret, method, path, text));
    } else if (this.token) {
      h.Authorization = `Bearer ${this.token}`;
    }
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const url = `${this.baseUrl}${path}${queryString(query)}`;
    let resp;
    try {
      resp = await this.fetch(url, {
        method,
        headers: h,
        body: body === undefined ? undefined : text,
        signal: AbortSignal.timeout ? AbortSignal.timeout(this.timeoutMs) : undefined,
      });
    } catch (e) {
      const timeout = e?.name === 'TimeoutError' || e?.name === 'AbortError';
      throw new PhoenixError(0, timeout ? 'TIMEOUT' : 'NETWORK_ERROR', `${method} ${path}: ${e?.cause?.code ?? e?.message ?? e}`, { cause: e });
    }
    let raw;
    try {
      raw = await resp.text();
    } catch (e) {
      throw new PhoenixError(0, 'NETWORK_ERROR', `${method} ${path}: body lost: ${e?.message}`, { cause: e });
    }
    let parsed = raw;
    if (raw) {
      try {
        parsed = JSON.parse(raw);
      } catch {
        /* leave as text */
      }
    } else {
      parsed = null;
    }
    if (resp.status < 200 || resp.status > 299) throw PhoenixError.fromResponse(resp.status, parsed);
    return { status: resp.status, body: parsed };
  }

  /** `fn(attempt)` until it resolves or throws a non-retryable error or attempts run out. */
  async _withRetry(what, fn, retry) {
    const policy = { ...this.retry, ...(retry ?? {}) };
    const backoff = new Backoff(policy);
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (e) {
        if (!(e instanceof PhoenixError) || !e.retryable || attempt >= policy.attempts) throw e;
        const delay = backoff.delay(attempt);
        policy.onRetry?.({ what, attempt, delayMs: delay, error: e });
        await sleep(delay, policy.signal);
      }
    }
  }

  // ---- ingestion ----------------------------------------------------------------------

  /**
   * `POST /v1/events`. Gives the event an `event_id` when it has none, and retries
   * transient failures (5xx, network, timeout) with the same id: a retry of an event that was
   * in fact stored is answered `duplicate`, never counted twice. Never retries a 4xx.
   * @returns {Promise<{event_id: string, status: 'accepted'|'duplicate', attempts: number}>}
   */
  async ingest(event, { retry } = {}) {
    const e = withId(event);
    const text = JSON.stringify(e);
    let attempts = 0;
    const { body } = await this._withRetry(
      'ingest',
      (n) => {
        attempts = n;
        return this.request('POST', '/v1/events', { body: text });
      },
      retry,
    );
    return { ...body, attempts };
  }

  /**
   * `POST /v1/events/bulk`, in requests of at most 100 events. Returns one result per input
   * event, in input order. Retries, with backoff and the same event ids, only events that
   * did not get an answer: the whole request failed transiently (5xx, network, timeout), or
   * its result is `failed` with a retryable cause (see `isRetryableResult`). Accepted and
   * duplicate events are never sent again; validation failures are returned, not retried.
   * A request-level 4xx (bad auth, bad body) throws PhoenixError with `.results` so far.
   * When attempts run out, the events still unanswered are returned as `failed` with
   * `retryable: true` and the last error's code.
   */
  async ingestBulk(events, { retry } = {}) {
    if (!Array.isArray(events) || events.length === 0) {
      throw new TypeError('ingestBulk needs a non-empty array of events');
    }
    const policy = { ...this.retry, ...(retry ?? {}) };
    const backoff = new Backoff(policy);
    const list = events.map(withId);
    const results = new Array(list.length);
    let pending = list.map((_, i) => i);
    let attempt = 0;
    let requests = 0;
    while (pending.length > 0) {
      attempt++;
      const retryNext = [];
      let lastError;
      for (let start = 0; start < pending.length; start += MAX_BULK) {
        const slots = pending.slice(start, start + MAX_BULK);
        let body;
        try {
          requests++;
          ({ body } = await this.request('POST', '/v1/events/bulk', { body: { events: slots.map((i) => list[i]) } }));
        } catch (e) {
          if (e instanceof PhoenixError && e.retryable) {
            lastError = e;
            retryNext.push(...slots);
            continue;
          }
          if (e instanceof PhoenixError) e.results = results;
          throw e;
        }
        const answers = Array.isArray(body?.results) ? body.results : [];
        slots.forEach((slot, k) => {
          const r = answers[k];
          if (!r) {
            // A short answer: treat the missing ones as not stored (a retry is deduplicated).
            lastError = new PhoenixError(502, 'INTERNAL_ERROR', 'bulk answer without a result for this event');
            retryNext.push(slot);
          } else if (isRetryableResult(r)) {
            lastError = new PhoenixError(503, r.code ?? 'UNAVAILABLE', r.error ?? 'failed');
            results[slot] = r;
            retryNext.push(slot);
          } else {
            results[slot] = r;
          }
        });
      }
      pending = retryNext;
      if (pending.length === 0) break;
      if (attempt >= policy.attempts) {
        for (const slot of pending) {
          results[slot] = {
            event_id: list[slot].event_id,
            status: 'failed',
            error: lastError?.message ?? 'not stored',
            code: lastError?.code ?? 'UNAVAILABLE',
            retryable: true,
          };
        }
        break;
      }
      const delay = backoff.delay(attempt);
      policy.onRetry?.({ what: 'ingestBulk', attempt, delayMs: delay, error: lastError, events: pending.length });
      await sleep(delay, policy.signal);
    }
    const count = (s) => results.filter((r) => r.status === s).length;
    const accepted = count('accepted');
    const duplicates = count('duplicate');
    const failed = count('failed');
    return {
      status: failed === 0 ? 'accepted' : failed === results.length ? 'failed' : 'partial',
      total: results.length,
      accepted,
      duplicates,
      failed,
      results,
      attempts: attempt,
      requests,
    };
  }

  /** `GET /v1/events?from=&limit=`: the tenant's durable log. */
  async readLog({ from, limit } = {}) {
    return (await this.request('GET', '/v1/events', { query: { from, limit } })).body;
  }

  // ---- leaderboards -------------------------------------------------------------------

  /** `PUT /v1/leaderboards/{id}` → `{ created, definition }` (created: 201, replaced/unchanged: 200). */
  async putLeaderboard(id, definition) {
    const { status, body } = await this.request('PUT', `/v1/leaderboards/${enc(id)}`, { body: definition });
    return { created: status === 201, definition: body };
  }

  /** `GET /v1/leaderboards/{id}`, or `null` when it does not exist. */
  async getLeaderboard(id) {
    try {
      return (await this.request('GET', `/v1/leaderboards/${enc(id)}`)).body;
    } catch (e) {
      if (e instanceof PhoenixError && e.status === 404) return null;
      throw e;
    }
  }

  /** `GET /v1/leaderboards` → the array of definitions. */
  async listLeaderboards() {
    return (await this.request('GET', '/v1/leaderboards')).body.leaderboards;
  }

  /** `DELETE /v1/leaderboards/{id}` → `true`, or `false` when it did not exist. */
  async deleteLeaderboard(id) {
    try {
      await this.request('DELETE', `/v1/leaderboards/${enc(id)}`);
      return true;
    } catch (e) {
      if (e instanceof PhoenixError && e.status === 404) return false;
      throw e;
    }
  }

  /** `GET /v1/leaderboards/{id}/standings` → `{ leaderboard, timeframe, window, total, entries }`. */
  async standings(id, { timeframe, window, limit, offset } = {}) {
    return (await this.request('GET', `/v1/leaderboards/${enc(id)}/standings`, { query: { timeframe, window, limit, offset } })).body;
  }

  /** `GET /v1/leaderboards/{id}/users/{user}` → `{ rank, score, entries, … }`, or `null` (no score there). */
  async userStanding(id, userId, { timeframe, window, around } = {}) {
    try {
      return (await this.request('GET', `/v1/leaderboards/${enc(id)}/users/${enc(userId)}`, { query: { timeframe, window, around } })).body;
    } catch (e) {
      if (e instanceof PhoenixError && e.status === 404 && /user|score/i.test(e.message)) return null;
      throw e;
    }
  }

  // ---- client tokens ------------------------------------------------------------------

  /** `POST /v1/tokens` → `{ token, tenant, user_id, leaderboards, expires_at }`. */
  async createToken({ userId, leaderboards, ttlSeconds } = {}) {
    const body = { user_id: userId };
    if (leaderboards !== undefined) body.leaderboards = leaderboards;
    if (ttlSeconds !== undefined) body.ttl_seconds = ttlSeconds;
    return (await this.request('POST', '/v1/tokens', { body })).body;
  }

  /** Mint a client token locally with this client's tenant secret (no request). */
  mintToken({ userId, leaderboards = null, ttlSeconds = 3600 } = {}) {
    if (!this.secret) throw new TypeError('minting needs the tenant secret');
    return mintToken(this.secret, { tenant: this.tenant, userId, leaderboards, ttlSeconds });
  }

  // ---- health -------------------------------------------------------------------------

  /** `GET /health` → `true` when the process serves. */
  async health() {
    return this._probe('/health');
  }

  /** `GET /ready` → `true` when events can be persisted. */
  async ready() {
    return this._probe('/ready');
  }

  async _probe(path) {
    try {
      const r = await this.fetch(`${this.baseUrl}${path}`, { signal: AbortSignal.timeout?.(this.timeoutMs) });
      await r.text();
      return r.ok;
    } catch {
      return false;
    }
  }
}
