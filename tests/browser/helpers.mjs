// Shared helpers for the browser suite (tests/browser): the server comes from
// the integration harness (tests/integration/harness.mjs), the browser is
// Debian's Chromium driven by playwright-core.
import './bin.mjs'; // must come first: picks the tether binary before the harness reads TETHER_BIN
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CheckedWebSocket, REPO, forTheTests, sleep } from '../integration/harness.mjs';

export * from '../integration/harness.mjs';
export { scriptToolRounds, useFakeProvider } from '../integration/llm-lib.mjs';

export const ARTIFACTS = path.join(REPO, 'tests', 'artifacts');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Poll fn() until it returns a truthy value; throws with `what` after timeoutMs. */
export async function until(fn, timeoutMs = 5000, what = 'condition', everyMs = 20) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
    } catch (e) {
      last = e;
    }
    if (last && !(last instanceof Error)) return last;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ': ' + last.message : ''}`,
      );
    await sleep(everyMs);
  }
}

/**
 * A WebSocket class with no server behind it, for web/tether-client.js tests
 * that script every frame: each socket made is kept in the class's `all`,
 * what the client sends is kept parsed in its `sent`, and the test drives it
 * with open() (then, when welcome is given, that frame arrives), recv(obj),
 * drop(code) and reply(type, obj) (an ok to the last request of that type).
 */
export function scriptedWebSocket({ welcome } = {}) {
  return class ScriptedWS {
    static all = [];
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      ScriptedWS.all.push(this);
    }
    send(d) {
      this.sent.push(JSON.parse(d));
    }
    close() {
      this.readyState = 3;
    }
    open() {
      this.readyState = 1;
      this.onopen?.();
      if (welcome) this.recv(welcome);
    }
    recv(obj) {
      this.onmessage?.({ data: JSON.stringify(obj) });
    }
    drop(code) {
      this.readyState = 3;
      this.onclose?.({ code, reason: '' });
    }
    reply(type, obj) {
      const m = this.sent.findLast((x) => x.type === type);
      this.recv({ type: 'ok', re: m.id, ...obj });
    }
  };
}

/**
 * A `ws` WebSocket whose network can be cut by the test:
 *   FlakyWS.down = true    new connections fail at once (as an unreachable host)
 *   FlakyWS.dropAll()      every open socket is terminated (no close handshake)
 *   FlakyWS.dropAfter = (msg) => bool   terminate right after sending a frame matching it
 *   FlakyWS.duplicate = true   every received frame is delivered twice
 * It exposes the browser WebSocket interface the client uses (on* handlers, send, close, readyState).
 */
export class FlakyWS {
  static down = false;
  static open = new Set();
  static dropAfter = null;
  static duplicate = false;
  static sent = [];

  static dropAll() {
    for (const s of FlakyWS.open) s.ws.terminate();
  }
  static reset() {
    FlakyWS.down = false;
    FlakyWS.dropAfter = null;
    FlakyWS.duplicate = false;
    FlakyWS.sent = [];
    FlakyWS.dropAll();
  }

  constructor(url, protocol) {
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    const target = FlakyWS.down ? url.replace(/:\d+\//, ':1/') : url; // port 1: connection refused
    this.ws = new CheckedWebSocket(target, protocol); // every frame checked against protocol/schema
    this.ws.on('open', () => {
      FlakyWS.open.add(this);
      this.onopen?.({});
    });
    this.ws.on('message', (data, isBinary) => {
      if (this.deaf) return;
      const ev = { data: isBinary ? data : data.toString('utf8') };
      this.onmessage?.(ev);
      if (FlakyWS.duplicate) this.onmessage?.(ev);
    });
    this.ws.on('error', () => this.onerror?.({}));
    this.ws.on('close', (code, reason) => {
      FlakyWS.open.delete(this);
      this.onclose?.({ code, reason: reason.toString() });
    });
  }

  get readyState() {
    return this.ws.readyState;
  }

  send(text) {
    this.ws.send(text);
    let msg = null;
    try {
      msg = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    FlakyWS.sent.push(msg);
    if (msg && FlakyWS.dropAfter && FlakyWS.dropAfter(msg)) {
      FlakyWS.dropAfter = null;
      // The frame leaves; whatever comes back is lost with the connection.
      this.deaf = true;
      setTimeout(() => this.ws.terminate(), 100);
    }
  }

  close(code) {
    try {
      this.ws.close(code === 1000 || (code >= 3000 && code < 5000) ? code : 1000);
    } catch {
      this.ws.terminate();
    }
  }
}

// ------------------------------------------------------------------ browser

let chromium;
async function playwright() {
  if (!chromium) ({ chromium } = await import('playwright-core'));
  return chromium;
}

const AXE = path.join(REPO, 'node_modules', 'axe-core', 'axe.min.js');
let axeSource = null;

/** axe-core's violations in the page (WCAG 2 A and AA rules): [{id, impact, nodes}]. */
export async function axeViolations(page) {
  axeSource ??= fs.readFileSync(AXE, 'utf8');
  await page.evaluate(axeSource); // through DevTools: the page's CSP allows no inline script
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
}

/** Headless Chromium for this file's tests (launchBrowser(opts)): launched before them, closed after (see forTheTests). */
export const useBrowser = (opts) => forTheTests(() => launchBrowser(opts), 'the browser');

/** Launch headless Chromium with a fresh user-data-dir; returns {context, close()}. */
export async function launchBrowser({ viewport = { width: 1100, height: 800 }, ignoreHTTPSErrors = false } = {}) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium)`);
  const pw = await playwright();
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-chromium-'));
  const context = await pw.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    ignoreHTTPSErrors,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      try {
        await context.close();
      } catch {
        /* ignore */
      }
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Watch a page for anything a script injection would do: dialogs, console
 * errors (CSP violations included), uncaught page errors. Returns the list.
 */
