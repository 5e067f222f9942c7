// The Pitaya codec: packets and messages, for browsers and Node.js 20+.
//
// Pure: bytes in, values out; no sockets and no clocks (the client in pitaya.mjs has
// those). Section numbers refer to the wire spec, docs/pitaya-wire.md.

/** Packet types (spec 1.2). */
export const PacketType = Object.freeze({
  HANDSHAKE: 1,
  HANDSHAKE_ACK: 2,
  HEARTBEAT: 3,
  DATA: 4,
  KICK: 5,
});

/** Message types inside data packets (spec 4.3). */
export const MessageType = Object.freeze({ REQUEST: 0, NOTIFY: 1, RESPONSE: 2, PUSH: 3 });

/** Packet header: type byte, then a 24-bit big-endian body length (spec 1.1). */
export const HEADER_LEN = 4;
export const MAX_BODY_LEN = 0xffffff;
const MAX_ROUTE_LEN = 255;

// Flag bits of a message (spec 4.2).
const ROUTE_CODE_FLAG = 0x01;
const COMPRESSED_FLAG = 0x10;
const ERROR_FLAG = 0x20;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes the peer sent that break the protocol; the connection cannot go on. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** An error response from the server: a Pitaya code such as `PIT-400`, and its message. */
export class PitayaError extends Error {
  constructor(code, message, metadata = {}) {
    super(`${code}: ${message}`);
    this.name = 'PitayaError';
    this.code = code;
    this.metadata = metadata;
  }
}

// ===== codec =====

/** Returns the packet of `type` carrying `body` (a Uint8Array). */
export function encodePacket(type, body = new Uint8Array(0)) {
  if (body.length > MAX_BODY_LEN) throw new RangeError(`packet body of ${body.length} bytes`);
  const packet = new Uint8Array(HEADER_LEN + body.length);
  packet[0] = type;
  packet[1] = (body.length >> 16) & 0xff;
  packet[2] = (body.length >> 8) & 0xff;
  packet[3] = body.length & 0xff;
  packet.set(body, HEADER_LEN);
  return packet;
}

/**
 * Returns `{type, body}` of the one packet `bytes` holds.
 *
 * Over WebSocket a message is exactly one packet (spec 1.6): fewer or more bytes than
 * its header announces is an error, as is an unknown type.
 */
export function decodePacket(bytes) {
  if (bytes.length < HEADER_LEN) {
    throw new ProtocolError(`packet of ${bytes.length} bytes, shorter than its header`);
  }
  const type = bytes[0];
  if (type < PacketType.HANDSHAKE || type > PacketType.KICK) {
    throw new ProtocolError(`unknown packet type ${type}`);
  }
  const length = (bytes[1] << 16) | (bytes[2] << 8) | bytes[3];
  if (bytes.length !== HEADER_LEN + length) {
    const carried = bytes.length - HEADER_LEN;
    throw new ProtocolError(`packet announces ${length} body bytes, carries ${carried}`);
  }
  return { type, body: bytes.subarray(HEADER_LEN) };
}

/**
 * Returns the encoded message `{type, id, route, routeCode, body}`.
 *
 * `id` goes into requests and responses, `route` into requests, notifies and pushes;
 * a numeric `routeCode` replaces the route string with its dictionary code (spec 4.5).
 */
export function encodeMessage({ type, id = 0, route = '', routeCode, body = new Uint8Array(0) }) {
  const parts = [];
  const compressed = routeCode !== undefined;
  parts.push([(type << 1) | (compressed ? ROUTE_CODE_FLAG : 0)]);
  if (type === MessageType.REQUEST || type === MessageType.RESPONSE) parts.push(encodeVarint(id));
  if (type !== MessageType.RESPONSE) {
    if (compressed) {
      parts.push([(routeCode >> 8) & 0xff, routeCode & 0xff]);
    } else {
      const name = utf8.encode(route);
      if (name.length > MAX_ROUTE_LEN) throw new RangeError(`route of ${name.length} bytes`);
      parts.push([name.length], name);
    }
  }
  parts.push(body);
  return concat(parts);
}

/**
 * Returns `{type, id, route, body, compressed, error}` of the message `bytes` holds.
 *
 * `routesByCode` (a Map from code to route) resolves dictionary-coded routes. `body` is
 * still compressed when `compressed` is set: see {@link inflate}.
 */
export function decodeMessage(bytes, routesByCode = new Map()) {
  if (bytes.length < 2) throw new ProtocolError(`message of ${bytes.length} bytes`);
  const flag = bytes[0];
  const type = (flag >> 1) & 0x07;
  if (type > MessageType.PUSH) throw new ProtocolError(`unknown message type ${type}`);
  let at = 1;

  let id = 0;
  if (type === MessageType.REQUEST || type === MessageType.RESPONSE) {
    [id, at] = decodeVarint(bytes, at);
  }

  let route = '';
  if (type !== MessageType.RESPONSE) {
    if (flag & ROUTE_CODE_FLAG) {
      if (bytes.length < at + 2) throw new ProtocolError('message ends inside its route code');
      const code = (bytes[at] << 8) | bytes[at + 1];
      route = routesByCode.get(code);
      if (route === undefined) throw new ProtocolError(`unknown route code ${code}`);
      at += 2;
    } else {
      const length = bytes[at];
      if (length === undefined || bytes.length < at + 1 + length) {
        throw new ProtocolError('message ends inside its route');
      }
      route = decodeUtf8(bytes.subarray(at + 1, at + 1 + length), 'route');
      at += 1 + length;
    }
  }

  return {
    type,
    id,
    route,
    body: bytes.subarray(at),
    compressed: (flag & COMPRESSED_FLAG) !== 0,
    error: (flag & ERROR_FLAG) !== 0,
  };
}

/** Returns whether `bytes` start like a zlib or gzip stream (spec 2.2 sniffs the same). */
export function compressionOf(bytes) {
  if (bytes[0] === 0x78 && [0x01, 0x5e, 0x9c, 0xda].includes(bytes[1])) return 'deflate';
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return 'gzip';
  return null;
}

/** Returns `bytes` inflated; `format` is `deflate` (zlib, as Pitaya sends) or `gzip`. */
export async function inflate(bytes, format = 'deflate') {
  try {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new ProtocolError(`corrupt ${format} body: ${e.message}`);
  }
}

/** Returns the JSON value of a UTF-8 body; `what` names it in errors. */
export function parseJson(bytes, what) {
  const text = decodeUtf8(bytes, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ProtocolError(`${what} is not JSON: ${e.message}`);
  }
}

/** Returns `value` as a little-endian base-128 varint (spec 4.4). */
export function encodeVarint(value) {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`message id ${value}`);
  const out = [];
  do {
    const low = value % 128;
    value = Math.floor(value / 128);
    out.push(value > 0 ? low | 0x80 : low);
  } while (value > 0);
  return out;
}

/** Returns `[value, next offset]` of the varint at `at`. */
function decodeVarint(bytes, at) {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[at];
    if (byte === undefined) throw new ProtocolError('message ends inside its id');
    value += (byte & 0x7f) * scale;
    at += 1;
    if (!Number.isSafeInteger(value)) throw new ProtocolError('message id too large');
    if ((byte & 0x80) === 0) return [value, at];
    scale *= 128;
  }
}

function decodeUtf8(bytes, what) {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new ProtocolError(`${what} is not UTF-8`);
  }
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
