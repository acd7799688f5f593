// Tenant HMAC signing (seed 000 §3) and client-token minting, on WebCrypto so the same code
// runs in Node >= 18 and in browsers.
//
// Canonical string: METHOD\nPATH\nTIMESTAMP\nBODY — PATH without host or query string,
// TIMESTAMP Unix seconds, BODY the exact text sent ("" for GET). Signature header:
// `hmac-sha256=<lowercase hex>`.

const encoder = new TextEncoder();

let subtlePromise;

/** WebCrypto's SubtleCrypto: `globalThis.crypto.subtle` (browsers, Node >= 19), else node:crypto's. */
export function subtle() {
  if (!subtlePromise) {
    subtlePromise = globalThis.crypto?.subtle
      ? Promise.resolve(globalThis.crypto.subtle)
      : import('node:crypto').then((m) => m.webcrypto.subtle);
  }
  return subtlePromise;
}

const keyCache = new Map();

async function hmacKey(secret) {
  let key = keyCache.get(secret);
  if (!key) {
    const s = await subtle();
    key = s.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    // A handful of secrets per process at most; keep the map from growing without bound.
    if (keyCache.size >= 16) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

function hex(buf) {
  const bytes = new Uint8Array(buf);
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** Lowercase hex HMAC-SHA256 of `message` (string or bytes) keyed with `secret`. */
export async function hmacHex(secret, message) {
  const data = typeof message === 'string' ? encoder.encode(message) : message;
  const sig = await (await subtle()).sign('HMAC', await hmacKey(secret), data);
  return hex(sig);
}

/** The canonical string a request is signed over. */
export function canonical(method, path, timestamp, body = '') {
  return [method.toUpperCase(), path, String(timestamp), body].join('\n');
}

/** Unix time in seconds. */
export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/**
 * Sign a request as seed 000 §3 shows: `{ timestamp, signature }` where `signature` is
 * `hmac-sha256=<hex>`. `path` must not include the query string; `body` is the exact text sent.
 */
export async function buildSignature(secret, method, path, body = '', timestamp = nowSeconds()) {
  const ts = String(timestamp);
  const digest = await hmacHex(secret, canonical(method, path, ts, body));
  return { timestamp: ts, signature: `hmac-sha256=${digest}` };
}

/** The three tenant HMAC headers for one request. */
export async function signedHeaders(tenant, secret, method, path, body = '', timestamp) {
  const { timestamp: ts, signature } = await buildSignature(secret, method, path, body, timestamp);
  return { 'X-Tenant-Id': tenant, 'X-Timestamp': ts, 'X-Signature': signature };
}

function base64url(text) {
  const bytes = encoder.encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * Mint a client token locally, as `POST /v1/tokens` does (src/tokens.rs): for backends that
 * hold the tenant secret. `pxt1.<base64url(payload)>.<hex hmac of "pxt1.<payload>">`.
 */
export async function mintToken(secret, { tenant, userId, ttlSeconds = 3600, leaderboards = null, now = nowSeconds() }) {
  if (!tenant || !userId) throw new TypeError('mintToken needs tenant and userId');
  // Key order t, u, exp, lb: the same bytes the server's serde_json would produce.
  const payload = base64url(JSON.stringify({ t: tenant, u: userId, exp: now + ttlSeconds, lb: leaderboards }));
  const signed = `pxt1.${payload}`;
  return `${signed}.${await hmacHex(secret, signed)}`;
}