export function watchPage(page) {
  const problems = [];
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.type()} ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
  });
  return problems;
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, name + '.png') });
}

/** The text of the last assistant message in the page. */
export function lastAssistantText(page) {
  return page.evaluate(() => {
    const all = document.querySelectorAll('#timeline .msg.assistant .body');
    return all.length ? all[all.length - 1].textContent : null;
  });
}

// ------------------------------------------------------------------ the page

/** A new tab of browser (from launchBrowser) with its problems watched: {page, problems}. */
export async function openPage(browser, { width = 1100, height = 800 } = {}) {
  const page = await browser.context.newPage();
  page.setDefaultTimeout(8000);
  await page.setViewportSize({ width, height });
  const problems = watchPage(page);
  return { page, problems };
}

export async function openApp(page, srv, hash = '') {
  await page.goto(`${srv.url}/${hash}`);
  await page.waitForSelector('#conn[data-state=open]', { timeout: 5000 });
}

/** Pick an agent and start a session; returns its id. */
export async function newSession(page, agent) {
  const before = await page.evaluate(() => window.tether.current);
  await page.selectOption('#agent', agent);
  await page.click('#new');
  await page.waitForFunction(
    (prev) => window.tether.current && window.tether.current !== prev && !document.getElementById('chat').hidden,
    before,
  );
  return page.evaluate(() => window.tether.current);
}

/** Type a turn and send it with Enter; resolves once the page shows it. */
export async function say(page, text) {
  const users = await page.locator('#timeline .msg.user').count();
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  await page.waitForFunction((n) => document.querySelectorAll('#timeline .msg.user').length > n, users);
}

/** Wait until the turn is over: idle, nothing streaming, and the last item is not the user's turn. */
export async function waitIdle(page, timeout = 8000) {
  await page.waitForFunction(
    () =>
      document.getElementById('chat-state').textContent === 'idle' &&
      !document.querySelector('#timeline .msg.streaming') &&
      !document.querySelector('#timeline > li:last-child.msg.user'),
    null,
    { timeout },
  );
}
