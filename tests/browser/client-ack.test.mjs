// web/tether-client.js against a scripted socket (no server): an ack is sent
// only on the socket its session is attached on. After a reconnect (a 1012
// of an upgrade, or any drop) an ack timer that fires before the re-attach
// must not send on the new socket: the server would answer not_found, which
// the page would show as an error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TetherClient } from '../../web/tether-client.js';
import { scriptedWebSocket } from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ScriptedWS = scriptedWebSocket();

const ev = (seq) => ({ type: 'state', session: 's_1', seq, ts: '2026-01-01T00:00:00Z', state: 'running' });
const welcome = { type: 'welcome', user: 'local', heartbeat_s: 25, agents: ['echo'] };

test('no ack on a new socket before the session is re-attached there', async () => {
  const c = new TetherClient({ url: 'ws://127.0.0.1:1/v1/ws', WebSocket: ScriptedWS, ackIntervalMs: 10 });
  const errors = [];
  c.on('client.error', (e) => errors.push(e));
  try {
    const connected = c.connect();
    await sleep(0);
    const ws1 = ScriptedWS.all[0];
    ws1.open();
    ws1.recv(welcome);
    await connected;
    const opened = c.open('echo');
    await sleep(0);
    ws1.reply('session.open', { session: 's_1', head: 0 });
    await opened;
    ws1.recv(ev(1));
    await sleep(30);
    assert.deepEqual(
      ws1.sent.filter((m) => m.type === 'ack'),
      [{ type: 'ack', session: 's_1', seq: 1 }],
    );
    ws1.recv(ev(2)); // arms the ack timer...
    ws1.drop(1012); // ...and the socket goes: the client reconnects at once
    await sleep(5);
    const ws2 = ScriptedWS.all[1];
    assert.ok(ws2, 'reconnected at once after 1012');
    ws2.open(); // the timer fires while hello waits for its welcome
    await sleep(30);
    assert.deepEqual(
      ws2.sent.map((m) => m.type),
      ['hello'],
      'nothing but hello before the welcome',
    );
    ws2.recv(welcome);
    await sleep(0);
    const attach = ws2.sent.find((m) => m.type === 'session.attach');
    assert.deepEqual([attach.session, attach.after], ['s_1', 2]);
    ws2.reply('session.attach', { head: 3, recovered: false });
    await sleep(0);
    ws2.recv(ev(3));
    await sleep(30);
    assert.deepEqual(
      ws2.sent.filter((m) => m.type === 'ack'),
      [{ type: 'ack', session: 's_1', seq: 3 }],
    );
    assert.deepEqual(errors, []);
  } finally {
    c.close();
  }
});
