// The chat page as a user meets it, in headless Chromium against the real
// server: rename and delete in the session list (and another tab told),
// a turn typed while the server is down (a pending bubble, delivered once),
// Markdown tables and the copy button, the remembered agent, light and dark
// themes, and an accessibility check (axe-core, run in the page).
import assert from 'node:assert/strict';
import {
  itest,
  mintJwt,
  newSession,
  openApp,
  openPage,
  say,
  screenshot,
  waitIdle,
  useBrowser,
  axeViolations,
} from './helpers.mjs';

const browser = useBrowser();

const newPage = (size) => openPage(browser, size);
const listTitles = (page) => page.locator('#sessions .session-title').allTextContents();

itest(
  'rename and delete from the session list; another tab is told of the deletion',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const { page, problems } = await newPage();
    const other = await newPage();
    try {
      await openApp(page, srv);
      const first = await newSession(page, 'echo');
      await say(page, 'first words');
      await waitIdle(page);
      const second = await newSession(page, 'echo');
      await say(page, 'second words');
      await waitIdle(page);

      // Rename the first from the list: the field opens in place, Enter saves.
      await page.click(`#sessions li[data-session=${first}] .rename`);
      const field = page.locator(`#sessions li[data-session=${first}] .rename-input`);
      assert.equal(await field.inputValue(), 'first words');
      assert.equal(await page.evaluate(() => document.activeElement.className), 'rename-input');
      await screenshot(page, 'session-rename');
      await field.fill('   ');
      await field.press('Enter');
      await page.waitForSelector(`#sessions li[data-session=${first}] .card-error`);
      await field.fill('Holiday plans');
      await field.press('Enter');
      await page.waitForFunction(
        (id) =>
          document.querySelector(`#sessions li[data-session=${id}] .session-title`)?.textContent === 'Holiday plans',
        first,
      );
      assert.equal(
        await page.evaluate(() => document.activeElement.getAttribute('aria-label')),
        'Rename \u2068Holiday plans\u2069',
        'focus returns to the rename button',
      );
      // Escape leaves a rename without change.
      await page.click(`#sessions li[data-session=${second}] .rename`);
      await page.fill(`#sessions li[data-session=${second}] .rename-input`, 'not this');
      await page.press(`#sessions li[data-session=${second}] .rename-input`, 'Escape');
      assert.ok((await listTitles(page)).includes('second words'));

      // The other tab shows the second session; the first tab deletes it.
      await openApp(other.page, srv, '#' + second);
      await other.page.waitForFunction(() => document.querySelectorAll('#timeline .msg.assistant').length === 1);
      await page.click(`#sessions li[data-session=${second}] .delete`);
      await page.waitForSelector(`#sessions li[data-session=${second}] .confirm-delete`);
      await screenshot(page, 'session-delete-confirm');
      await page.click(`#sessions li[data-session=${second}] .confirm-delete`);
      await page.waitForFunction((id) => !document.querySelector(`#sessions li[data-session="${id}"]`), second);
      assert.equal(await page.locator('#chat').isHidden(), true, 'the deleted session was open: the chat closes');
      assert.deepEqual(await listTitles(page), ['Holiday plans']);
      await other.page.waitForFunction(() => document.getElementById('chat').hidden);
      assert.match(await other.page.locator('#agent-hint').textContent(), /deleted/);
      await screenshot(other.page, 'session-deleted-elsewhere');

      // A reload shows the same: the rename is stored, the deletion too.
      await page.reload();
      await page.waitForSelector('#conn[data-state=open]');
      await page.waitForFunction(() => document.querySelectorAll('#sessions .session-title').length === 1);
      assert.deepEqual(await listTitles(page), ['Holiday plans']);
      assert.deepEqual(problems, []);
      assert.deepEqual(other.problems, []);
    } finally {
      await page.close();
      await other.page.close();
    }
  },
  { timeout: 60_000 },
);

itest(
  'a turn typed while the server is down: a pending bubble, delivered once on reconnect',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      const session = await newSession(page, 'echo');
      await srv.kill9();
      await page.waitForSelector('#conn:not([data-state=open])');
      await page.fill('#text', 'typed while offline');
      await page.press('#text', 'Enter');
      const bubble = page.locator('#timeline .msg.user.pending');
      await bubble.waitFor();
      assert.equal(await bubble.locator('.body').textContent(), 'typed while offline');
      assert.match(await bubble.locator('.pending-mark').textContent(), /Not sent yet/);
      assert.equal(await page.inputValue('#text'), '', 'the composer is free for the next turn');
      await screenshot(page, 'pending-offline');
      await srv.restart();
      await page.waitForSelector('#conn[data-state=open]', { timeout: 10_000 });
      await page.waitForSelector('#timeline .msg.user.pending', { state: 'detached', timeout: 10_000 });
      await waitIdle(page, 10_000);
      const users = await page.locator('#timeline .msg.user .body').allTextContents();
      assert.deepEqual(users, ['typed while offline'], 'shown once');
      assert.equal(await page.locator('#timeline .msg.assistant .body').textContent(), 'typed while offline');
      // The server has it once too.
      const events = await page.evaluate(
        (id) =>
          window.tether.client
            .list()
            .then((l) => l.find((s) => s.session === id))
            .then((s) => s.title),
        session,
      );
      assert.equal(events, 'typed while offline');
      assert.deepEqual(
        problems.filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(p)),
        [],
      );
    } finally {
      await page.close();
    }
  },
  { timeout: 60_000 },
);

