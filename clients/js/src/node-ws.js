// A small, dependency-free RFC 6455 WebSocket client for Node (Node 20 has no global
// WebSocket). It follows the browser's WebSocket interface closely enough for this package
// (readyState, send, close, onopen/onmessage/onclose/onerror, addEventListener) and adds
// what a backend needs: custom headers on the upgrade request (tenant HMAC) and ping().
//
// Implements: the opening handshake (Sec-WebSocket-Key/Accept checked), client-side masking,
// text and binary frames, fragmented messages, ping/pong, the close handshake with code and
// reason, UTF-8 validation of text (close 1007), and a bound on message size (close 1009).

import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

/** Encode one frame from the client: always masked (RFC 6455 §5.3). */
export function encodeFrame(opcode, payload, fin = true) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '');
  const len = data.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = 0x80 | len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  const mask = crypto.randomBytes(4);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([header, mask, masked]);
}

/**
 * Incremental frame parser. `push(chunk)` returns the complete frames it now holds:
 * `{ fin, opcode, payload }`. Throws a `{ code, reason }` object on a protocol error.
 */
export class FrameParser {
  constructor(maxPayload) {
    this.maxPayload = maxPayload;
    this.buf = Buffer.alloc(0);
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const fin = (b[0] & 0x80) !== 0;
      if (b[0] & 0x70) throw { code: 1002, reason: 'reserved bits set' };
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(this.maxPayload)) throw { code: 1009, reason: 'message too big' };
        len = Number(big);
        off = 10;
      }
      if (opcode >= 0x8 && (len > 125 || !fin)) {
        throw { code: 1002, reason: 'bad control frame' };
      }
      if (len > this.maxPayload) throw { code: 1009, reason: 'message too big' };
      const maskAt = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      let payload = b.subarray(off, off + len);
      if (masked) {
        // Servers must not mask; accept it anyway rather than fail on a lenient peer.
        const mask = b.subarray(maskAt, maskAt + 4);
        payload = Buffer.from(payload);
        for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
      }
      frames.push({ fin, opcode, payload });
      this.buf = b.subarray(off + len);
    }
    return frames;
  }
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A minimal WHATWG-style event target, enough for `addEventListener` users. */
class Events {
  constructor() {
    this._listeners = new Map();
  }
  addEventListener(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
  }
  removeEventListener(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }
  _emit(type, event) {
    event.type = type;
    event.target = this;
    const handler = this[`on${type}`];
    if (typeof handler === 'function') handler.call(this, event);
    for (const fn of this._listeners.get(type) ?? []) fn.call(this, event);
  }
}

/**
 * `new NodeWebSocket(url, protocols?, { headers, maxPayload, handshakeTimeoutMs })`.
 * `url` is `ws://`, `wss://`, `http://` or `https://`.
 */
export class NodeWebSocket extends Events {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url, protocols, options = {}) {
    super();
    if (protocols && !Array.isArray(protocols) && typeof protocols === 'object') {
      options = protocols;
      protocols = undefined;
    }
    this.url = String(url);
    this.readyState = NodeWebSocket.CONNECTING;
    this.protocol = '';
    this.binaryType = 'nodebuffer';
    this._maxPayload = options.maxPayload ?? 16 * 1024 * 1024;
    this._parser = new FrameParser(this._maxPayload);
    this._fragments = null;
    this._fragmentOp = 0;
    this._fragmentBytes = 0;
    this._closeSent = false;
    this._closeEmitted = false;
    this._socket = null;
    this._closeTimer = null;

