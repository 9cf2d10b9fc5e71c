// The documents page (issue 17) in headless Chromium against the real server
// and the fake provider: an assistant over the "handbook" collection shows
// its documents; one is added by paste, two by file (HTML, a real PDF read by
// pdftotext), listed with sizes and chunks; a question gets a cited answer;
// the citation opens its passage (GET /v1/documents/{id}?position=N); a
// document is deleted. In API-key mode (the page's token) and in open mode,
// axe-core clean in both themes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  axeViolations,
  fakeTarget,
  httpRequest,
  itest,
  lastAssistantText,
  newSession,
  openPage,
  say,
  screenshot,
  useBrowser,
  useFakeProvider,
  waitIdle,
  writeRoutesFile,
} from './helpers.mjs';

const fp = useFakeProvider({ dims: 256 });
const browser = useBrowser();
const KEY = 'docs-page-key-0123456789';

/** A one-page PDF whose page draws `lines` in Helvetica, offsets computed. */
function makePdf(lines) {
  const esc = (s) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  const stream = `BT /F1 12 Tf 72 720 Td 14 TL ${lines.map((l) => `(${esc(l)}) '`).join(' ')} ET`;
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets = [];
  objs.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

async function server(startServer, P, args) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-docspage-'));
  const agents = path.join(dir, 'agents.json');
  fs.writeFileSync(
    agents,
    JSON.stringify({
      agents: [
        {
          name: 'librarian',
          description: 'Answers from the handbook',
          tools: ['retrieve'],
          collection: 'handbook',
          top_k: 3,
          min_similarity: 0.1,
        },
      ],
    }),
  );
  const routes = writeRoutesFile({
    routes: {
      default: [fakeTarget(fp.url, P)],
      embed: [fakeTarget(fp.url, `${P}-embed`, { model: 'text-embedding-3-small' })],
    },
    retry: { max_attempts: 1 },
  });
  return startServer({
    args: ['--routes', routes, '--retrieval-route', 'embed', '--agents', agents, ...args],
    env: { FAKE_KEY: 'fake-key' },
  });
}

const LEAVE = [
  '# Annual leave',
  '',
  'Every employee receives twenty five days of annual leave each calendar year.',
  '',
  'Unused annual leave days may be carried over until the end of March.',
].join('\n');
const TRAVEL_HTML =
  '<html><head><title>t</title><script>var x = 1;</script></head><body><h1>Travel expenses</h1>' +
  '<p>Travel expenses are refunded within thirty days when receipts are attached.</p></body></html>';

const docTitles = (page) => page.locator('#docs-list .doc-title').allTextContents();

async function addPasted(page, title, text, format) {
  await page.fill('#docs-title', title);
  await page.fill('#docs-text', text);
  await page.selectOption('#docs-format', format);
  await page.click('#docs-submit');
  await page.waitForFunction((t) => document.getElementById('docs-status').textContent.includes(`«${t}»`), title);
}

async function addFile(page, name, mimeType, buffer) {
  await page.setInputFiles('#docs-file', { name, mimeType, buffer });
  await page.click('#docs-submit');
  await page.waitForFunction((t) => document.getElementById('docs-status').textContent.includes(`«${t}»`), name);
}

