// Regenerate and edit-and-resend on the page, in headless Chromium against
// the real server: the buttons where they apply, the new branch shown (and
// after a reload), and the header's total adding up over a turn of several
// billed model calls (tool rounds), with the usage line saying how many.
import assert from 'node:assert/strict';

import {
  fakeTarget,
  itest,
  newSession,
  openApp,
  openPage,
  say,
  screenshot,
  waitIdle,
  writeRoutesFile,
  useBrowser,
  useFakeProvider,
  scriptToolRounds,
} from './helpers.mjs';

const browser = useBrowser();
const fp = useFakeProvider();

const texts = (page, role) => page.locator(`#timeline .msg.${role} .body`).allTextContents();

itest(
  'regenerate the last answer and edit a turn: the page shows the new branch, also after a reload',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const { page, problems } = await openPage(browser);
    try {
      await openApp(page, srv);
      await newSession(page, 'echo');
      await say(page, 'first turn');
      await waitIdle(page);
      await say(page, 'second turn');
      await waitIdle(page);
      // Regenerate only under the last answer; Edit on each of the user's turns.
      assert.equal(await page.locator('#timeline .msg.assistant .regenerate').count(), 1);
      assert.equal(await page.locator('#timeline .msg.assistant:last-of-type .regenerate').count(), 1);
      assert.equal(await page.locator('#timeline .msg.user .edit').count(), 2);
      await screenshot(page, 'regenerate-buttons');

      const before = await page.getAttribute('#timeline .msg.assistant >> nth=-1', 'data-message-id');
      await page.click('#timeline .regenerate');
      await page.waitForSelector('#timeline .notice >> text=Regenerated');
      await waitIdle(page);
      const now = await page.getAttribute('#timeline .msg.assistant >> nth=-1', 'data-message-id');
      assert.notEqual(now, before, 'a new answer');
      assert.deepEqual(await texts(page, 'assistant'), ['first turn', 'second turn']);
      const whole = await page.locator('#timeline .msg').allInnerTexts();
      assert.deepEqual(
        whole.map((t) => t.replace(/\s+/g, ' ').trim()),
        ['YOU first turn Edit', 'ASSISTANT first turn', 'YOU second turn Edit', 'ASSISTANT second turn Regenerate'],
      );
      await screenshot(page, 'regenerated');

      // Edit the first turn: what followed it is replaced by the new branch.
      await page.click('#timeline .msg.user >> nth=0 >> .edit');
      const field = page.locator('#timeline .edit-text');
      assert.equal(await field.inputValue(), 'first turn');
      assert.equal(await page.evaluate(() => document.activeElement.className), 'edit-text');
      await screenshot(page, 'edit-form');
      await field.press('Escape'); // cancel leaves it as it was
      await field.waitFor({ state: 'detached' }); // the form goes once the page has redrawn
      assert.deepEqual(await texts(page, 'user'), ['first turn', 'second turn']);
      await page.click('#timeline .msg.user >> nth=0 >> .edit');
      await page.fill('#timeline .edit-text', 'edited turn');
      await page.press('#timeline .edit-text', 'Enter');
      await page.waitForSelector('#timeline .notice >> text=You edited a message');
      await waitIdle(page);
      assert.deepEqual(await texts(page, 'user'), ['edited turn']);
      assert.deepEqual(await texts(page, 'assistant'), ['edited turn']);
      await screenshot(page, 'edited');

      // A reload replays the log: the same branch, the superseded turns hidden.
      await page.reload();
      await page.waitForSelector('#conn[data-state=open]');
      await waitIdle(page);
      assert.deepEqual(await texts(page, 'user'), ['edited turn']);
      assert.deepEqual(await texts(page, 'assistant'), ['edited turn']);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
  { timeout: 60_000 },
);

itest(
  "the header's total adds up over a turn's three billed calls; agents that cannot regenerate show no button",
  async ({ startServer }) => {
    const P = 'ui-calls';
    const usage = { prompt_tokens: 100, completion_tokens: 10 };
    const agents = scriptToolRounds(fp, P, usage);
    const routes = writeRoutesFile({
      routes: { default: [fakeTarget(fp.url, P)] },
      prices: { 'gpt-4o-mini': { prompt_per_mtok: 1000, completion_per_mtok: 2000 } },
    });
    const srv = await startServer({ args: ['--routes', routes, '--agents', agents], env: { FAKE_KEY: 'k' } });
    const { page, problems } = await openPage(browser);
    try {
      await openApp(page, srv);
      await newSession(page, 'helper');
      await say(page, 'six times seven, twice');
      await waitIdle(page);
      // 3 calls of 110 tokens at $0.1 + $0.02 each.
      assert.equal(await page.textContent('#total-usage'), '330 tokens · $0.3600');
      assert.match(await page.textContent('#timeline .usage-line'), /300 in · 30 out · \$0\.3600 · 3 model calls/);
      assert.equal(await page.locator('#timeline .regenerate').count(), 1);
      await screenshot(page, 'usage-three-calls');

      // The doc analyst (a step-engine agent) takes no regenerate: no button.
      const info = await page.evaluate(() => window.tether.client.welcome.agent_info);
      assert.equal(info.find((a) => a.name === 'doc-analyst').rewind, false);
      assert.equal(info.find((a) => a.name === 'helper').rewind, true);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
  { timeout: 60_000 },
);
