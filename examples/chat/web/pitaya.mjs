// A Pitaya client over WebSocket, for browsers (and Node.js 20+ given a WebSocket class).
//
// One connection: handshake (spec 2), heartbeats (spec 3), requests matched to their
// responses by id, notifies, and pushes as events. JSON serializer only. The codec it
// uses is re-exported here, so a page imports this one module.

import {
  MessageType,
  PacketType,
  PitayaError,
  ProtocolError,
  compressionOf,
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodePacket,
  inflate,
  parseJson,
} from './codec.mjs';

export * from './codec.mjs';

const utf8 = new TextEncoder();

/** Ids are 32-bit in libpitaya; we stay below that and never send 0 (spec 4.4). */
const MAX_REQUEST_ID = 0x7fffffff;

/** Without a packet from the server for this many heartbeat intervals, we give up. */
const SILENT_INTERVALS = 3;

/** What `connect` uses when an option is left out. */
const DEFAULTS = Object.freeze({
  timeoutMs: 10000,
  user: {},
  sys: {
    platform: 'browser',
    libVersion: 'pitaya-rs-js-0.1',
    clientBuildNumber: '1',
    clientVersion: '0.1',
  },
  WebSocket: globalThis.WebSocket,
});

/**
 * A connected, handshaken Pitaya client; made by `PitayaClient.connect`.
 *
 * Events: `push` (detail `{route, body}`), `kick`, and `close` (detail `{reason}`), once.
 */
export class PitayaClient extends EventTarget {
  #socket;
  #options;
  #dict = new Map();
  #pending = new Map();
  #nextId = 1;
  #inbox = Promise.resolve();
  #heartbeatSeconds = 0;
  #heartbeat = null;
  #handshakeTimer = null;
  #lastHeard = Date.now();
  #ready = false;
  #closed = false;
  #handshaken;

  /**
   * Returns a client connected to `url` once the server has accepted its handshake.
   *
   * Options: `timeoutMs` for the handshake and for each request (10 s), `user` data
   * sent in the handshake, `sys` to replace its client description, and a `WebSocket`
   * class where the global one is missing.
   */
  static connect(url, options = {}) {
    const client = new PitayaClient(url, { ...DEFAULTS, ...options });
    return client.#handshaken;
  }

  constructor(url, options) {
    super();
    this.#options = options;
    this.#handshaken = this.#startHandshake(url);
  }

  /** Returns the heartbeat interval the server asked for, in seconds. */
  get heartbeatSeconds() {
    return this.#heartbeatSeconds;
  }

  /** Returns whether the connection is closed. */
  get closed() {
    return this.#closed;
  }

