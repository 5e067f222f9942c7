// Checks the chat example against a client nobody here wrote: every packet and message
// below is encoded and decoded by pomelo-protocol, the Pomelo reference implementation
// of the packet and message format that Pitaya speaks.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const zlib = require('node:zlib');
const { spawn } = require('node:child_process');
const { Package, Message } = require('pomelo-protocol');

const CHAT_BIN = process.env.CHAT_BIN || path.resolve(__dirname, '../../target/debug/chat');
// Bounds every wait, so a missing answer fails the test instead of hanging it.
const WAIT_MS = 15000;
// Flag bit of a Response whose body is an error payload (spec 4.2).
const ERROR_FLAG = 0x20;

let server;
let tcpPort;

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function withTimeout(promise, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// Starts the chat binary and resolves once it logs that it is serving.
async function startChat() {
  tcpPort = await freePort();
  const wsPort = await freePort();
  const child = spawn(CHAT_BIN, [], {
    env: {
      ...process.env,
      CHAT_TCP_ADDR: `127.0.0.1:${tcpPort}`,
      CHAT_WS_ADDR: `127.0.0.1:${wsPort}`,
      RUST_LOG: 'info',
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const started = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      if (output.includes('server started')) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`chat exited (${code}): ${output}`)));
  });
  await withTimeout(started, `${CHAT_BIN} to start`);
  return child;
}

// A Pitaya client whose wire format is entirely pomelo-protocol's.
class PomeloClient {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.packets = [];
    this.waiters = [];
    socket.on('data', (chunk) => this.onData(chunk));
  }

  static connect(port) {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new PomeloClient(socket)));
      socket.once('error', reject);
    });
  }

  // TCP may cut or merge packets anywhere: hand pomelo-protocol one whole packet at a time.
  onData(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 4) {
      const length = (this.buffer[1] << 16) | (this.buffer[2] << 8) | this.buffer[3];
      if (this.buffer.length < 4 + length) break;
      const packet = Package.decode(this.buffer.subarray(0, 4 + length));
      this.buffer = this.buffer.subarray(4 + length);
      if (packet.type === Package.TYPE_HEARTBEAT) continue;
      const waiter = this.waiters.shift();
      if (waiter) waiter(packet);
      else this.packets.push(packet);
    }
  }

  nextPacket() {
    if (this.packets.length > 0) return Promise.resolve(this.packets.shift());
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), 'a packet');
  }

  send(type, body) {
    this.socket.write(Package.encode(type, body));
  }

  async handshake() {
    const hello = {
      sys: {
        platform: 'node',
        libVersion: 'pomelo-protocol-0.1.6',
        clientBuildNumber: '1',
        clientVersion: '0.1',
      },
      user: {},
    };
    this.send(Package.TYPE_HANDSHAKE, Buffer.from(JSON.stringify(hello)));
    const packet = await this.nextPacket();
    assert.equal(packet.type, Package.TYPE_HANDSHAKE);
    // The answer carries no flag for compression: a zlib header is the only sign (spec 2.2).
    const compressed = packet.body[0] === 0x78;
    const answer = JSON.parse(compressed ? zlib.inflateSync(packet.body) : packet.body);
    this.send(Package.TYPE_HANDSHAKE_ACK);
    return answer;
  }

  request(id, route, body) {
    const data = Buffer.from(JSON.stringify(body));
    this.send(Package.TYPE_DATA, Message.encode(id, Message.TYPE_REQUEST, 0, route, data));
  }

  notify(route, body) {
    const data = Buffer.from(JSON.stringify(body));
    this.send(Package.TYPE_DATA, Message.encode(0, Message.TYPE_NOTIFY, 0, route, data));
  }

  // Returns the next message with its JSON body.
  async nextMessage() {
    const packet = await this.nextPacket();
    assert.equal(packet.type, Package.TYPE_DATA, 'a data packet');
    const message = Message.decode(packet.body);
    const raw = message.compressGzip ? zlib.inflateSync(message.body) : message.body;
    return {
      type: message.type,
      id: message.id,
      route: message.route,
      error: (packet.body[0] & ERROR_FLAG) !== 0,
      body: JSON.parse(raw.toString()),
    };
  }

  async expectPush(route) {
    const message = await this.nextMessage();
    assert.equal(message.type, Message.TYPE_PUSH, `a push on ${route}`);
    assert.equal(message.route, route);
    return message.body;
  }

  // Joins as `name`; returns the onMembers body after checking the exact answer.
  async join(id, name) {
    this.request(id, 'room.room.join', { name });
    let members;
    let answered = false;
    while (members === undefined || !answered) {
      const message = await this.nextMessage();
      if (message.type === Message.TYPE_RESPONSE && !answered) {
        assert.equal(message.id, id);
        assert.equal(message.error, false, JSON.stringify(message.body));
        assert.deepEqual(message.body, { code: 0, result: 'success' });
        answered = true;
      } else if (message.type === Message.TYPE_PUSH && message.route === 'onMembers') {
        members = message.body;
      } else {
        assert.fail(`unexpected message while joining: ${JSON.stringify(message)}`);
      }
    }
    return members;
  }

  close() {
    this.socket.destroy();
  }
}

before(async () => {
  server = await startChat();
});

after(async () => {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await withTimeout(exited, 'the chat server to exit');
});

test('pomelo-protocol client handshakes, joins and hears the room', async () => {
  const first = await PomeloClient.connect(tcpPort);
  const second = await PomeloClient.connect(tcpPort);
  try {
    const answer = await first.handshake();
    assert.equal(answer.code, 200);
    assert.equal(answer.sys.serializer, 'json');
    assert.equal(typeof answer.sys.heartbeat, 'number');
    assert.ok(answer.sys.heartbeat > 0, 'a positive heartbeat interval');

    assert.deepEqual(await first.join(1, 'node'), { members: ['node'] });

    assert.equal((await second.handshake()).code, 200);
    const members = await second.join(1, 'node2');
    assert.deepEqual(Object.keys(members), ['members']);
    assert.deepEqual([...members.members].sort(), ['node', 'node2']);
    assert.deepEqual(await first.expectPush('onNewUser'), { content: 'New user: node2' });

    const said = { name: 'node2', content: 'hello from pomelo-protocol' };
    second.notify('room.room.message', said);
    assert.deepEqual(await second.expectPush('onMessage'), said);
    assert.deepEqual(await first.expectPush('onMessage'), said);
  } finally {
    first.close();
    second.close();
  }
});

test('pomelo-protocol client gets PIT-400 for a join without a name', async () => {
  const client = await PomeloClient.connect(tcpPort);
  try {
    assert.equal((await client.handshake()).code, 200);
    client.request(7, 'room.room.join', { name: '' });
    const message = await client.nextMessage();
    assert.equal(message.type, Message.TYPE_RESPONSE);
    assert.equal(message.id, 7);
    assert.equal(message.error, true);
    assert.equal(message.body.code, 'PIT-400');
  } finally {
    client.close();
  }
});
