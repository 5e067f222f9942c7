// The chat page end to end: the built chat binary serves it, headless Chromium (driven by
// playwright-core) runs it, and its own Pitaya client talks to the WebSocket acceptor.
//
// Environment: CHAT_BIN (the built binary, default target/debug/chat), CHROMIUM_BIN
// (default /usr/bin/chromium), ARTIFACTS_DIR (screenshots, default target/artifacts).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHAT_BIN = process.env.CHAT_BIN || path.join(root, 'target/debug/chat');
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARTIFACTS_DIR = process.env.ARTIFACTS_DIR || path.join(root, 'target/artifacts');
// Bounds every wait, so a page that never shows what we wait for fails the test.
const WAIT_MS = 15000;

let server;
let pageUrl;
let browser;

function withTimeout(promise, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// Starts the chat binary on ephemeral ports; resolves with the page URL it logs once the
// app has started too.
async function startChat() {
  const child = spawn(CHAT_BIN, [], {
    env: {
      ...process.env,
      CHAT_TCP_ADDR: '127.0.0.1:0',
      CHAT_WS_ADDR: '127.0.0.1:0',
      CHAT_HTTP_ADDR: '127.0.0.1:0',
      RUST_LOG: 'info',
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      const page = output.match(/chat page served url=(http:\/\/\S+)/);
      if (page && output.includes('server started')) resolve(page[1]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`chat exited (${code}): ${output}`)));
  });
  pageUrl = await withTimeout(url, `${CHAT_BIN} to serve the page`);
  return child;
}

/** Returns a fresh page (its own browser context) showing the chat; collects its errors. */
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 860, height: 420 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  await page.goto(pageUrl);
  return page;
}

async function join(page, nick) {
  await page.fill('#nick', nick);
  await page.click('#join-button');
}

async function expectJoined(page, nick) {
  const status = page.locator('#status[data-state="joined"]');
  await status.waitFor();
  assert.equal(await status.textContent(), `Joined as ${nick}.`);
  assert.equal(await page.locator('#join').isHidden(), true, 'the join form is hidden');
  assert.equal(await page.locator('#room').isVisible(), true, 'the room is shown');
}

async function expectMember(page, nick) {
  await page.locator('#members').getByText(nick, { exact: true }).waitFor();
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

async function expectMessage(page, from, text) {
  const line = page.locator('#messages li.message').filter({
    has: page.locator('.text').getByText(text, { exact: true }),
  });
  await line.waitFor();
  assert.equal(await line.locator('.from').textContent(), from);
}

async function screenshot(page, name) {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, name);
  await page.screenshot({ path: file });
  return file;
}

before(async () => {
  // A failure screenshot from an earlier run would pass for this run's.
  await rm(path.join(ARTIFACTS_DIR, 'chat-browser-failed.png'), { force: true });
  server = await startChat();
  browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    // playwright adds --headless itself (headless is its default).
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: WAIT_MS,
  });
});

after(async () => {
  await browser?.close();
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await withTimeout(exited, 'the chat server to exit');
});

test('two pages join, list each other, and both show what each says', async (t) => {
  const alice = await openPage();
  const bob = await openPage();
  try {
    await join(alice, 'alice');
    await expectJoined(alice, 'alice');
    await expectMember(alice, 'alice');

    await join(bob, 'bob');
    await expectJoined(bob, 'bob');
    for (const page of [alice, bob]) {
      await expectMember(page, 'alice');
      await expectMember(page, 'bob');
    }
    await alice.getByText('New user: bob', { exact: true }).waitFor();

    await say(bob, 'hello from bob');
    await expectMessage(alice, 'bob', 'hello from bob');
    await expectMessage(bob, 'bob', 'hello from bob');
    await say(alice, 'hi bob, <b>this</b> stays text');
    await expectMessage(bob, 'alice', 'hi bob, <b>this</b> stays text');
    await expectMessage(alice, 'alice', 'hi bob, <b>this</b> stays text');

    assert.deepEqual(await alice.locator('#members li').allTextContents(), ['alice', 'bob']);
    assert.deepEqual([...alice.errors, ...bob.errors], []);
    t.diagnostic(`screenshot: ${await screenshot(alice, 'chat-browser.png')}`);
    t.diagnostic(`screenshot: ${await screenshot(bob, 'chat-browser-bob.png')}`);
  } catch (error) {
    t.diagnostic(`failure screenshot: ${await screenshot(alice, 'chat-browser-failed.png')}`);
    throw error;
  } finally {
    await alice.context().close();
    await bob.context().close();
  }
});

test('the page shows the server refusing a blank nick and lets the user retry', async () => {
  const page = await openPage();
  try {
    await join(page, '   ');
    const status = page.locator('#status[data-state="error"]');
    await status.waitFor();
    assert.match(await status.textContent(), /^Cannot join: PIT-400: /);
    assert.equal(await page.locator('#room').isHidden(), true);

    await join(page, 'carol');
    await expectJoined(page, 'carol');
    await expectMember(page, 'carol');
    assert.deepEqual(page.errors, []);
  } finally {
    await page.context().close();
  }
});
