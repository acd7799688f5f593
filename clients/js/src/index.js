// @phoenix/client: a dependency-free ESM client for Phoenix (Node >= 18 and browsers).
// Node without a global WebSocket: import { NodeWebSocket } from '@phoenix/client/node-ws'.

export { PhoenixClient, isRetryableResult, MAX_BULK } from './client.js';
export { PhoenixSocket, LiveBoard, LiveView, MAX_FRAME_EVENTS } from './live.js';
export { PhoenixError, Backoff, RETRYABLE_CODES } from './errors.js';
export { buildSignature, signedHeaders, canonical, hmacHex, mintToken, nowSeconds } from './signing.js';
export { Emitter } from './emitter.js';
