// Names shown in the web UI are isolated for display (a <bdi>, or
// unicode-bidi: isolate): right-to-left letters in a session title, an agent,
// tool, file or folder name can never reorder the text around them.
import assert from 'node:assert/strict';
import { itest, watchPage, useBrowser } from './helpers.mjs';

const browser = useBrowser();

const isolated = (page, selector) => page.$$eval(selector, (els) => els.map((e) => getComputedStyle(e).unicodeBidi));

itest('titles, agent, tool, folder and quoted file names are isolated for display', async ({ startServer }) => {
  const srv = await startServer();
  const page = await browser.context.newPage();
  page.setDefaultTimeout(8000);
  const problems = watchPage(page);
  try {
    await page.goto(`${srv.url}/`);
    await page.waitForSelector('#conn[data-state=open]', { timeout: 5000 });
    await page.selectOption('#agent', 'echo');
    await page.click('#new');
    await page.waitForFunction(() => window.tether.current && !document.getElementById('chat').hidden);
    const session = await page.evaluate(() => window.tether.current);
    await page.fill('#text', 'moved "שלום (1).jpg" to "תמונות 2023"');
    await page.press('#text', 'Enter');
    // echo streams the words back as Markdown: each quoted name in its own <bdi>
    await page.waitForFunction(
      () =>
        document.querySelectorAll('#timeline .msg.assistant bdi').length === 2 &&
        document.getElementById('chat-state').textContent === 'idle',
    );
    const bdis = await page.$$eval('#timeline .msg.assistant bdi', (els) =>
      els.map((e) => e.parentElement.textContent.includes(`"${e.textContent}"`) && e.textContent),
    );
    assert.deepEqual(bdis, ['שלום (1).jpg', 'תמונות 2023']);
    assert.deepEqual(await isolated(page, '#timeline .msg.assistant bdi'), ['isolate', 'isolate']);
    await page.waitForFunction(() =>
      document.querySelector('.session-item .session-title')?.textContent.startsWith('moved'),
    );
    assert.deepEqual(await isolated(page, '.session-item .session-title'), ['isolate']);
    assert.deepEqual(await isolated(page, '.session-item .agent-tag'), ['isolate']);
    assert.deepEqual(await isolated(page, '#title'), ['isolate']);
    assert.deepEqual(await isolated(page, '#chat-agent'), ['isolate']);
    // The photo organiser's plan and a tool call, fed through the client.
    await page.evaluate((s) => {
      let seq = 1000;
      const ts = new Date().toISOString();
      const feed = (type, f) => window.tether.client._onEvent({ type, session: s, seq: ++seq, ts, ...f });
      feed('tool.call', { call_id: 'c1', name: 'סריקה', args: {} });
      feed('approval', {
        approval_id: 'a1',
        title: 'ארגון 3 תמונות',
        plan: {
          tree: [
            { name: 'תמונות 2023', count: 2, children: [{ name: 'ליסבון', count: 2 }] },
            { name: 'Home', count: 1 },
          ],
        },
      });
    }, session);
    await page.waitForSelector('.card.approval.pending .tree-name');
    assert.deepEqual(await isolated(page, '.card.approval .tree-name'), ['isolate', 'isolate', 'isolate']);
    assert.deepEqual(await isolated(page, '.card.approval .card-title'), ['isolate']);
    assert.deepEqual(await isolated(page, '.tool-item .tool-name'), ['isolate']);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

itest(
  'markdown: a "quoted" run is put in a <bdi>, the quotes outside it; an unclosed quote stays text',
  async ({ startServer }) => {
    const srv = await startServer();
    const page = await browser.context.newPage();
    try {
      await page.goto(`${srv.url}/`);
      const out = await page.evaluate(async () => {
        const { renderMarkdown } = await import('/markdown.js');
        const html = (md) => {
          const d = document.createElement('div');
          d.append(renderMarkdown(md));
          return d.innerHTML;
        };
        return [html('"a.jpg" (from "b/**c**.jpg")'), html('5" screen'), html('"one\ntwo"')];
      });
      assert.deepEqual(out, [
        '<p>"<bdi>a.jpg</bdi>" (from "<bdi>b/<strong>c</strong>.jpg</bdi>")</p>',
        '<p>5" screen</p>',
        '<p>"one<br>two"</p>',
      ]);
    } finally {
      await page.close();
    }
  },
);
