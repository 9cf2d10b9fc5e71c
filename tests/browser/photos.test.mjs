// The photo organiser through the web UI in headless Chromium, on a library
// of real JPEGs: the question card (the answer shown once given), the
// approval card showing the folder tree with counts and, per folder, the files
// that move (collapsed, searchable, thumbnails of the first 4 once opened), approval (shown as such), and the files
// moved on disk.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BIN,
  fakeTarget,
  itest,
  lastAssistantText,
  screenshot,
  watchPage,
  writeRoutesFile,
  useBrowser,
  useFakeProvider,
  axeViolations,
} from './helpers.mjs';

const fp = useFakeProvider();
const browser = useBrowser();

itest('photo organiser in the UI: question, approval with the folder tree, moves on disk', async ({ startServer }) => {
  const P = 'ui-photos';
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-uiphotos-'));
  const lib = path.join(root, 'local');
  execFileSync(path.join(path.dirname(BIN), 'tests', 'unit', 'make_photo_library'), [lib, '12']);
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      e.isDirectory() ? walk(p) : files.push(path.relative(lib, p));
    }
  };
  walk(lib);
  const plan = {
    explanation: 'Each camera gets a folder.',
    folders: ['products', 'products/shoes'],
    moves: files
      .sort()
      .map((src, i) => ({ src, dest: `${i % 2 ? 'products/shoes' : 'products'}/${path.basename(src)}` })),
  };
  fp.script([
    { text: 'Your library holds **12 photos** from four cameras.', match: { prefix: P } },
    {
      text: JSON.stringify({ questions: [{ text: 'By date or by product?', choices: ['date', 'product'] }] }),
      match: { prefix: P },
    },
    { text: JSON.stringify(plan), match: { prefix: P } },
  ]);
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  const srv = await startServer({ args: ['--routes', routes, '--photos-root', root], env: { FAKE_KEY: 'k' } });
  const page = await browser.context.newPage();
  page.setDefaultTimeout(10000);
  const problems = watchPage(page);
  try {
    await page.goto(`${srv.url}/`);
    await page.waitForSelector('#conn[data-state=open]');
    await page.selectOption('#agent', 'photo-organizer');
    await page.click('#new');
    await page.waitForFunction(() => window.tether.current && !document.getElementById('chat').hidden);
    await page.fill('#text', 'help me sort my photos');
    await page.press('#text', 'Enter');

    await page.waitForSelector('.card.question.pending');
    await page.click('.card.question.pending button:has-text("product")');
    await page.waitForSelector('.card.approval.pending .tree');
    // The answered card keeps the choice, marked.
    const answered = page.locator('.card.question.resolved');
    assert.equal(await answered.locator('.answer-mark').textContent(), 'Your answer: product');
    assert.equal(await answered.locator('button.chosen').textContent(), 'product');
    assert.equal(await answered.locator('button.chosen').getAttribute('aria-pressed'), 'true');
    assert.equal(
      await page.textContent('.card.approval.pending .card-title'),
      'Move 12 photos into 2 folders? Nothing moves until you approve; "undo" puts them back after',
    );
    const names = await page.locator('.card.approval.pending .tree-name').allTextContents();
    const counts = await page.locator('.card.approval.pending .tree-count').allTextContents();
    assert.deepEqual(names, ['products', 'shoes']);
    assert.deepEqual(counts, ['12', '6']);
    // Each folder lists the files it gets, collapsed until asked for.
    const card = page.locator('.card.approval.pending');
    assert.deepEqual(await card.locator('.folder-files > summary').allTextContents(), [
      '6 files move here',
      '6 files move here',
    ]);
    assert.equal(await card.locator('.plan-file').first().isVisible(), false, 'collapsed by default');
    await screenshot(page, 'photos-approval');
    // Opening a folder loads thumbnails of its first 4 files (none before: lazy).
    assert.equal(await card.locator('img.plan-thumb[src]').count(), 0, 'no thumbnail fetched while collapsed');
    const first = card.locator('details.folder-files').first();
    await first.locator('summary').click();
    await page.waitForFunction(
      () => {
        const imgs = [...document.querySelectorAll('.card.approval.pending details.folder-files[open] img.plan-thumb')];
        return imgs.length === 4 && imgs.every((i) => i.complete && i.naturalWidth > 0);
      },
      null,
      { timeout: 10000 },
    );
    const sizes = await first
      .locator('img.plan-thumb')
      .evaluateAll((imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight]));
    // photos 0, 2, ... carry a 16x12 EXIF thumbnail (photo_fixtures.c); the others are served whole (32x24)
    assert.ok(
      sizes.some(([w]) => w === 16),
      `an EXIF thumbnail among ${JSON.stringify(sizes)}`,
    );
    assert.equal(await card.locator('details.folder-files:not([open]) img.plan-thumb[src]').count(), 0);
    await screenshot(page, 'photos-approval-thumbs');
    await first.locator('summary').click();
    // Searching opens the folder holding a match and hides the rest.
    const one = plan.moves[3];
    await card.locator('.plan-search').fill(path.basename(one.src));
    await page.waitForFunction(() => document.querySelector('.plan-search-status')?.textContent === '1 file matches');
    const shown = card.locator('.plan-file:visible');
    assert.equal(await shown.count(), 1);
    assert.equal(await shown.locator('.file-src').textContent(), one.src);
    assert.equal(await shown.locator('.file-dest').textContent(), one.dest);
    await screenshot(page, 'photos-approval-search');
    assert.deepEqual(await axeViolations(page), [], 'the plan preview and the answered card pass axe-core');
    await card.locator('.plan-search').fill('');
    assert.equal(await card.locator('details.folder-files[open]').count(), 0, 'cleared: collapsed again');
    await page.click('.card.approval.pending button:has-text("Approve")');
    await page.waitForSelector('.card.approval.resolved .decision-mark');
    assert.equal(await page.textContent('.card.approval.resolved .decision-mark'), 'Approved');
    await page.waitForFunction(() => document.getElementById('chat-state').textContent === 'done', null, {
      timeout: 20000,
    });
    assert.match(await lastAssistantText(page), /Done: 12 photos moved/);
    await screenshot(page, 'photos-done');
    const after = [];
    const walk2 = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        e.isDirectory() ? walk2(p) : after.push(path.relative(lib, p));
      }
    };
    walk2(lib);
    assert.equal(after.length, 12);
    assert.ok(after.every((p) => p.startsWith('products/')));

    // Undo is offered once, on the message that says the photos moved.
    assert.equal(await page.locator('.undo-run').count(), 1);
    await screenshot(page, 'photos-done-undo');
    await page.click('.undo-run');
    await page.waitForFunction(() =>
      /Undone: every photo/.test(
        document.querySelector('#timeline .msg.assistant:last-of-type .body')?.textContent || '',
      ),
    );
    assert.equal(await page.locator('.undo-run').count(), 0, 'nothing left to undo: no button');
    const back = [];
    const walk3 = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        e.isDirectory() ? walk3(p) : back.push(path.relative(lib, p));
      }
    };
    walk3(lib);
    assert.deepEqual(back.sort(), files.sort(), 'every photo back where it was');
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
