// PhoenixError: an answer in the seed's error envelope, or a transport failure; and the
// backoff policy shared by HTTP retries, streaming-ingest retries and WebSocket reconnects.

/** Error codes that mean "try again later" (the event was not stored). */
export const RETRYABLE_CODES = new Set(['UNAVAILABLE', 'INTERNAL_ERROR', 'NETWORK_ERROR', 'TIMEOUT']);

export class PhoenixError extends Error {
  /**
   * @param {number} status HTTP status (0 for a network error or timeout)
   * @param {string} code   the envelope's `error.code` (`NETWORK_ERROR`/`TIMEOUT` for transport failures)
   * @param {string} message
   * @param {object} [extra] `{ body, cause }`
   */
  constructor(status, code, message, { body, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'PhoenixError';
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** 5xx, 408, 429, a network error or a timeout: the request may be sent again unchanged. */
  get retryable() {
    return this.status >= 500 || this.status === 408 || this.status === 429 || RETRYABLE_CODES.has(this.code);
  }

  /** Build from a parsed response body (`{"error":{code,message,status}}`) and its status. */
  static fromResponse(status, body) {
    const e = body && typeof body === 'object' ? body.error : undefined;
    const code = e?.code ?? (status >= 500 ? 'INTERNAL_ERROR' : `HTTP_${status}`);
    const message = e?.message ?? (typeof body === 'string' && body ? body : `HTTP ${status}`);
    return new PhoenixError(status, code, message, { body });
  }
}

/**
 * Exponential backoff with jitter. `delay(n)` for the n-th retry (1-based) is uniformly
 * random in [cap/2, cap] where cap = min(maxDelayMs, baseDelayMs * 2^(n-1)): spread out so
 * that clients restarting together do not retry together, never zero.
 */
export class Backoff {
  constructor({ baseDelayMs = 100, maxDelayMs = 5_000, random = Math.random } = {}) {
    if (!(baseDelayMs > 0) || !(maxDelayMs >= baseDelayMs)) {
      throw new RangeError('backoff needs 0 < baseDelayMs <= maxDelayMs');
    }
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.random = random;
  }

  delay(n) {
    const cap = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(Math.max(n - 1, 0), 30));
    return cap / 2 + this.random() * (cap / 2);
  }
}

/** Resolve after `ms`; rejects early with `signal.reason` when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
