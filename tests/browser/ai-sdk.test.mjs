// The official AI SDK (`ai`) in Chromium against the real binary and the fake
// provider: tests/browser/ai-sdk-page/ is a chat page on the SDK's Chat
// (AbstractChat, what useChat wraps), bundled for the browser here with
// esbuild into a temp dir and served by the server itself (--web-dir), over the default HTTP transport (DefaultChatTransport) and over one
// WebSocket (/v1/ai-sdk/ws; `ai` 6 ships no WebSocket transport, the page
// has one of its own). For each transport: a streamed answer drawn in the
// page; a reload mid-stream resumed with nothing lost or doubled; an approval
// answered through the SDK's addToolApprovalResponse from a button; stop().
// Over the socket also a network cut mid-stream, resumed after the last
// sequence; every frame of the socket is checked against protocol/schema.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import {
  REPO,
  fakeTarget,
  httpRequest,
  itest,
  offSchemaFrames,
  openPage,
  sleep,
  useBrowser,
  useFakeProvider,
  writeRoutesFile,
} from './helpers.mjs';
import { frameSchemaError } from '../integration/schemas.mjs';

const browser = useBrowser();
const fp = useFakeProvider();

// The page's bundle, built for this run (never committed).
let BUNDLE;
before(async () => {
  const esbuild = await import('esbuild');
  BUNDLE = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-aisdk-page-'));
  const src = path.join(REPO, 'tests', 'browser', 'ai-sdk-page');
  await esbuild.build({
    entryPoints: [path.join(src, 'app.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    outdir: BUNDLE,
    logLevel: 'error',
  });
  fs.copyFileSync(path.join(src, 'index.html'), path.join(BUNDLE, 'index.html'));
});
after(() => BUNDLE && fs.rmSync(BUNDLE, { recursive: true, force: true }));

const TOKENS = Array.from({ length: 30 }, (_, i) => `w${i} `);
const FULL = TOKENS.join('');

/** A server serving the page, whose default route is the fake provider under prefix P (extra: more arguments). */
function startWithProvider(startServer, P, extra = []) {
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  return startServer({ args: ['--web-dir', BUNDLE, '--routes', routes, ...extra], env: { FAKE_KEY: 'fake-key-1' } });
}

/**
 * The socket between the page and /v1/ai-sdk/ws through a playwright route:
 * every frame checked against protocol/schema (a mismatch fails the test)
 * and kept; cut() drops every open socket as a lost network would.
 */
async function tapSocket(page) {
  const tap = { sent: [], received: [], live: new Set() };
  await page.routeWebSocket(/\/v1\/ai-sdk\/ws/, (ws) => {
    const server = ws.connectToServer();
    const pair = { ws, server };
    tap.live.add(pair);
    ws.onMessage((m) => {
      const f = JSON.parse(String(m));
      tap.sent.push(f);
      const bad = frameSchemaError('ai-sdk-ws.client', f);
      if (bad) offSchemaFrames.push(bad);
      server.send(m);
    });
    server.onMessage((m) => {
      const f = JSON.parse(String(m));
      tap.received.push(f);
      const bad = frameSchemaError('ai-sdk-ws.server', f);
      if (bad) offSchemaFrames.push(bad);
      ws.send(m);
    });
    ws.onClose(() => tap.live.delete(pair));
  });
  tap.cut = async () => {
    for (const { ws, server } of tap.live) {
      await ws.close({ code: 3000, reason: 'network cut' });
      await server.close({ code: 3000, reason: 'network cut' });
    }
    tap.live.clear();
  };
  return tap;
}

/** The page for chat `chat` over `transport` ('http' or 'ws'): {page, problems, tap}. */
async function openChat(srv, { transport, chat, agent }) {
  const { page, problems } = await openPage(browser);
  const tap = transport === 'ws' ? await tapSocket(page) : null;
  const q = new URLSearchParams({ transport, chat, ...(agent ? { agent } : {}) });
  await page.goto(`${srv.url}/index.html?${q}`);
  await page.waitForFunction(() => window.app);
  return { page, problems, tap };
}

/** Type a message and send it as a user would. */
async function send(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

const shown = (page) =>
  page.evaluate(() => [...document.querySelectorAll('#messages li')].map((li) => [li.className, li.textContent]));
const assistantText = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('#messages li.assistant p.text')].map((p) => p.textContent).join(''),
  );
const waitStatus = (page, s, timeout = 10_000) =>
  page.waitForFunction((want) => document.getElementById('status').textContent === want, s, { timeout });

/** Wait until the page shows at least n words of the answer. */
const waitWords = (page, n) =>
  page.waitForFunction(
    (k) =>
      [...document.querySelectorAll('#messages li.assistant p.text')]
        .map((p) => p.textContent)
        .join('')
        .split(' ')
        .filter(Boolean).length >= k,
    n,
  );

for (const transport of ['http', 'ws']) {
  itest(
    `AI SDK in Chromium (${transport}): a streamed answer from the fake provider, drawn in the page`,
    async ({ startServer }) => {
      const P = `br-aisdk-basic-${transport}`;
      fp.script({ tokens: ['Hel', 'lo', ' from', ' Tether'], token_delay_ms: 20, match: { prefix: P } });
      const srv = await startWithProvider(startServer, P);
      const { page, problems, tap } = await openChat(srv, { transport, chat: `bA${transport}` });
      await send(page, 'hi from the browser');
      await page.waitForFunction(() => document.querySelector('#messages li.assistant p.text')?.textContent);
      await waitStatus(page, 'ready');
      assert.deepEqual(await shown(page), [
        ['msg user', 'hi from the browser'],
        ['msg assistant', 'Hello from Tether'],
      ]);
      assert.ok(JSON.stringify(fp.requests({ prefix: P })[0].body.messages).includes('hi from the browser'));
      if (tap) {
        assert.deepEqual(
          tap.sent.map((f) => f.type),
          ['send'],
        );
        assert.equal(tap.received.at(-1).type, 'end');
      }
      assert.deepEqual(problems, []);
      await page.close();
    },
    { timeout: 40_000 },
  );

  itest(
    `AI SDK in Chromium (${transport}): a reload mid-stream resumes the answer, nothing lost or doubled`,
    async ({ startServer }) => {
      const P = `br-aisdk-reload-${transport}`;
      fp.script({ tokens: TOKENS, token_delay_ms: 150, match: { prefix: P } });
      const srv = await startWithProvider(startServer, P);
      const chat = `bB${transport}`;
      const { page, problems } = await openChat(srv, { transport, chat });
      await send(page, 'a long one please');
      await waitWords(page, 4);
      const before = await assistantText(page);
      assert.ok(before.length < FULL.length, `mid-stream: ${before}`);
      await page.reload(); // the page and its connection go; the run does not
      await page.waitForFunction(() => window.app);
      assert.equal(await page.evaluate(() => window.app.resumed), 'ready');
      assert.deepEqual(await shown(page), [
        ['msg user', 'a long one please'],
        ['msg assistant', FULL],
      ]);
      assert.equal(fp.requests({ prefix: P }).length, 1, 'one call to the model');
      assert.deepEqual(problems, []);
      await page.close();
    },
    { timeout: 40_000 },
  );

  itest(
    `AI SDK in Chromium (${transport}): an approval answered with the SDK's addToolApprovalResponse`,
    async ({ startServer }) => {
      const P = `br-aisdk-approval-${transport}`;
      const mails = [];
      const tools = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          mails.push(JSON.parse(body));
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ sent: true }));
        });
      });
      await new Promise((r) => tools.listen(0, '127.0.0.1', r));
      try {
        const files = mailerFiles(`http://127.0.0.1:${tools.address().port}/mail`);
        const approve = transport === 'ws'; // one transport approves, the other denies
        fp.script([
          { tool_calls: [{ id: 'm1', name: 'send_mail', arguments: '{"to":"a@example.com"}' }], match: { prefix: P } },
          { text: approve ? 'Sent.' : 'Not sent.', match: { prefix: P } },
        ]);
        const srv = await startWithProvider(startServer, P, files);
        const { page, problems } = await openChat(srv, { transport, chat: `bC${transport}`, agent: 'mailer' });
        await send(page, 'mail a@example.com');
        const tool = page.locator('#messages .tool[data-tool=send_mail][data-state=approval-requested]');
        await tool.waitFor();
        await waitStatus(page, 'ready');
        await tool.locator(approve ? 'button.approve' : 'button.deny').click();
        await page.waitForFunction(
          (want) =>
            [...document.querySelectorAll('#messages li.assistant')].some((li) => li.textContent.includes(want)),
          approve ? 'Sent.' : 'Not sent.',
        );
        await waitStatus(page, 'ready');
        const second = JSON.stringify(fp.requests({ prefix: P })[1].body.messages);
        if (approve) {
          assert.deepEqual(mails, [{ to: 'a@example.com' }], 'the tool ran once, with what was shown');
          assert.match(second, /sent/);
        } else {
          assert.deepEqual(mails, [], 'a refused call does not run');
          assert.match(second, /the user refused this call; it was not run/);
        }
        assert.deepEqual(problems, []);
        await page.close();
      } finally {
        await new Promise((r) => tools.close(r));
      }
    },
    { timeout: 40_000 },
  );

  itest(
    `AI SDK in Chromium (${transport}): stop() mid-stream`,
    async ({ startServer }) => {
      const P = `br-aisdk-stop-${transport}`;
      fp.script({ tokens: TOKENS, token_delay_ms: 150, match: { prefix: P } });
      const srv = await startWithProvider(startServer, P);
      const chat = `bD${transport}`;
      const { page, problems, tap } = await openChat(srv, { transport, chat });
      await send(page, 'then stop');
      await waitWords(page, 3);
      await page.click('#stop');
      await waitStatus(page, 'ready');
      const stopped = await assistantText(page);
      assert.ok(stopped.length < FULL.length, `stopped short: ${stopped}`);
      await sleep(300);
      assert.equal(await assistantText(page), stopped, 'nothing more is drawn after stop');
      if (transport === 'ws') {
        // Over the socket stop() is an explicit abort: the run is cancelled.
        assert.ok(tap.sent.some((f) => f.type === 'abort' && f.chatId === chat));
        let st = 200;
        for (let i = 0; i < 100 && st !== 204; i++) {
          st = (await httpRequest(srv.port, 'GET', `/v1/ai-sdk/chat/${chat}/stream`)).status;
          if (st !== 204) await sleep(50);
        }
        assert.equal(st, 204, 'the run stopped');
        const log = await httpRequest(srv.port, 'GET', `/v1/ai-sdk/chat/${chat}/stream?after=1`);
        assert.match(log.body, /"type":"data-tether-discard"[^\n]*"reason":"cancelled"/);
        assert.ok(!log.body.includes('w29'), 'the answer was cut short');
      } else {
        // Over HTTP a closed request never cancels a run (PROTOCOL.md): it
        // goes on, and the page reloaded shows the whole answer.
        await page.reload();
        await page.waitForFunction(() => window.app);
        assert.equal(await page.evaluate(() => window.app.resumed), 'ready');
        assert.equal(await assistantText(page), FULL);
      }
      assert.deepEqual(problems, []);
      await page.close();
    },
    { timeout: 40_000 },
  );
}