  /**
   * Returns the server's answer to a request of `body` (JSON) on `route`.
   *
   * Rejects with a `PitayaError` for an error answer, and with a plain `Error` when the
   * answer takes longer than `timeoutMs` or the connection closes first.
   */
  request(route, body) {
    if (this.#closed) return Promise.reject(new Error('connection closed'));
    const id = this.#takeId();
    this.#sendMessage({ type: MessageType.REQUEST, id, route, body });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no answer to ${route} within ${this.#options.timeoutMs} ms`));
      }, this.#options.timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
    });
  }

  /** Sends a notify of `body` (JSON) on `route`; throws once the connection is closed. */
  notify(route, body) {
    this.#sendMessage({ type: MessageType.NOTIFY, route, body });
  }

  /** Calls `listener(body)` for each push on `route`; returns a function that stops it. */
  on(route, listener) {
    const onPush = (event) => {
      if (event.detail.route === route) listener(event.detail.body);
    };
    this.addEventListener('push', onPush);
    return () => this.removeEventListener('push', onPush);
  }

  /** Closes the connection; pending requests are rejected. */
  close(reason = 'closed by the client') {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#handshakeTimer);
    for (const { reject, timer } of this.#pending.values()) {
      clearTimeout(timer);
      reject(new Error(`connection closed before the answer: ${reason}`));
    }
    this.#pending.clear();
    this.#socket.close();
    this.dispatchEvent(new CustomEvent('close', { detail: { reason } }));
  }

  // ===== connection =====

  #startHandshake(url) {
    return new Promise((resolve, reject) => {
      const socket = new this.#options.WebSocket(url);
      socket.binaryType = 'arraybuffer';
      this.#socket = socket;
      const waitMs = this.#options.timeoutMs;
      this.#handshakeTimer = setTimeout(() => {
        reject(new Error(`no handshake answer from ${url} within ${waitMs} ms`));
        this.close('handshake timed out');
      }, waitMs);
      const settle = (error) => {
        clearTimeout(this.#handshakeTimer);
        if (error) reject(error);
        else resolve(this);
      };

      socket.onopen = () => {
        if (this.#closed) return;
        const hello = { sys: this.#options.sys, user: this.#options.user };
        this.#send(PacketType.HANDSHAKE, utf8.encode(JSON.stringify(hello)));
      };
      socket.onmessage = (event) => this.#receive(event.data, settle);
      socket.onclose = (event) => {
        const reason = event.reason || `socket closed (code ${event.code})`;
        settle(new Error(`cannot connect to ${url}: ${reason}`));
        this.close(reason);
      };
    });
  }

  // Packets are handled one after another: an inflate awaits, and order must hold.
  #receive(data, settle) {
    this.#lastHeard = Date.now();
    this.#inbox = this.#inbox
      .then(() => this.#handle(data, settle))
      .catch((error) => {
        settle(error);
        this.close(error.message);
      });
  }

  async #handle(data, settle) {
    if (this.#closed) return;
    if (typeof data === 'string') throw new ProtocolError('text frame where a packet belongs');
    const packet = decodePacket(new Uint8Array(data));
    switch (packet.type) {
      case PacketType.HANDSHAKE:
        if (this.#ready) throw new ProtocolError('a second handshake answer');
        await this.#handshake(packet.body);
        settle();
        break;
      case PacketType.HEARTBEAT:
        break;
      case PacketType.DATA:
        if (!this.#ready) throw new ProtocolError('data before the handshake');
        await this.#message(packet.body);
        break;
      case PacketType.KICK:
        this.dispatchEvent(new CustomEvent('kick'));
        this.close('kicked by the server');
        break;
      default:
        throw new ProtocolError(`unexpected packet type ${packet.type}`);
    }
  }

  // The answer carries no compression flag: only its first bytes tell (spec 2.2).
  async #handshake(body) {
    const format = compressionOf(body);
    const answer = parseJson(format ? await inflate(body, format) : body, 'handshake');
    if (answer?.code !== 200) {
      throw new Error(`handshake refused (code ${answer?.code})`);
    }
    const sys = answer.sys ?? {};
    if (sys.serializer !== undefined && sys.serializer !== 'json') {
      throw new Error(`server serializer is ${sys.serializer}; this client speaks json only`);
    }
    this.#dict = new Map(Object.entries(sys.dict ?? {}).map(([route, code]) => [code, route]));
    this.#heartbeatSeconds = Number(sys.heartbeat) || 0;

    this.#send(PacketType.HANDSHAKE_ACK);
    this.#ready = true;
    this.#startHeartbeat();
  }

  // A heartbeat interval of 0 or less turns heartbeats off, as libpitaya does (spec 3).
  #startHeartbeat() {
    const intervalMs = this.#heartbeatSeconds * 1000;
    if (intervalMs <= 0) return;
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastHeard > SILENT_INTERVALS * intervalMs) {
        this.close('server silent for too long');
      } else {
        this.#send(PacketType.HEARTBEAT);
      }
    }, intervalMs);
  }

  async #message(bytes) {
    const message = decodeMessage(bytes, this.#dict);
    const raw = message.compressed ? await inflate(message.body) : message.body;
    const body = raw.length === 0 ? null : parseJson(raw, `body of ${message.route || 'answer'}`);
    if (message.type === MessageType.PUSH) {
      this.dispatchEvent(new CustomEvent('push', { detail: { route: message.route, body } }));
    } else if (message.type === MessageType.RESPONSE) {
      this.#answer(message.id, message.error, body);
    } else {
      throw new ProtocolError(`server sent message type ${message.type}`);
    }
  }

  // An answer nobody waits for any more (its request timed out) is dropped.
  #answer(id, isError, body) {
    const waiter = this.#pending.get(id);
    if (!waiter) return;
    this.#pending.delete(id);
    clearTimeout(waiter.timer);
    if (isError) {
      waiter.reject(new PitayaError(body?.code ?? 'PIT-000', body?.msg ?? '', body?.metadata));
    } else {
      waiter.resolve(body);
    }
  }

  #takeId() {
    const id = this.#nextId;
    this.#nextId = id >= MAX_REQUEST_ID ? 1 : id + 1;
    return id;
  }

  #sendMessage({ type, id, route, body }) {
    const payload = utf8.encode(JSON.stringify(body ?? {}));
    this.#send(PacketType.DATA, encodeMessage({ type, id, route, body: payload }));
  }

  #send(type, body) {
    if (this.#closed) throw new Error('connection closed');
    this.#socket.send(encodePacket(type, body));
  }
}
