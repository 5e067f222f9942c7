// The chat page: joins the room with a nick, keeps the member list, shows and sends
// messages. Routes and pushes are the chat example's (examples/chat/src/lib.rs).

import { PitayaClient } from './pitaya.mjs';

// The join answer names nobody, and onNewUser carries only this text; the chat contract
// fixes its shape, so the nick is what follows the prefix.
const NEW_USER_PREFIX = 'New user: ';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  join: $('join'),
  nick: $('nick'),
  joinButton: $('join-button'),
  room: $('room'),
  members: $('members'),
  messages: $('messages'),
  say: $('say'),
  text: $('text'),
  send: $('send'),
};

let client = null;
let me = null;
const members = new Set();

ui.join.addEventListener('submit', (event) => {
  event.preventDefault();
  join(ui.nick.value);
});

ui.say.addEventListener('submit', (event) => {
  event.preventDefault();
  const content = ui.text.value;
  if (!client || client.closed || content === '') return;
  client.notify('room.room.message', { name: me, content });
  ui.text.value = '';
});

async function join(nick) {
  setStatus('connecting', 'Connecting…');
  ui.joinButton.disabled = true;
  let connection = null;
  try {
    connection = await PitayaClient.connect(await webSocketUrl());
    client = connection;
    me = nick;
    listen(connection);
    await connection.request('room.room.join', { name: nick });
    ui.join.hidden = true;
    ui.room.hidden = false;
    ui.send.disabled = false;
    ui.text.focus();
    setStatus('joined', `Joined as ${nick}.`);
  } catch (error) {
    client = null;
    connection?.close(error.message);
    setStatus('error', `Cannot join: ${error.message}`);
    ui.joinButton.disabled = false;
  }
}

// Pushes come before the join answer (onMembers), so listen before asking.
function listen(connection) {
  connection.on('onMembers', (body) => {
    members.clear();
    for (const name of body?.members ?? []) members.add(String(name));
    renderMembers();
  });
  connection.on('onNewUser', (body) => {
    const content = String(body?.content ?? '');
    if (content.startsWith(NEW_USER_PREFIX)) members.add(content.slice(NEW_USER_PREFIX.length));
    renderMembers();
    addLine('notice', null, content);
  });
  // Any member may send any JSON here: show what is there, as text.
  connection.on('onMessage', (body) => {
    addLine('message', String(body?.name ?? '?'), String(body?.content ?? ''));
  });
  connection.addEventListener('close', ({ detail }) => {
    if (connection !== client) return;
    ui.send.disabled = true;
    ui.join.hidden = false;
    ui.joinButton.disabled = false;
    setStatus('closed', `Disconnected: ${detail.reason}`);
  });
}

// The page's own config.json names the acceptor's port; `?ws=<url>` overrides it.
async function webSocketUrl() {
  const override = new URLSearchParams(location.search).get('ws');
  if (override) return override;
  const response = await fetch('config.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json answered HTTP ${response.status}`);
  const { wsPort } = await response.json();
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.hostname}:${wsPort}/`;
}

// Text from the network only ever goes into textContent, never into markup.
function renderMembers() {
  const items = [...members].sort().map((name) => {
    const item = document.createElement('li');
    item.textContent = name;
    if (name === me) item.className = 'me';
    return item;
  });
  ui.members.replaceChildren(...items);
}

function addLine(kind, from, content) {
  const item = document.createElement('li');
  item.className = kind;
  if (from !== null) {
    const name = document.createElement('span');
    name.className = 'from';
    name.textContent = from;
    item.append(name);
  }
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = content;
  item.append(text);
  ui.messages.append(item);
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}