    const u = new URL(this.url);
    const secure = u.protocol === 'wss:' || u.protocol === 'https:';
    if (!['ws:', 'wss:', 'http:', 'https:'].includes(u.protocol)) {
      throw new SyntaxError(`unsupported WebSocket URL scheme ${u.protocol}`);
    }
    const key = crypto.randomBytes(16).toString('base64');
    this._expectedAccept = crypto.createHash('sha1').update(key + GUID).digest('base64');
    const headers = {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': key,
      ...(options.headers ?? {}),
    };
    if (protocols) {
      headers['Sec-WebSocket-Protocol'] = [].concat(protocols).join(', ');
    }
    const req = (secure ? https : http).request({
      hostname: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port || (secure ? 443 : 80),
      path: `${u.pathname}${u.search}`,
      method: 'GET',
      headers,
      timeout: options.handshakeTimeoutMs ?? 10_000,
    });
    this._req = req;
    req.on('upgrade', (res, socket, head) => this._onUpgrade(res, socket, head));
    req.on('response', (res) => {
      // Not upgraded: keep the body (Phoenix answers with its JSON error envelope).
      const chunks = [];
      res.on('data', (c) => {
        if (chunks.length < 64) chunks.push(c);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this._fail(1006, `unexpected HTTP ${res.statusCode}`, { status: res.statusCode, body });
      });
    });
    req.on('timeout', () => {
      req.destroy();
      this._fail(1006, 'handshake timed out');
    });
    req.on('error', (err) => this._fail(1006, err.message, { error: err }));
    req.end();
  }

  get bufferedAmount() {
    return this._socket ? this._socket.writableLength : 0;
  }

  _onUpgrade(res, socket, head) {
    if (res.headers['sec-websocket-accept'] !== this._expectedAccept) {
      socket.destroy();
      this._fail(1006, 'bad Sec-WebSocket-Accept');
      return;
    }
    this._socket = socket;
    this.protocol = res.headers['sec-websocket-protocol'] ?? '';
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this._onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(this._closeTimer);
      this._finish(this._peerClose?.code ?? 1006, this._peerClose?.reason ?? '', !!this._peerClose);
    });
    this.readyState = NodeWebSocket.OPEN;
    this._emit('open', {});
    if (head && head.length) this._onData(head);
  }

  _onData(chunk) {
    let frames;
    try {
      frames = this._parser.push(chunk);
    } catch (e) {
      this._protocolError(e.code ?? 1002, e.reason ?? 'protocol error');
      return;
    }
    for (const f of frames) {
      if (this.readyState === NodeWebSocket.CLOSED) return;
      this._onFrame(f);
    }
  }

  _onFrame({ fin, opcode, payload }) {
    switch (opcode) {
      case OP.PING:
        this._write(encodeFrame(OP.PONG, payload));
        this._emit('ping', { data: payload });
        return;
      case OP.PONG:
        this._emit('pong', { data: payload });
        return;
      case OP.CLOSE: {
        let code = 1005;
        let reason = '';
        if (payload.length >= 2) {
          code = payload.readUInt16BE(0);
          try {
            reason = fatalUtf8.decode(payload.subarray(2));
          } catch {
            reason = '';
          }
        }
        this._peerClose = { code, reason };
        if (!this._closeSent) {
          // Echo the close (RFC 6455 §5.5.1), then the server closes the TCP connection.
          this._sendClose(code === 1005 ? undefined : code, '');
        }
        this.readyState = NodeWebSocket.CLOSING;
        this._closeTimer = setTimeout(() => this._socket?.destroy(), 1000);
        this._socket?.end();
        return;
      }
      case OP.TEXT:
      case OP.BINARY:
        if (this._fragments) return this._protocolError(1002, 'new message inside a fragmented one');
        if (fin) return this._deliver(opcode, payload);
        this._fragments = [payload];
        this._fragmentOp = opcode;
        this._fragmentBytes = payload.length;
        return;
      case OP.CONT:
        if (!this._fragments) return this._protocolError(1002, 'continuation without a message');
        this._fragmentBytes += payload.length;
        if (this._fragmentBytes > this._maxPayload) return this._protocolError(1009, 'message too big');
        this._fragments.push(payload);
        if (fin) {
          const whole = Buffer.concat(this._fragments);
          const op = this._fragmentOp;
          this._fragments = null;
          this._deliver(op, whole);
        }
        return;
      default:
        this._protocolError(1002, `unknown opcode ${opcode}`);
    }
  }

  _deliver(opcode, payload) {
    if (opcode === OP.TEXT) {
      let text;
      try {
        text = fatalUtf8.decode(payload);
      } catch {
        return this._protocolError(1007, 'invalid UTF-8 in a text frame');
      }
      this._emit('message', { data: text });
    } else {
      const data =
        this.binaryType === 'arraybuffer'
          ? payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length)
          : payload;
      this._emit('message', { data });
    }
  }

  _protocolError(code, reason) {
    this._emit('error', { message: reason });
    this._peerClose = { code, reason };
    this._sendClose(code, reason);
    this.readyState = NodeWebSocket.CLOSING;
    this._closeTimer = setTimeout(() => this._socket?.destroy(), 1000);
    this._socket?.end();
  }

  _write(buf) {
    if (this._socket && !this._socket.destroyed) this._socket.write(buf);
  }

  _sendClose(code, reason) {
    if (this._closeSent) return;
    this._closeSent = true;
    let payload = Buffer.alloc(0);
    if (code !== undefined) {
      const r = Buffer.from(reason ?? '', 'utf8');
      payload = Buffer.alloc(2 + r.length);
      payload.writeUInt16BE(code, 0);
      r.copy(payload, 2);
    }
    this._write(encodeFrame(OP.CLOSE, payload));
  }

  /** Send a text frame (strings) or a binary one (Buffer / ArrayBuffer / typed array). */
  send(data) {
    if (this.readyState === NodeWebSocket.CONNECTING) {
      throw new Error('InvalidStateError: the WebSocket is still connecting');
    }
    if (this.readyState !== NodeWebSocket.OPEN) return;
    if (typeof data === 'string') {
      this._write(encodeFrame(OP.TEXT, Buffer.from(data, 'utf8')));
    } else {
      const buf = Buffer.isBuffer(data)
        ? data
        : ArrayBuffer.isView(data)
          ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
          : Buffer.from(data);
      this._write(encodeFrame(OP.BINARY, buf));
    }
  }

  /**
   * Send a message as several frames (a text message split into `parts`), for tests and
   * peers that want to exercise fragmentation.
   */
  sendFragmented(text, parts = 2) {
    if (this.readyState !== NodeWebSocket.OPEN) return;
    const buf = Buffer.from(text, 'utf8');
    const size = Math.ceil(buf.length / parts) || 1;
    for (let i = 0, first = true; first || i < buf.length; i += size, first = false) {
      const last = i + size >= buf.length;
      this._write(encodeFrame(first ? OP.TEXT : OP.CONT, buf.subarray(i, i + size), last));
    }
  }

  /** Send a ping; a `pong` event follows when the peer answers. */
  ping(data = '') {
    if (this.readyState === NodeWebSocket.OPEN) this._write(encodeFrame(OP.PING, data));
  }

  /** Start the close handshake; the socket is dropped after 1 s without the peer's close. */
  close(code, reason = '') {
    if (this.readyState === NodeWebSocket.CLOSED || this.readyState === NodeWebSocket.CLOSING) return;
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new RangeError('close code must be 1000 or 3000-4999');
    }
    if (this.readyState === NodeWebSocket.CONNECTING) {
      this._req.destroy();
      this._fail(1006, 'closed before the connection was established');
      return;
    }
    this.readyState = NodeWebSocket.CLOSING;
    this._sendClose(code ?? 1000, reason);
    this._closeTimer = setTimeout(() => this._socket?.destroy(), 1000);
  }

  /** Drop the TCP connection at once, without a close handshake (tests, dead peers). */
  terminate() {
    if (this._socket) this._socket.destroy();
    else if (this.readyState === NodeWebSocket.CONNECTING) this._req.destroy();
  }

  _fail(code, reason, extra = {}) {
    if (this.readyState === NodeWebSocket.CLOSED) return;
    this._emit('error', { message: reason, ...extra });
    this._finish(code, reason, false, extra);
  }

  _finish(code, reason, wasClean, extra = {}) {
    if (this._closeEmitted) return;
    this._closeEmitted = true;
    this.readyState = NodeWebSocket.CLOSED;
    this._emit('close', { code, reason, wasClean, ...extra });
  }
}

export default NodeWebSocket;
