// The page's Pitaya client (examples/chat/web/pitaya.mjs) against a scripted WebSocket:
// handshake, request ids, answers out of order, error answers, pushes, heartbeats, close.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';

import {
  MessageType,
  PacketType,
  PitayaClient,
  PitayaError,
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodePacket,
} from '../../examples/chat/web/pitaya.mjs';

const json = (value) => new TextEncoder().encode(JSON.stringify(value));
const parse = (bytes) => JSON.parse(new TextDecoder().decode(bytes));

/** A WebSocket whose peer is the test: it sees what the client sends and answers. */
class ScriptedSocket {
  static last = null;

  constructor(url) {
    this.url = url;
    this.sent = [];
    this.waiters = [];
    this.closed = false;
    ScriptedSocket.last = this;
    queueMicrotask(() => this.onopen?.());
  }

  send(bytes) {
    const packet = decodePacket(bytes);
    const waiter = this.waiters.shift();
    if (waiter) waiter(packet);
    else this.sent.push(packet);
  }

  close() {
    this.closed = true;
  }

  /** Returns the next packet the client sends. */
  nextSent() {
    if (this.sent.length > 0) return Promise.resolve(this.sent.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  deliver(type, body) {
    const packet = encodePacket(type, body);
    this.onmessage({ data: packet.buffer });
  }

  answer(id, body, flag = 0) {
    const message = encodeMessage({ type: MessageType.RESPONSE, id, body: json(body) });
    message[0] |= flag;
    this.deliver(PacketType.DATA, message);
  }

  hangUp(code = 1006) {
    this.onclose({ code, reason: '' });
  }
}

const HELLO = { code: 200, sys: { dict: {}, heartbeat: 30, serializer: 'json' } };

/** Returns a client handshaken with a scripted server that answered `hello`. */
async function connected(hello = HELLO, options = {}) {
  const connecting = PitayaClient.connect('ws://chat.test/', {
    WebSocket: ScriptedSocket,
    ...options,
  });
  const socket = ScriptedSocket.last;
  const handshake = await socket.nextSent();
  assert.equal(handshake.type, PacketType.HANDSHAKE);
  socket.deliver(PacketType.HANDSHAKE, json(hello));
  assert.equal((await socket.nextSent()).type, PacketType.HANDSHAKE_ACK);
  return { client: await connecting, socket, handshake: parse(handshake.body) };
}

/** Returns the next data message the client sends, decoded, with its JSON body. */
async function nextMessage(socket) {
  const packet = await socket.nextSent();
  assert.equal(packet.type, PacketType.DATA);
  const message = decodeMessage(packet.body);
  return { ...message, body: parse(message.body) };
}

test('handshake describes the client and takes a zlib-compressed answer', async () => {
  const connecting = PitayaClient.connect('ws://chat.test/', {
    WebSocket: ScriptedSocket,
    user: { team: 'blue' },
  });
  const socket = ScriptedSocket.last;
  const hello = await socket.nextSent();
  assert.equal(hello.type, PacketType.HANDSHAKE);
  const { sys, user } = parse(hello.body);
  assert.deepEqual(Object.keys(sys).sort(), [
    'clientBuildNumber',
    'clientVersion',
    'libVersion',
    'platform',
  ]);
  assert.deepEqual(user, { team: 'blue' });

  const answer = { ...HELLO, sys: { ...HELLO.sys, heartbeat: 7 } };
  socket.deliver(PacketType.HANDSHAKE, deflateSync(json(answer)));
  assert.equal((await socket.nextSent()).type, PacketType.HANDSHAKE_ACK);
  const client = await connecting;
  assert.equal(client.heartbeatSeconds, 7);
  client.close();
});

test('a refused handshake rejects connect and closes the socket', async () => {
  const connecting = PitayaClient.connect('ws://chat.test/', { WebSocket: ScriptedSocket });
  const socket = ScriptedSocket.last;
  await socket.nextSent();
  socket.deliver(PacketType.HANDSHAKE, json({ code: 400, sys: HELLO.sys }));
  await assert.rejects(connecting, /handshake refused \(code 400\)/);
  assert.equal(socket.closed, true);
});

test('a socket that closes before the handshake rejects connect', async () => {
  const connecting = PitayaClient.connect('ws://chat.test/', { WebSocket: ScriptedSocket });
  ScriptedSocket.last.hangUp(1006);
  await assert.rejects(connecting, /cannot connect to ws:\/\/chat\.test\/: .*1006/);
});

test('requests count ids from 1 and answers find their request in any order', async () => {
  const { client, socket } = await connected();
  const first = client.request('room.room.join', { name: 'ann' });
  const second = client.request('room.room.echo', { n: 2 });

  const one = await nextMessage(socket);
  const two = await nextMessage(socket);
  assert.deepEqual([one.type, one.id, one.route], [MessageType.REQUEST, 1, 'room.room.join']);
  assert.deepEqual(one.body, { name: 'ann' });
  assert.deepEqual([two.id, two.route], [2, 'room.room.echo']);

  socket.answer(2, { n: 'two' });
  socket.answer(1, { code: 0 });
  assert.deepEqual(await second, { n: 'two' });
  assert.deepEqual(await first, { code: 0 });
  client.close();
});

test('an error answer rejects with its Pitaya code and message', async () => {
  const { client, socket } = await connected();
  const joining = client.request('room.room.join', { name: '' });
  const { id } = await nextMessage(socket);
  socket.answer(id, { code: 'PIT-400', msg: 'join needs a name', metadata: { a: 'b' } }, 0x20);

  const error = await joining.catch((e) => e);
  assert.ok(error instanceof PitayaError, `a PitayaError, not ${error}`);
  assert.equal(error.code, 'PIT-400');
  assert.equal(error.message, 'PIT-400: join needs a name');
  assert.deepEqual(error.metadata, { a: 'b' });
  client.close();
});

test('notifies carry a route and no id', async () => {
  const { client, socket } = await connected();
  client.notify('room.room.message', { content: 'hi' });
  const message = await nextMessage(socket);
  assert.deepEqual([message.type, message.route], [MessageType.NOTIFY, 'room.room.message']);
  assert.deepEqual(message.body, { content: 'hi' });
  client.close();
});

test('pushes reach their route listeners, with dictionary routes resolved', async () => {
  const hello = { ...HELLO, sys: { ...HELLO.sys, dict: { onMessage: 9 } } };
  const { client, socket } = await connected(hello);
  const heard = [];
  client.on('onMessage', (body) => heard.push(['onMessage', body]));
  client.on('onMembers', (body) => heard.push(['onMembers', body]));

  const coded = encodeMessage({ type: MessageType.PUSH, routeCode: 9, body: json({ n: 1 }) });
  const named = encodeMessage({ type: MessageType.PUSH, route: 'onMembers', body: json(['a']) });
  socket.deliver(PacketType.DATA, coded);
  socket.deliver(PacketType.DATA, named);
  const done = new Promise((resolve) => client.on('onMembers', resolve));
  await done;
  assert.deepEqual(heard, [['onMessage', { n: 1 }], ['onMembers', ['a']]]);
  client.close();
});

test('the server closing rejects requests in flight and fires close once', async () => {
  const { client, socket } = await connected();
  const closes = [];
  client.addEventListener('close', (event) => closes.push(event.detail.reason));
  const pending = client.request('room.room.join', { name: 'ann' });
  await nextMessage(socket);

  socket.hangUp(1001);
  await assert.rejects(pending, /connection closed before the answer/);
  assert.deepEqual(closes, ['socket closed (code 1001)']);
  assert.equal(client.closed, true);
  await assert.rejects(client.request('room.room.join', {}), /connection closed/);
});

test('a kick closes the client', async () => {
  const { client, socket } = await connected();
  const kicked = new Promise((resolve) => client.addEventListener('kick', resolve));
  socket.deliver(PacketType.KICK);
  await kicked;
  assert.equal(client.closed, true);
  assert.equal(socket.closed, true);
});

test('a malformed packet closes the client with the reason', async () => {
  const { client, socket } = await connected();
  const closed = new Promise((resolve) => client.addEventListener('close', resolve));
  socket.onmessage({ data: Uint8Array.of(0x09, 0, 0, 0).buffer });
  const { detail } = await closed;
  assert.match(detail.reason, /unknown packet type 9/);
});

test('heartbeats go out every interval; a silent server is given up on', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'] });
  const hello = { ...HELLO, sys: { ...HELLO.sys, heartbeat: 2 } };
  const { client, socket } = await connected(hello);
  const closed = new Promise((resolve) => client.addEventListener('close', resolve));

  t.mock.timers.tick(2000);
  assert.equal((await socket.nextSent()).type, PacketType.HEARTBEAT);
  socket.deliver(PacketType.HEARTBEAT);
  await Promise.resolve();

  // Three intervals of silence after the server's heartbeat: still one more beat.
  for (let i = 0; i < 3; i += 1) {
    t.mock.timers.tick(2000);
    assert.equal((await socket.nextSent()).type, PacketType.HEARTBEAT);
  }
  assert.equal(client.closed, false);
  t.mock.timers.tick(2000);
  assert.equal((await closed).detail.reason, 'server silent for too long');
});