itest(
  'AI SDK in Chromium (ws): the network cut mid-stream, resumed after the last sequence in the same message',
  async ({ startServer }) => {
    const P = 'br-aisdk-cut';
    fp.script({ tokens: TOKENS, token_delay_ms: 150, match: { prefix: P } });
    const srv = await startWithProvider(startServer, P);
    const chat = 'bEws';
    const { page, tap } = await openChat(srv, { transport: 'ws', chat });
    await send(page, 'through a bad network');
    await waitWords(page, 4);
    await tap.cut();
    await waitStatus(page, 'error');
    const partial = await assistantText(page);
    assert.ok(partial.length < FULL.length, partial);
    const last = await page.evaluate((id) => window.app.transport.lastSequence.get(id), chat);
    assert.ok(last > 0, 'a sequence was seen');
    // What an app does when the network is back: resumeStream().
    await page.evaluate(() => window.app.chat.resumeStream());
    await waitStatus(page, 'ready');
    const resume = tap.sent.find((f) => f.type === 'resume');
    assert.deepEqual(resume, { type: 'resume', chatId: chat, lastSequence: last });
    const after = tap.received.slice(tap.received.findLastIndex((f) => f.type === 'start'));
    assert.ok(
      after.filter((f) => f.type === 'chunk' && f.sequence > 0).every((f) => f.sequence > last),
      'only what was missed is sent again',
    );
    assert.deepEqual(await shown(page), [
      ['msg user', 'through a bad network'],
      ['msg assistant', FULL],
    ]);
    await page.close();
  },
  { timeout: 40_000 },
);

/** --tools and --agents for an assistant "mailer" whose send_mail waits for approval. */
function mailerFiles(url) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-br-aisdk-'));
  const tools = path.join(dir, 'tools.json');
  const obj = { type: 'object', additionalProperties: false };
  const tool = { name: 'send_mail', description: 'Send an e-mail', url, timeout_ms: 2000, approval: true };
  tool.parameters = { ...obj, properties: { to: { type: 'string' } }, required: ['to'] };
  fs.writeFileSync(tools, JSON.stringify({ tools: [tool] }));
  const agents = path.join(dir, 'agents.json');
  const mailer = { name: 'mailer', description: 'Sends mail', tools: ['send_mail'], max_tool_rounds: 2 };
  fs.writeFileSync(agents, JSON.stringify({ agents: [mailer] }));
  return ['--tools', tools, '--agents', agents];
}
