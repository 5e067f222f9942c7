// The page's codec (examples/chat/web/codec.mjs) against the byte vectors of the wire
// spec (sections 1 and 4), and its errors on malformed input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, gzipSync } from 'node:zlib';

import {
  MessageType,
  PacketType,
  ProtocolError,
  compressionOf,
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodePacket,
  encodeVarint,
  inflate,
  parseJson,
} from '../../examples/chat/web/codec.mjs';

const hex = (text) => Uint8Array.from(text.split(' ').filter(Boolean), (b) => parseInt(b, 16));
const bytes = (text) => new TextEncoder().encode(text);
const json = (value) => bytes(JSON.stringify(value));

test('empty-body packets are their 4-byte headers', () => {
  assert.deepEqual(encodePacket(PacketType.HEARTBEAT), hex('03 00 00 00'));
  assert.deepEqual(encodePacket(PacketType.HANDSHAKE_ACK), hex('02 00 00 00'));
});

test('packet length is 24-bit big-endian', () => {
  const packet = encodePacket(PacketType.DATA, new Uint8Array(0x010203));
  assert.deepEqual(packet.subarray(0, 4), hex('04 01 02 03'));
  assert.equal(decodePacket(packet).body.length, 0x010203);
});

test('the spec push packet decodes to its route and JSON body', () => {
  const packet = hex(
    '04 00 00 11  06 08 63 68 61 74 2e 6d 73 67  7b 22 78 22 3a 31 7d',
  );
  const { type, body } = decodePacket(packet);
  assert.equal(type, PacketType.DATA);
  const message = decodeMessage(body);
  assert.equal(message.type, MessageType.PUSH);
  assert.equal(message.route, 'chat.msg');
  assert.equal(message.compressed, false);
  assert.deepEqual(parseJson(message.body, 'body'), { x: 1 });
});

test('the spec push packet is what encoding that push gives', () => {
  const push = { type: MessageType.PUSH, route: 'chat.msg', body: json({ x: 1 }) };
  const message = encodeMessage(push);
  assert.deepEqual(
    encodePacket(PacketType.DATA, message),
    hex('04 00 00 11  06 08 63 68 61 74 2e 6d 73 67  7b 22 78 22 3a 31 7d'),
  );
});

test('a packet shorter or longer than its header says is refused', () => {
  assert.throws(() => decodePacket(hex('04 00 00 02 06')), ProtocolError);
  assert.throws(() => decodePacket(hex('03 00 00 00 00')), ProtocolError);
  assert.throws(() => decodePacket(hex('03 00 00')), ProtocolError);
});

test('packet types outside 1 to 5 are refused', () => {
  assert.throws(() => decodePacket(hex('00 00 00 00')), /unknown packet type 0/);
  assert.throws(() => decodePacket(hex('06 00 00 00')), /unknown packet type 6/);
});

test('client messages encode as the spec vectors', () => {
  const request = { type: MessageType.REQUEST, id: 0, route: 'a' };
  assert.deepEqual(encodeMessage(request), hex('00 00 01 61'));
  const coded = { ...request, route: undefined, routeCode: 1 };
  assert.deepEqual(encodeMessage(coded), hex('01 00 00 01'));
  assert.deepEqual(encodeMessage({ type: MessageType.NOTIFY, route: 'a' }), hex('02 01 61'));
  assert.deepEqual(encodeMessage({ type: MessageType.NOTIFY, routeCode: 1 }), hex('03 00 01'));
});

test('server messages decode as the spec vectors say', () => {
  const push = decodeMessage(hex('06 01 61'));
  assert.deepEqual([push.type, push.route, push.body.length], [MessageType.PUSH, 'a', 0]);

  const coded = decodeMessage(hex('07 00 01'), new Map([[1, 'room.onMessage']]));
  assert.equal(coded.route, 'room.onMessage');

  const empty = decodeMessage(hex('04 00'));
  assert.deepEqual([empty.type, empty.id, empty.body.length], [MessageType.RESPONSE, 0, 0]);
  assert.deepEqual(decodeMessage(hex('04 00 01')).body, hex('01'));
  assert.equal(decodeMessage(hex('04 81 01')).id, 129);

  const error = decodeMessage(hex('24 00 01'));
  assert.deepEqual([error.error, error.compressed, error.body], [true, false, hex('01')]);
});

test('message ids are little-endian base-128 varints', () => {
  assert.deepEqual(encodeVarint(0), [0x00]);
  assert.deepEqual(encodeVarint(127), [0x7f]);
  assert.deepEqual(encodeVarint(129), [0x81, 0x01]);
  assert.deepEqual(encodeVarint(300), [0xac, 0x02]);
  assert.deepEqual(encodeVarint(2 ** 32), [0x80, 0x80, 0x80, 0x80, 0x10]);
  for (const id of [1, 129, 300, 2 ** 31 - 1, 2 ** 40 + 5]) {
    const message = encodeMessage({ type: MessageType.RESPONSE, id });
    assert.equal(decodeMessage(message).id, id);
  }
  assert.throws(() => encodeVarint(-1), RangeError);
});

test('a compressed error answer inflates to its JSON payload', async () => {
  const payload = { code: 'PIT-500', msg: 'boom' };
  const message = decodeMessage(Uint8Array.of(0x34, 0x07, ...deflateSync(json(payload))));
  assert.deepEqual([message.id, message.error, message.compressed], [7, true, true]);
  assert.deepEqual(parseJson(await inflate(message.body), 'body'), payload);
});

test('handshake compression is told from the first bytes, zlib or gzip', async () => {
  const hello = { code: 200, sys: { heartbeat: 30, dict: {}, serializer: 'json' } };
  const zlib = deflateSync(json(hello));
  const gzip = gzipSync(json(hello));
  assert.equal(compressionOf(zlib), 'deflate');
  assert.equal(compressionOf(gzip), 'gzip');
  assert.equal(compressionOf(json(hello)), null);
  assert.deepEqual(parseJson(await inflate(gzip, 'gzip'), 'handshake'), hello);
});

test('a corrupt compressed body is a protocol error', async () => {
  await assert.rejects(inflate(hex('78 9c 01 02 03')), ProtocolError);
});

test('truncated or unknown message parts are refused', () => {
  assert.throws(() => decodeMessage(hex('04')), /message of 1 bytes/);
  assert.throws(() => decodeMessage(hex('04 80')), /ends inside its id/);
  assert.throws(() => decodeMessage(hex('06 05 61 62')), /ends inside its route/);
  assert.throws(() => decodeMessage(hex('07 00')), /ends inside its route code/);
  assert.throws(() => decodeMessage(hex('07 00 09')), /unknown route code 9/);
  assert.throws(() => decodeMessage(hex('08 00')), /unknown message type 4/);
  assert.throws(() => decodeMessage(hex('06 01 ff')), /route is not UTF-8/);
});

test('a route longer than 255 bytes is refused, not truncated', () => {
  const route = 'r'.repeat(256);
  assert.throws(() => encodeMessage({ type: MessageType.NOTIFY, route }), RangeError);
  const longest = encodeMessage({ type: MessageType.NOTIFY, route: 'r'.repeat(255) });
  assert.equal(decodeMessage(longest).route.length, 255);
});

test('bodies that are not UTF-8 JSON are protocol errors', () => {
  assert.throws(() => parseJson(bytes('{"x":'), 'body'), /body is not JSON/);
  assert.throws(() => parseJson(hex('ff'), 'body'), /body is not UTF-8/);
});