itest(
  'documents page, API-key mode: add by paste and by file, listed, a cited answer, the passage, delete',
  async ({ startServer }) => {
    const P = 'ui-docs';
    const srv = await server(startServer, P, ['--api-key', `${KEY}:acme`]);
    const { page, problems } = await openPage(browser);
    try {
      await page.goto(`${srv.url}/`);
      await page.waitForSelector('#auth:not([hidden])');
      assert.equal(await page.locator('#docs').isHidden(), true, 'no documents before signing in');
      await page.fill('#auth-user', 'alice');
      await page.fill('#auth-key', KEY);
      await page.press('#auth-key', 'Enter');
      await page.waitForSelector('#conn[data-state=open]');

      await page.selectOption('#agent', 'librarian');
      await page.waitForSelector('#docs:not([hidden])');
      assert.equal(await page.locator('#docs-head').textContent(), 'Documents in handbook');
      await page.waitForSelector('#docs-list li.none');
      assert.equal(await page.locator('#docs-add').getAttribute('open'), '', 'the form is open while empty');

      // a file that is not a document is refused, with the reason, and nothing is added
      await page.setInputFiles('#docs-file', {
        name: 'photo.bin',
        mimeType: 'application/octet-stream',
        buffer: Buffer.from([1, 2, 3]),
      });
      await page.click('#docs-submit');
      await page.waitForFunction(() =>
        /Not added: photo\.bin is not text/.test(document.getElementById('docs-status').textContent),
      );
      await page.setInputFiles('#docs-file', []);

      await addPasted(page, 'Annual leave', LEAVE, 'markdown');
      assert.match(await page.locator('#docs-status').textContent(), /^Added «Annual leave»: 1 chunk\.$/);
      await addFile(page, 'travel.html', 'text/html', Buffer.from(TRAVEL_HTML));
      await addFile(page, 'q3.pdf', 'application/pdf', makePdf(['Quarterly revenue grew by twelve percent.']));
      await page.waitForFunction(() => document.querySelectorAll('#docs-list .doc-item').length === 3);
      assert.deepEqual((await docTitles(page)).sort(), ['Annual leave', 'q3.pdf', 'travel.html']);
      const metas = await page.locator('#docs-list .doc-meta').allTextContents();
      assert.ok(
        metas.some((m) => /^pdf · \d+(\.\d)? (B|KB) · 1 chunk$/.test(m)),
        metas.join(' | '),
      );
      assert.ok(
        metas.some((m) => /^markdown · \d+ B · 1 chunk$/.test(m)),
        metas.join(' | '),
      );
      // stored for the signed-in tenant: the key sees them
      const listed = await httpRequest(srv.port, 'GET', '/v1/documents?collection=handbook', {
        headers: { authorization: `Bearer ${KEY}` },
      });
      assert.equal(listed.json.documents.length, 3);
      const travel = listed.json.documents.find((d) => d.title === 'travel.html');
      assert.equal(travel.type, 'html');

      for (const scheme of ['light', 'dark']) {
        await page.emulateMedia({ colorScheme: scheme });
        assert.deepEqual(await axeViolations(page), [], `the documents panel, ${scheme}`);
      }
      await page.emulateMedia({ colorScheme: 'light' });
      await screenshot(page, 'documents-panel');

      // ask: a retrieve call, then the cited answer
      fp.script([
        {
          tool_calls: [{ id: 'r1', name: 'retrieve', arguments: '{"query":"days of annual leave"}' }],
          match: { prefix: P, path: '/v1/chat/completions' },
        },
        {
          text: 'You get **twenty five days** of annual leave [1].',
          match: { prefix: P, path: '/v1/chat/completions' },
        },
      ]);
      await newSession(page, 'librarian');
      await say(page, 'How much annual leave do I get?');
      await waitIdle(page, 15000);
      assert.equal(await lastAssistantText(page), 'You get twenty five days of annual leave [1].');
      const links = page.locator('#timeline .msg.assistant .cite-link');
      assert.ok((await links.count()) >= 1);
      assert.equal(await links.first().textContent(), '[1] Annual leave, passage 1');
      await screenshot(page, 'documents-cited-answer');

      await links.first().click();
      await page.waitForSelector('#passage[open]');
      await page.waitForFunction(() => /twenty five days/.test(document.getElementById('passage-text').textContent));
      assert.equal(await page.locator('#passage-title').textContent(), 'Annual leave');
      assert.match(
        await page.locator('#passage-meta').textContent(),
        /^Passage 1 of 1 · \d+ tokens · collection handbook$/,
      );
      assert.match(await page.locator('#passage-text').textContent(), /carried over until the end of March/);
      for (const scheme of ['light', 'dark']) {
        await page.emulateMedia({ colorScheme: scheme });
        assert.deepEqual(await axeViolations(page), [], `the passage dialog, ${scheme}`);
      }
      await screenshot(page, 'documents-passage');
      await page.click('#passage-close');
      await page.waitForSelector('#passage:not([open])', { state: 'attached' });
      assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('cite-link')), true);

      // delete: gone from the list and from the server
      await page.selectOption('#agent', 'librarian');
      await page.click('#docs-list .doc-item:has-text("Annual leave") .doc-delete');
      await page.waitForFunction(() => document.querySelectorAll('#docs-list .doc-item').length === 2);
      assert.deepEqual((await docTitles(page)).sort(), ['q3.pdf', 'travel.html']);
      assert.match(await page.locator('#docs-status').textContent(), /^Deleted «Annual leave»\.$/);
      const after = await httpRequest(srv.port, 'GET', '/v1/documents?collection=handbook', {
        headers: { authorization: `Bearer ${KEY}` },
      });
      assert.deepEqual(after.json.documents.map((d) => d.title).sort(), ['q3.pdf', 'travel.html']);
      // the citation's passage now says it is gone
      await links.first().click();
      await page.waitForFunction(() =>
        /could not be read: no such document/.test(document.getElementById('passage-text').textContent),
      );
      await page.click('#passage-close');
      // signing out hides the panel and forgets the list
      await page.click('#signout');
      await page.waitForSelector('#auth:not([hidden])');
      assert.equal(await page.locator('#docs').isHidden(), true);
      assert.equal(await page.locator('#docs-list .doc-item').count(), 0);
      assert.deepEqual(
        problems.filter((p) => !/status of 404/.test(p)),
        [],
      );
    } finally {
      await page.close();
    }
  },
  { timeout: 90_000 },
);

itest('documents page, open mode: add, list and delete without a token', async ({ startServer }) => {
  const srv = await server(startServer, 'ui-docs-open', []);
  const { page, problems } = await openPage(browser);
  try {
    await page.goto(`${srv.url}/`);
    await page.waitForSelector('#conn[data-state=open]');
    await page.selectOption('#agent', 'librarian');
    await page.waitForSelector('#docs-list li.none');
    await addPasted(page, 'Parking', 'Parking permits are renewed every January.', 'text');
    await page.waitForFunction(() => document.querySelectorAll('#docs-list .doc-item').length === 1);
    const r = await httpRequest(srv.port, 'GET', '/v1/documents?collection=handbook');
    assert.deepEqual(
      r.json.documents.map((d) => d.title),
      ['Parking'],
    );
    // an agent without a collection hides the panel
    await page.selectOption('#agent', 'echo');
    assert.equal(await page.locator('#docs').isHidden(), true);
    await page.selectOption('#agent', 'librarian');
    await page.waitForSelector('#docs-list .doc-item');
    await page.click('#docs-list .doc-delete');
    await page.waitForSelector('#docs-list li.none');
    assert.deepEqual((await httpRequest(srv.port, 'GET', '/v1/documents?collection=handbook')).json.documents, []);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});
