// A server upgrade (close 1012, server/README.md "Upgrade") as the client and
// the page live it: web/tether-client.js reconnects at once without an
// error and resumes the stream; the page says "updating…", never an error.
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SessionView, TetherClient } from '../../web/tether-client.js';
import { startTakeover } from '../integration/takeover.mjs';
import {
  itest,
  lastAssistantText,
  newSession,
  openApp,
  openPage,
  say,
  sleep,
  until,
  waitIdle,
  useBrowser,
} from './helpers.mjs';

const browser = useBrowser();

itest(
  'close 1012 (upgrade): the client reconnects at once to the new process, no client.error, the stream completes once',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--upgrade-grace-ms', '20000'] });
    // A long backoff: a reconnect that waited for it would show in the timing.
    const c = new TetherClient({ url: () => srv.wsUrl, WebSocket, client: 'upgrade-test/1', backoffBaseMs: 4000 });
    const states = [];
    const errors = [];
    const events = [];
    c.on('connection', (s, info) => states.push({ s, restart: Boolean(info?.restart), at: Date.now() }));
    c.on('client.error', (e) => errors.push(e));
    c.on('*', (ev) => events.push(ev));
    let next;
    try {
      await c.connect();
      const words = Array.from({ length: 25 }, (_, i) => `w${i}`).join(' ');
      const { session } = await c.open('echo', { input: { delay_ms: 40 } });
      const v = new SessionView(session);
      c.on('*', (ev) => v.apply(ev));
      await c.say(session, words);
      await until(() => v.assistantText().split(' ').length >= 4, 3000, 'a few words');
      next = startTakeover(srv.port, srv.dataDir, ['--upgrade-grace-ms', '20000']);
      // A say while the old process hands over: left to the new one (1012 at
      // once, re-sent by the client after reconnecting), answered once.
      await until(() => srv.output.includes('handing over to a new process'), 5000, 'hand-over begun');
      const again = c.say(session, 'again');
      const exit = await srv.exited;
      assert.equal(exit.code, 0, srv.tail());
      await until(() => c.state === 'open' && states.length > 2, 8000, 'open again');
      const closedAt = states.find((x) => x.s === 'reconnecting').at;
      const reopenedAt = states.at(-1).at;
      assert.ok(reopenedAt - closedAt < 2000, `reopened ${reopenedAt - closedAt} ms after 1012`);
      assert.deepEqual(
        states.map((x) => [x.s, x.restart]),
        [
          ['connecting', false],
          ['open', false],
          ['reconnecting', true],
          ['open', false],
        ],
      );
      await until(() => v.messages.length >= 2 && !v.messages[1].streaming, 5000, 'the first answer');
      assert.equal(v.messages[1].text, words, 'the answer finished by the old process, not re-run');
      const seqs = events.filter((e) => e.session === session).map((e) => e.seq);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => seqs[0] + i),
        'every seq once, in order',
      );
      assert.ok(!events.some((e) => e.type === 'message.discard'), 'nothing discarded');
      assert.deepEqual(errors, []);
      assert.equal((await again).type, 'ok');
      await until(() => v.messages.length === 4 && v.state === 'idle' && !v.streaming, 5000, 'second turn');
      assert.deepEqual(
        v.messages.map((m) => [m.role, m.text]),
        [
          ['user', words],
          ['assistant', words],
          ['user', 'again'],
          ['assistant', 'again'],
        ],
      );
      assert.match(next.output, /"data directory owned"/);
      assert.match(srv.output, /"requests_left_to_new_process":[1-9]/, 'the say was left to the new process');
    } finally {
      c.close();
      if (next && next.proc.exitCode === null) next.proc.kill('SIGKILL');
      if (next) await next.exited;
      await sleep(10);
    }
  },
  { timeout: 40_000 },
);

itest(
  'the page through an upgrade: "updating…", never "reconnecting…" or an alert; the answer completes once',
  async ({ startServer }) => {
    const args = ['--upgrade-grace-ms', '20000', '--echo-delay-ms', '40'];
    const srv = await startServer({ args });
    const { page, problems } = await openPage(browser);
    let next;
    try {
      await openApp(page, srv);
      await page.evaluate(() => {
        window.__conn = [];
        const el = document.getElementById('conn');
        new MutationObserver(() => window.__conn.push(el.textContent)).observe(el, {
          childList: true,
          characterData: true,
          subtree: true,
        });
      });
      await newSession(page, 'echo');
      const words = Array.from({ length: 25 }, (_, i) => `w${i}`).join(' ');
      await say(page, words);
      await page.waitForFunction(() => /w3/.test(document.querySelector('#timeline .msg.assistant')?.textContent));
      next = startTakeover(srv.port, srv.dataDir, args);
      assert.equal((await srv.exited).code, 0, srv.tail());
      await page.waitForSelector('#conn[data-state=open]', { timeout: 8000 });
      await waitIdle(page);
      assert.equal(await lastAssistantText(page), words);
      const seen = await page.evaluate(() => window.__conn);
      assert.ok(seen.includes('updating…'), JSON.stringify(seen));
      assert.ok(!seen.some((t) => /reconnecting|offline/.test(t)), JSON.stringify(seen));
      const alerts = await page.locator('[role=alert]:visible').count();
      assert.equal(alerts, 0, 'no alert shown');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
      if (next && next.proc.exitCode === null) next.proc.kill('SIGKILL');
      if (next) await next.exited;
    }
  },
  { timeout: 40_000 },
);