itest(
  'Markdown tables, a copy button on code, no usage line without a model',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const { page, problems } = await newPage();
    try {
      await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
      await openApp(page, srv);
      await newSession(page, 'echo');
      // The echo agent sends the text back: the answer is rendered as Markdown.
      await say(
        page,
        '| Name | Size |\n| :--- | ---: |\n| `a.txt` | 12 |\n| <b>x</b> \\| y | 3 |\n\n```sh\nmake run\n```',
      );
      await waitIdle(page);
      const msg = page.locator('#timeline .msg.assistant').last();
      assert.deepEqual(await msg.locator('th').allTextContents(), ['Name', 'Size']);
      assert.deepEqual(await msg.locator('td').allTextContents(), ['a.txt', '12', '<b>x</b> | y', '3']);
      assert.equal(await msg.locator('td code').textContent(), 'a.txt');
      assert.equal(await msg.locator('td b').count(), 0, 'HTML in a cell stays text');
      assert.equal(await msg.locator('td').nth(1).getAttribute('data-align'), 'right');
      assert.equal(await msg.locator('.usage-line').count(), 0);
      assert.equal(await page.locator('#total-usage').textContent(), '', 'no total where no model ran');
      const copy = msg.locator('pre .copy');
      assert.equal(await copy.getAttribute('aria-label'), 'Copy code');
      assert.equal(await msg.locator('pre').textContent(), 'make run', 'the button adds no text to the code');
      await copy.click();
      await page.waitForSelector('pre .copy[data-state=copied]');
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'make run');
      await screenshot(page, 'chat-table-copy');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
  { timeout: 60_000 },
);

itest(
  'the agent picked is remembered; themes follow the system; axe finds no violation',
  async ({ startServer }) => {
    // A configured route (never called here) makes the model agents selectable.
    const srv = await startServer({
      args: ['--echo-delay-ms', '1'],
      env: { OPENAI_API_KEY: 'sk-unused', OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' },
    });
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      await page.selectOption('#agent', 'chat');
      await page.reload();
      await page.waitForSelector('#conn[data-state=open]');
      assert.equal(await page.inputValue('#agent'), 'chat', 'the choice survives a reload');
      // Keyboard: the skip link is the first stop.
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
      await page.selectOption('#agent', 'echo');
      await newSession(page, 'echo');
      await say(page, 'ask');
      await page.waitForSelector('.card.question.pending');

      const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      await page.emulateMedia({ colorScheme: 'light' });
      assert.equal(await bg(), 'rgb(246, 247, 249)');
      assert.deepEqual(await axeViolations(page), [], 'light theme');
      await page.emulateMedia({ colorScheme: 'dark' });
      assert.equal(await bg(), 'rgb(21, 23, 26)');
      await screenshot(page, 'theme-dark');
      assert.deepEqual(await axeViolations(page), [], 'dark theme');

      assert.equal(await page.getAttribute('#timeline', 'aria-label'), 'Conversation');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
  { timeout: 60_000 },
);

itest(
  'the document analyst from the page: what it needs, a file picked, dropped or pasted, the run starts',
  async ({ startServer }) => {
    // A configured route (unreachable: the model steps fail later) makes the analyst selectable.
    const srv = await startServer({
      env: { OPENAI_API_KEY: 'sk-unused', OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' },
    });
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      await page.selectOption('#agent', 'photo-organizer');
      assert.match(await page.locator('#agent-hint').textContent(), /photo library/);
      assert.equal(await page.locator('#doc-panel').isHidden(), true);
      await page.selectOption('#agent', 'doc-analyst');
      const hint = await page.locator('#agent-hint').textContent();
      assert.match(hint, /Extracts a document's text/, 'the server says what it does');
      assert.match(hint, /Needs a model and a document/);
      assert.equal(await page.locator('#doc-panel').isVisible(), true);

      // Nothing given: a clear error, no session.
      await page.click('#new');
      await page.waitForFunction(() => /paste a document/.test(document.getElementById('agent-hint').textContent));
      assert.equal(await page.evaluate(() => window.tether.current), null);

      // A binary file is refused; a Markdown file is read.
      await page.setInputFiles('#doc-file', {
        name: 'photo.png',
        mimeType: 'image/png',
        buffer: Buffer.from([137, 80]),
      });
      await page.waitForFunction(() => /not a text file/.test(document.getElementById('doc-status').textContent));
      await page.setInputFiles('#doc-file', {
        name: 'notes.md',
        mimeType: 'text/markdown',
        buffer: Buffer.from('# Notes\nfirst second third'),
      });
      await page.waitForFunction(() => /read as markdown/.test(document.getElementById('doc-status').textContent));
      assert.equal(await page.inputValue('#doc-text'), '# Notes\nfirst second third');

      // Dropped on the box: replaces it.
      await page.evaluate(() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['one two three four five six'], 'draft.txt', { type: 'text/plain' }));
        document.getElementById('doc-panel').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true }));
      });
      await page.waitForFunction(() => document.getElementById('doc-text').value === 'one two three four five six');
      await screenshot(page, 'doc-analyst-input');
      await page.click('#new');
      await page.waitForFunction(() => window.tether.current && !document.getElementById('chat').hidden);
      // The analyst's first step read the document: six words.
      await page.waitForFunction(() =>
        /extracted 6 words/.test(document.querySelector('#timeline .progress-label')?.textContent || ''),
      );
      assert.equal(await page.inputValue('#doc-text'), '', 'the box is cleared for the next document');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
  { timeout: 60_000 },
);

