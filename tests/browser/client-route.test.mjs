// web/tether-client.js against a scripted socket (no server): with
// routeSession, every connection URL carries ?session= of the session the
// client is focused on (the last opened or attached), other query
// parameters kept, so a load balancer hashing on it (server/haproxy.cfg)
// sends each reconnect to that session's node. Without it, URLs are as given.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TetherClient } from '../../web/tether-client.js';
import { scriptedWebSocket } from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const welcome = { type: 'welcome', user: 'local', heartbeat_s: 25, agents: ['echo'] };

const scripted = () => scriptedWebSocket({ welcome });

/** Drop the socket (1012: the client reconnects at once) and open the next one. */
async function reconnect(WS) {
  const n = WS.all.length;
  WS.all.at(-1).drop(1012);
  await sleep(5);
  assert.equal(WS.all.length, n + 1, 'reconnected');
  WS.all.at(-1).open();
  await sleep(0);
  return WS.all.at(-1);
}

const params = (url) => Object.fromEntries(new URL(url).searchParams);

test('routeSession: the focused session rides on every connection URL, other parameters kept', async () => {
  const WS = scripted();
  const c = new TetherClient({ url: 'ws://127.0.0.1:1/v1/ws?v=2&x=a%20b', WebSocket: WS, routeSession: true });
  try {
    const connected = c.connect();
    await sleep(0);
    assert.equal(WS.all[0].url, 'ws://127.0.0.1:1/v1/ws?v=2&x=a%20b', 'no session yet: the URL as given');
    WS.all[0].open();
    await connected;

    const opened = c.open('echo');
    await sleep(0);
    WS.all[0].reply('session.open', { session: 's_1', head: 0 });
    await opened;
    assert.equal(c.focused(), 's_1');
    let ws = await reconnect(WS);
    assert.deepEqual(params(ws.url), { v: '2', x: 'a b', session: 's_1' });
    ws.reply('session.attach', { session: 's_1', head: 0, recovered: true });

    const attached = c.attach('s_2');
    await sleep(0);
    ws.reply('session.attach', { session: 's_2', head: 0, recovered: true });
    await attached;
    ws = await reconnect(WS);
    assert.deepEqual(params(ws.url), { v: '2', x: 'a b', session: 's_2' }, 'one session parameter, the last attached');

    const detached = c.detach('s_2');
    await sleep(0);
    ws.reply('session.detach', { session: 's_2', detached: true });
    await detached;
    assert.equal(c.focused(), 's_1', 'back to the session still attached');

    // An attach the server refuses leaves the focus where it was.
    const refused = c.attach('s_gone');
    await sleep(0);
    const m = ws.sent.findLast((x) => x.type === 'session.attach');
    ws.recv({ type: 'error', re: m.id, code: 'not_found', message: 'no such session' });
    await assert.rejects(refused, { code: 'not_found' });
    assert.equal(c.focused(), 's_1');

    c.focus('s_7');
    assert.deepEqual(params(c.connectionUrl()), { v: '2', x: 'a b', session: 's_7' });
    c.focus(null);
    assert.equal(c.connectionUrl(), 'ws://127.0.0.1:1/v1/ws?v=2&x=a%20b');
  } finally {
    c.close();
  }
});

test('routeSession with a url function and routeParam; focus() before connect routes the first socket', async () => {
  const WS = scripted();
  let calls = 0;
  const c = new TetherClient({
    url: () => `ws://127.0.0.1:${++calls}/v1/ws`,
    WebSocket: WS,
    routeSession: true,
    routeParam: 'sid',
  });
  try {
    c.focus('s_9');
    const connected = c.connect();
    await sleep(0);
    assert.equal(WS.all[0].url, 'ws://127.0.0.1:1/v1/ws?sid=s_9');
    WS.all[0].open();
    await connected;
    const ws = await reconnect(WS);
    assert.equal(ws.url, 'ws://127.0.0.1:2/v1/ws?sid=s_9', 'the function is asked at every connect');
  } finally {
    c.close();
  }
});

test('without routeSession the URL is never changed', async () => {
  const WS = scripted();
  const c = new TetherClient({ url: 'ws://127.0.0.1:1/v1/ws', WebSocket: WS });
  try {
    const connected = c.connect();
    await sleep(0);
    WS.all[0].open();
    await connected;
    const opened = c.open('echo');
    await sleep(0);
    WS.all[0].reply('session.open', { session: 's_1', head: 0 });
    await opened;
    const ws = await reconnect(WS);
    assert.equal(ws.url, 'ws://127.0.0.1:1/v1/ws');
    assert.equal(c.focused(), 's_1', 'the focus is kept either way');
  } finally {
    c.close();
  }
});
