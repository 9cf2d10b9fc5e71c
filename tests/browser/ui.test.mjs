// The web UI in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) against the real server and the fake model provider.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  REPO,
  fakeTarget,
  itest,
  mintViaApi,
  lastAssistantText,
  newSession,
  openApp,
  openPage,
  say,
  screenshot,
  sleep,
  waitIdle,
  writeRoutesFile,
  useBrowser,
  useFakeProvider,
} from './helpers.mjs';

const fp = useFakeProvider();
const browser = useBrowser();

const PRICE = { prompt_per_mtok: 0.15, completion_per_mtok: 0.6 };

/** A server whose chat agent talks to the fake provider under `prefix`. */
function chatServer(startServer, prefix, args = []) {
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, prefix)] },
    prices: { 'gpt-4o-mini': PRICE },
    retry: { max_attempts: 3, base_ms: 50, max_backoff_ms: 200, max_total_ms: 5000 },
  });
  return startServer({ args: ['--routes', routes, ...args], env: { FAKE_KEY: 'fake-key-ui' } });
}

const newPage = (size) => openPage(browser, size);

const assistantCount = (page) => page.locator('#timeline .msg.assistant').count();
const page_assistants = assistantCount;

itest(
  'echo through the UI: stream, ask answered with a button, plan revised with a comment then approved, session list, close',
  async ({ startServer }) => {
    const srv = await startServer();
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      // No model: the chat agent is shown as unavailable, with how to configure one.
      assert.equal(await page.locator('#agent option[value=chat]').isDisabled(), true);
      const hint = await page.locator('#model-hint').textContent();
      assert.match(hint, /OPENAI_API_KEY/);
      assert.match(hint, /ANTHROPIC_API_KEY/);
      assert.match(hint, /--routes/);
      const session = await newSession(page, 'echo');
      await page.waitForFunction(() => document.activeElement.id === 'text'); // focus moves to the message field
      await say(page, 'hello *there* world');
      await page.waitForSelector('#timeline .msg.user');
      await waitIdle(page);
      assert.equal(await lastAssistantText(page), 'hello there world');
      assert.equal(await page.locator('#timeline .msg.assistant em').textContent(), 'there');
      // No model ran: no usage line (no "echo · 0 in · 3 out · $0").
      assert.equal(await page.locator('#timeline .msg.assistant .usage-line').count(), 0);

      // ask -> question card with yes/no; the first choice has focus; answer with the keyboard
      await say(page, 'ask');
      await page.waitForSelector('.card.question.pending');
      assert.deepEqual(await page.locator('.card.question.pending button').allTextContents(), ['yes', 'no']);
      await screenshot(page, 'echo-question');
      await page.waitForFunction(() => document.activeElement?.textContent === 'yes');
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter'); // "no"
      await page.waitForSelector('.card.question.resolved');
      await waitIdle(page);
      assert.equal(await lastAssistantText(page), 'you said no');

      // plan -> approval card; request changes with a comment; then approve
      await say(page, 'plan');
      await page.waitForSelector('.card.approval.pending');
      assert.deepEqual(await page.locator('.card.approval.pending .steps li').allTextContents(), [
        'analyse the request',
        'draft the reply',
        'send the reply',
      ]);
      await page.click('.card.approval.pending button:has-text("Request changes")');
      await page.fill('.card.approval.pending textarea.comment', 'add a <b>summary</b> step');
      await screenshot(page, 'echo-approval-changes');
      await page.click('.card.approval.pending button:has-text("Send changes")');
      await page.waitForFunction(
        () =>
          document.querySelectorAll('.card.approval').length === 2 &&
          document.querySelector('.card.approval.pending .comments li')?.textContent === 'add a <b>summary</b> step',
      );
      assert.equal(await page.locator('.card.approval.resolved').count(), 1);
      assert.equal(await page.locator('#timeline b').count(), 0, 'the comment is text');
      await page.click('.card.approval.pending button:has-text("Approve")');
      await page.waitForFunction(() => !document.querySelector('.card.approval.pending'));
      await waitIdle(page);
      assert.equal(await lastAssistantText(page), 'approved');

      // the session list shows it (title, agent, state, time)
      await page.waitForSelector(`#sessions button[data-session="${session}"]`);
      const item = page.locator(`#sessions button[data-session="${session}"]`);
      assert.equal(await item.locator('.session-title').textContent(), 'hello *there* world');
      assert.equal(await item.locator('.agent-tag').textContent(), 'echo');
      await page.waitForFunction(
        (s) => document.querySelector(`#sessions button[data-session="${s}"] .badge`)?.textContent === 'idle',
        session,
      );
      assert.notEqual(await item.locator('time').textContent(), '');

      // close
      await page.click('#close-session');
      await page.waitForFunction(() => document.getElementById('chat-state').textContent === 'closed');
      assert.equal(await page.locator('#text').isDisabled(), true);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
);

itest(
  'a full chat with the model: streamed Markdown, usage and cost per message, stop while streaming',
  async ({ startServer }) => {
    const P = 'ui-chat';
    const answer =
      '## Plan\n\nHere is **what** I suggest:\n\n1. Sort by `date`\n2. Group by *place*\n\n```sh\ntether --routes routes.json\n```\n\nSee [the docs](https://example.com/docs).';
    fp.script({
      text: answer,
      usage: { prompt_tokens: 1200, completion_tokens: 300 },
      token_delay_ms: 5,
      match: { prefix: P },
    });
    fp.script({
      text: Array.from({ length: 200 }, (_, i) => `slow${i}`).join(' '),
      token_delay_ms: 40,
      match: { prefix: P },
    });
    const srv = await chatServer(startServer, P);
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      assert.equal(await page.locator('#model-hint').isHidden(), true);
      assert.equal(await page.locator('#agent option[value=chat]').isDisabled(), false);
      await newSession(page, 'chat');
      await say(page, 'How should I organise my photos?');
      await page.waitForSelector('#timeline .msg.assistant');
      await waitIdle(page);
      const msg = page.locator('#timeline .msg.assistant').last();
      assert.equal(await msg.locator(':is(h3,h4,h5,h6)').textContent(), 'Plan');
      assert.equal(await msg.locator('strong').textContent(), 'what');
      assert.deepEqual(await msg.locator('ol li').allTextContents(), ['Sort by date', 'Group by place']);
      assert.equal(await msg.locator('pre code').textContent(), 'tether --routes routes.json');
      const a = msg.locator('a');
      assert.equal(await a.getAttribute('href'), 'https://example.com/docs');
      assert.equal(await a.getAttribute('rel'), 'noopener noreferrer');
      const usage = await msg.locator('.usage-line').textContent();
      assert.match(usage, /gpt-4o-mini · 1200 in · 300 out · \$0\.0003/, usage);
      assert.match(await page.locator('#total-usage').textContent(), /1500 tokens/);
      await screenshot(page, 'chat-markdown');
      // The README's picture: refreshed only on request (UPDATE_SCREENSHOT=1), so test runs leave web/ alone.
      if (process.env.UPDATE_SCREENSHOT === '1')
        fs.copyFileSync(
          path.join(REPO, 'tests', 'artifacts', 'chat-markdown.png'),
          path.join(REPO, 'web', 'screenshot.png'),
        );

      // stop while streaming: the partial message is withdrawn
      await say(page, 'tell me a long story');
      await page.waitForSelector('#stop:not([hidden])');
      await page.waitForFunction(() =>
        (document.querySelector('#timeline .msg.assistant.streaming')?.textContent || '').includes('slow3'),
      );
      await screenshot(page, 'chat-streaming');
      await page.click('#stop');
      await page.waitForSelector('#stop', { state: 'hidden' });
      await page.waitForFunction(
        () =>
          document.getElementById('chat-state').textContent === 'idle' &&
          !document.querySelector('#timeline .msg.streaming'),
      );
      // The partial answer stays, marked as stopped, without usage.
      assert.equal(await assistantCount(page), 2, 'the stopped message is kept');
      const stopped = page.locator('#timeline .msg.assistant.stopped');
      assert.match(await stopped.locator('.body').textContent(), /slow3/);
      assert.match(await stopped.locator('.stopped-mark').textContent(), /Stopped/);
      await screenshot(page, 'chat-stopped');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'text');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
);

itest('reload mid-stream: the final text equals what the provider sent, word for word', async ({ startServer }) => {
  const P = 'ui-reload';
  const words = Array.from({ length: 60 }, (_, i) => `word${i}`);
  const text = words.join(' ');
  fp.script({ text, token_delay_ms: 30, match: { prefix: P } });
  const srv = await chatServer(startServer, P);
  const { page, problems } = await newPage();
  try {
    await openApp(page, srv);
    const session = await newSession(page, 'chat');
    await say(page, 'count for me');
    await page.waitForFunction(() =>
      (document.querySelector('#timeline .msg.assistant')?.textContent || '').includes('word10'),
    );
    await page.reload();
    await page.waitForSelector('#conn[data-state=open]');
    assert.equal(await page.evaluate(() => window.tether.current), session, 'the session comes back after a reload');
    // mid-stream: the message is still streaming after the reload
    const partial = await lastAssistantText(page);
    assert.ok(partial !== null && !partial.includes('word59'), `still streaming after the reload: ${partial}`);
    await waitIdle(page, 10_000);
    assert.equal(await lastAssistantText(page), text);
    assert.equal(await assistantCount(page), 1);
    assert.equal(await page.locator('#timeline .msg.user').count(), 1);
    assert.equal(fp.requests({ prefix: P }).length, 1);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

itest(
  'kill -9 and restart mid-stream: the indicator goes reconnecting then live, the text completes',
  async ({ startServer }) => {
    const P = 'ui-crash';
    const text = Array.from({ length: 50 }, (_, i) => `part${i}`).join(' ');
    // The call cut by the crash is made again after the restart: the same text twice.
    fp.script({ text, token_delay_ms: 30, repeat: 2, match: { prefix: P } });
    const srv = await chatServer(startServer, P);
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      await newSession(page, 'chat');
      await page.evaluate(() => {
        window.__conn = [];
        const el = document.getElementById('conn');
        new MutationObserver(() => window.__conn.push(el.dataset.state)).observe(el, { attributes: true });
      });
      await say(page, 'go');
      await page.waitForFunction(() =>
        (document.querySelector('#timeline .msg.assistant')?.textContent || '').includes('part8'),
      );
      await srv.kill9();
      await page.waitForSelector('#conn[data-state=reconnecting]');
      await screenshot(page, 'crash-reconnecting');
      assert.equal(await page.locator('#conn').textContent(), 'reconnecting…');
      await srv.restart();
      await page.waitForSelector('#conn[data-state=open]', { timeout: 10_000 });
      await waitIdle(page, 10_000);
      assert.equal(await lastAssistantText(page), text);
      assert.equal(await assistantCount(page), 1);
      const conn = await page.evaluate(() => window.__conn);
      assert.ok(
        conn.indexOf('reconnecting') >= 0 && conn.lastIndexOf('open') > conn.indexOf('reconnecting'),
        JSON.stringify(conn),
      );
      assert.equal(await page.locator('#conn').textContent(), 'live');
      assert.deepEqual(
        problems.filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(p)),
        [],
      );
    } finally {
      await page.close();
    }
  },
);

itest('two tabs on one session stay in sync: a turn, a question answered in the other tab', async ({ startServer }) => {
  const srv = await startServer();
  const t1 = await newPage();
  const t2 = await newPage();
  try {
    await openApp(t1.page, srv);
    const session = await newSession(t1.page, 'echo');
    await openApp(t2.page, srv, '#' + session);
    await t2.page.waitForFunction(() => document.getElementById('chat-state').textContent === 'idle');
    await say(t1.page, 'same words everywhere');
    for (const p of [t1.page, t2.page]) {
      await p.waitForFunction(() =>
        document
          .querySelector('#timeline .msg.assistant:not(.streaming)')
          ?.textContent.includes('same words everywhere'),
      );
      await waitIdle(p);
      assert.equal(await page_assistants(p), 1);
      assert.equal(await lastAssistantText(p), 'same words everywhere');
    }
    await say(t2.page, 'ask');
    await t1.page.waitForSelector('.card.question.pending');
    await t2.page.waitForSelector('.card.question.pending');
    await t1.page.click('.card.question.pending button:has-text("yes")');
    await t2.page.waitForSelector('.card.question.resolved');
    await waitIdle(t2.page);
    assert.equal(await lastAssistantText(t2.page), 'you said yes');
    const dump = (p) =>
      p.evaluate(() =>
        [...document.querySelectorAll('#timeline > li')].map((li) => li.className + ':' + li.textContent),
      );
    await waitIdle(t1.page);
    assert.deepEqual(await dump(t1.page), await dump(t2.page));
    assert.deepEqual([...t1.problems, ...t2.problems], []);
  } finally {
    await t1.page.close();
    await t2.page.close();
  }
});

itest(
  'hostile model output (<img onerror>, <script>, javascript: links) is rendered inert, as visible text',
  async ({ startServer }) => {
    const P = 'ui-xss';
    const evil =
      'Look: <img src=x onerror="window.__xss=1;alert(1)"> and <script>window.__xss=2;alert(2)</script> ' +
      '[click me](javascript:alert(3)) [data](data:text/html,<script>alert(4)</script>) <a href="javascript:alert(5)">raw</a> ' +
      '**<svg onload=alert(6)>** `<iframe src=javascript:alert(7)>` ok';
    fp.script({ tokens: evil.match(/.{1,7}/gs), token_delay_ms: 2, match: { prefix: P } });
    const srv = await chatServer(startServer, P);
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      await newSession(page, 'chat');
      await say(page, '<img src=y onerror="window.__xss=9"> user text too');
      await waitIdle(page);
      await sleep(200);
      const found = await page.evaluate(() => {
        const tl = document.getElementById('timeline');
        return {
          img: tl.querySelectorAll('img').length,
          script: document.querySelectorAll('script:not([src])').length + tl.querySelectorAll('script').length,
          svg: tl.querySelectorAll('svg').length,
          iframe: document.querySelectorAll('iframe').length,
          jsLinks: [...tl.querySelectorAll('a')].filter(
            (a) => !/^(https?:|mailto:)/.test(a.getAttribute('href') || 'https:'),
          ).length,
          onAttrs: [...tl.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on')))
            .length,
          xss: window.__xss ?? null,
        };
      });
      assert.deepEqual(found, { img: 0, script: 0, svg: 0, iframe: 0, jsLinks: 0, onAttrs: 0, xss: null });
      const shown = await lastAssistantText(page);
      assert.ok(shown.includes('<img src=x onerror="window.__xss=1;alert(1)">'), shown);
      assert.ok(shown.includes('<script>window.__xss=2;alert(2)</script>'), shown);
      assert.ok(shown.includes('[click me](javascript:alert(3))'), shown);
      assert.ok(shown.includes('<svg onload=alert(6)>'), shown);
      assert.equal(
        await page.locator('#timeline .msg.user .body').textContent(),
        '<img src=y onerror="window.__xss=9"> user text too',
      );
      await screenshot(page, 'xss-inert');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
);

itest(
  'phone width (375 px): no horizontal scroll, the session menu and the composer are usable',
  async ({ startServer }) => {
    const srv = await startServer();
    const { page, problems } = await newPage({ width: 375, height: 740 });
    try {
      await openApp(page, srv);
      await page.click('#menu');
      await page.waitForSelector('#sidebar:visible');
      await newSession(page, 'echo');
      assert.equal(await page.locator('#sidebar').isVisible(), false, 'the menu closes after starting a session');
      await say(
        page,
        'averyveryveryveryveryveryveryveryveryveryveryveryverylongwordwithoutanyspaceatall https://example.com/a/very/long/path/that/goes/on/and/on/and/on',
      );
      await waitIdle(page);
      await say(page, 'plan');
      await page.waitForSelector('.card.approval.pending');
      const widths = await page.evaluate(() => ({
        doc: document.documentElement.scrollWidth,
        body: document.body.scrollWidth,
        tl: document.getElementById('timeline').scrollWidth,
        vw: window.innerWidth,
      }));
      assert.ok(widths.doc <= widths.vw && widths.body <= widths.vw && widths.tl <= widths.vw, JSON.stringify(widths));
      for (const sel of ['#send', '#text', '.card.approval.pending button:has-text("Approve")', '#menu', '#conn']) {
        const box = await page.locator(sel).first().boundingBox();
        assert.ok(
          box && box.x >= 0 && box.x + box.width <= 375 + 0.5,
          `${sel} inside the viewport: ${JSON.stringify(box)}`,
        );
      }
      await screenshot(page, 'phone');
      await page.click('#menu');
      await page.waitForSelector('#sessions button.session-item');
      const w2 = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(w2 <= 375, `menu open: ${w2}`);
      await screenshot(page, 'phone-menu');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
);

itest(
  'cards: a folder-tree plan with counts, progress bars, compact tool calls, errors (events injected into the client)',
  async ({ startServer }) => {
    const srv = await startServer();
    const { page, problems } = await newPage();
    try {
      await openApp(page, srv);
      const session = await newSession(page, 'echo');
      await page.waitForFunction(() => document.getElementById('chat-state').textContent === 'idle');
      // Events as the photo organiser will send them, fed through the client (seqs far ahead of the real ones).
      await page.evaluate((s) => {
        let seq = 1000;
        const ts = new Date().toISOString();
        const feed = (type, f) => window.tether.client._onEvent({ type, session: s, seq: ++seq, ts, ...f });
        feed('tool.call', { call_id: 'c1', name: 'scan_folder', args: { path: '/photos', recursive: true } });
        feed('progress', { step: 'scan', done: 120, total: 480, label: 'Reading EXIF' });
        feed('tool.result', { call_id: 'c1', ok: true, result: { files: 480 } });
        feed('tool.call', { call_id: 'c2', name: 'geocode', args: { lat: 1, lon: 2 } });
        feed('tool.result', { call_id: 'c2', ok: false, error: { code: 'timeout', message: 'slow' } });
        feed('tool.call', { call_id: 'c3', name: 'pay', args: { amount: 42 } });
        feed('tool.result', { call_id: 'c3', ok: false, may_have_run: true, error: 'may have run: interrupted' });
        feed('approval', {
          approval_id: 'a_tree',
          title: 'Organise 480 photos',
          plan: {
            tree: [
              {
                name: '2023',
                count: 200,
                children: [
                  { name: 'Lisbon', count: 120, children: [] },
                  { name: '<b>Porto</b>', count: 80 },
                ],
              },
              { name: '2024', count: 280, children: [{ name: 'Home', count: 280 }] },
            ],
          },
        });
        feed('approval', { approval_id: 'a_json', title: 'Raw plan', plan: { moves: 3, note: '<i>x</i>' } });
        feed('error', { code: 'unavailable', message: 'every provider failed', retryable: true });
      }, session);
      await page.waitForSelector('.card.approval.pending');
      const tree = await page.evaluate(() =>
        [...document.querySelectorAll('.card.approval .tree li')].map(
          (li) => li.querySelector('.tree-name').textContent + '=' + li.querySelector('.tree-count').textContent,
        ),
      );
      assert.deepEqual(tree, ['2023=200', 'Lisbon=120', '<b>Porto</b>=80', '2024=280', 'Home=280']);
      assert.equal(
        await page.locator('.card.approval .tree .tree .tree-name').first().textContent(),
        'Lisbon',
        'nested',
      );
      assert.match(await page.locator('.card.approval.pending pre.json').textContent(), /"moves": 3/);
      assert.equal(await page.locator('#timeline b, #timeline i').count(), 0);
      assert.equal(await page.locator('#timeline progress').getAttribute('value'), '120');
      assert.equal(await page.locator('#timeline progress').getAttribute('max'), '480');
      assert.match(await page.locator('.progress-label').textContent(), /Reading EXIF — 120\/480/);
      assert.deepEqual(await page.locator('.tool-item .tool-name').allTextContents(), [
        'scan_folder',
        'geocode',
        'pay',
      ]);
      assert.deepEqual(await page.locator('.tool-item .tool-status').allTextContents(), ['✓', '✗', '?']);
      assert.match(await page.locator('.tool-item .may-have-run').textContent(), /May have run/);
      assert.equal(await page.locator('.tool-item details[open]').count(), 0, 'tool calls are collapsed');
      await page.click('.tool-item summary >> nth=0');
      assert.match(await page.locator('.tool-item details[open] pre').last().textContent(), /"files": 480/);
      assert.match(await page.locator('#timeline .error').textContent(), /unavailable.*every provider failed/);
      await screenshot(page, 'cards');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  },
);

itest('markdown renderer: blocks, inline, safe links, unclosed fence while streaming', async ({ startServer }) => {
  const srv = await startServer();
  const { page, problems } = await newPage();
  try {
    await page.goto(`${srv.url}/`);
    const out = await page.evaluate(async () => {
      const { renderMarkdown, safeHref } = await import('/markdown.js');
      const html = (md) => {
        const d = document.createElement('div');
        d.append(renderMarkdown(md));
        return d.innerHTML;
      };
      return {
        para: html('one\ntwo\n\nthree'),
        list: html('- a\n- **b**\n  - nested\n\n3. x\n4. y'),
        quote: html('> quoted *text*'),
        fenceOpen: html('```js\nlet a = "<b>";'),
        code: html('use `a<b>` here'),
        snake: html('snake_case_name and __init__'),
        links: html(
          '[ok](https://a.example/x?y=1) [bad](javascript:alert(1)) [rel](/relative) <mailto:a@b.c> http://x.example/p.',
        ),
        safe: [
          safeHref('https://a'),
          safeHref('JAVASCRIPT:alert(1)'),
          safeHref(' javascript:x'),
          safeHref('data:text/html,x'),
          safeHref('//evil'),
          safeHref('mailto:a@b'),
        ],
      };
    });
    assert.equal(out.para, '<p>one<br>two</p><p>three</p>');
    assert.equal(
      out.list,
      '<ul><li>a</li><li><strong>b</strong><ul><li>nested</li></ul></li></ul><ol start="3"><li>x</li><li>y</li></ol>',
    );
    assert.equal(out.quote, '<blockquote><p>quoted <em>text</em></p></blockquote>');
    assert.equal(
      out.fenceOpen,
      '<pre><code data-lang="js">let a = "&lt;b&gt;";</code><button type="button" class="copy" aria-label="Copy code"></button></pre>',
    );
    assert.equal(out.code, '<p>use <code>a&lt;b&gt;</code> here</p>');
    assert.equal(out.snake, '<p>snake_case_name and <strong>init</strong></p>'); // as CommonMark
    assert.equal(
      out.links,
      '<p><a href="https://a.example/x?y=1" rel="noopener noreferrer" target="_blank">ok</a> [bad](javascript:alert(1)) [rel](/relative) ' +
        '<a href="mailto:a@b.c" rel="noopener noreferrer" target="_blank">mailto:a@b.c</a> <a href="http://x.example/p" rel="noopener noreferrer" target="_blank">http://x.example/p</a>.</p>',
    );
    assert.deepEqual(out.safe, ['https://a/', null, null, null, null, 'mailto:a@b']);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

itest('a server with API keys: the page asks for a token, then connects with it', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'ui-test-key-0123456789'] });
  const { page, problems } = await newPage();
  try {
    await page.goto(`${srv.url}/`);
    await page.waitForSelector('#auth:not([hidden])');
    assert.notEqual(await page.locator('#conn').getAttribute('data-state'), 'open');
    const token = await mintViaApi(srv.port, 'ui-test-key-0123456789', 'alice');
    await page.click('.token-alt summary'); // a token minted elsewhere: under "Have a token already?"
    await page.fill('#token', token);
    await page.press('#token', 'Enter');
    await page.waitForSelector('#conn[data-state=open]');
    assert.equal(await page.locator('#auth').isHidden(), true);
    await newSession(page, 'echo');
    await say(page, 'signed in');
    await waitIdle(page);
    assert.equal(await lastAssistantText(page), 'signed in');
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});
