// The page and its JS client over https:// and wss:// (issue 15): a server
// with --tls-cert (a certificate made here by `openssl`), the page loaded
// over HTTPS in Chromium connects its WebSocket with wss:// on the same port
// and an echo turn streams back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, REPO, freePort, launchBrowser } from './helpers.mjs';
import { runTether, stopTether } from '../integration/deploy-lib.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-tls-ui-'));
let browser;
before(async () => {
  // A self-signed certificate for 127.0.0.1; the browser context is told to accept it.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'k.pem',
      '-out',
      'c.pem',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { cwd: dir, stdio: 'pipe' },
  );
  browser = await launchBrowser({ ignoreHTTPSErrors: true });
});
after(async () => {
  await browser?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the page over https:// talks to the server over wss://', async () => {
  const port = await freePort();
  const args = ['--port', String(port), '--data-dir', path.join(dir, 'data'), '--web-dir', 'web'];
  const r = await runTether(
    BIN,
    [...args, '--tls-cert', path.join(dir, 'c.pem'), '--tls-key', path.join(dir, 'k.pem')],
    {
      cwd: REPO,
    },
  );
  assert.ok(r.proc, JSON.stringify(r.lines));
  const page = await browser.context.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  try {
    await page.goto(`https://127.0.0.1:${port}/`);
    await page.waitForSelector('#conn[data-state=open]', { timeout: 5000 });
    assert.deepEqual(sockets, [`wss://127.0.0.1:${port}/v1/ws`]);
    await page.selectOption('#agent', 'echo');
    await page.click('#new');
    await page.waitForFunction(() => window.tether.current && !document.getElementById('chat').hidden);
    await page.fill('#text', 'secure hello');
    await page.press('#text', 'Enter');
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('#timeline .msg.assistant')].some((m) => m.textContent.includes('secure hello')),
      null,
      { timeout: 8000 },
    );
  } finally {
    await page.close();
    assert.equal((await stopTether(r)).code, 0);
  }
});