itest(
  'API-key mode: sign in with a name and a key (the page mints the token), clear errors, sign out',
  async ({ startServer }) => {
    const SECRET = 'chat-page-secret-0123456789abcdef01234567';
    const srv = await startServer({
      args: ['--api-key', 'right-key-0123456789:t1', '--jwt-secret', SECRET, '--echo-delay-ms', '1'],
    });
    const { page, problems } = await newPage();
    try {
      await page.goto(`${srv.url}/`);
      await page.waitForSelector('#auth:not([hidden])');
      await page.waitForSelector('#conn[data-state=held]');
      assert.equal(await page.locator('#conn').textContent(), 'signed out');
      assert.equal(await page.locator('#auth-error').isHidden(), true, 'no error before any attempt');
      assert.deepEqual(await axeViolations(page), [], 'the sign-in screen');

      await page.fill('#auth-user', 'alice');
      await page.fill('#auth-key', 'wrong-key');
      await page.click('#signin');
      await page.waitForSelector('#auth-error:not([hidden])');
      assert.match(await page.locator('#auth-error').textContent(), /API key is not accepted/);
      await screenshot(page, 'signin-error');

      await page.fill('#auth-key', 'right-key-0123456789');
      await page.press('#auth-key', 'Enter');
      await page.waitForSelector('#conn[data-state=open]');
      assert.equal(await page.locator('#auth').isHidden(), true);
      assert.equal(await page.locator('#auth-key').inputValue(), '', 'the key is not kept in the page');
      assert.equal(await page.locator('#signout').isVisible(), true);
      const token = await page.evaluate(() => sessionStorage.getItem('tether.token'));
      const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
      assert.equal(claims.sub, 'alice');
      assert.equal(claims.tenant, 't1');
      await newSession(page, 'echo');
      await say(page, 'signed in');
      await waitIdle(page);

      // Sign out: back to the form, nothing of alice's shown, no retrying.
      await page.click('#signout');
      await page.waitForSelector('#auth:not([hidden])');
      assert.equal(await page.locator('#sessions .session-item').count(), 0);
      assert.equal(await page.locator('#chat').isHidden(), true);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('tether.token')), null);
      await page.waitForSelector('#conn[data-state=held]');

      // A token that expired: the reason is said, not "reconnecting…".
      const expired = mintJwt(SECRET, { sub: 'alice', tenant: 't1', exp: Math.floor(Date.now() / 1000) - 60 });
      await page.evaluate((t) => sessionStorage.setItem('tether.token', t), expired);
      await page.reload();
      await page.waitForSelector('#auth-error:not([hidden])');
      assert.match(await page.locator('#auth-error').textContent(), /expired/);
      assert.equal(await page.locator('#conn').textContent(), 'signed out');
      // A pasted token that is not one.
      await page.click('.token-alt summary');
      await page.fill('#token', 'not-a-token');
      await page.press('#token', 'Enter');
      await page.waitForFunction(() => /did not accept/.test(document.getElementById('auth-error').textContent));
      assert.deepEqual(
        problems.filter((p) => !/Failed to load resource/.test(p)),
        [],
      );
    } finally {
      await page.close();
    }
  },
  { timeout: 60_000 },
);
