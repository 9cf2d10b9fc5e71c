// Shared harness for Tether's black-box integration tests.
//
// Drives the real binary (build/tether, or $TETHER_BIN) over real sockets
// with an independent client (the `ws` package) and an independent JWT
// implementation (node's crypto HMAC-SHA256). Nothing here knows the
// server's internals: only the protocol (protocol/PROTOCOL.md) and the
// documented CLI.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { checkAnswer, installFetchCheck, offSpecAnswers, tetherPorts } from './openapi-validate.mjs';
import { frameSchemaError } from './schemas.mjs';

installFetchCheck(); // every answer of a server the harness started is checked against openapi.yaml

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.TETHER_BIN ? path.resolve(process.env.TETHER_BIN) : path.join(REPO, 'build', 'tether');

export const SUBPROTOCOL = 'tether.v1';
export const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The promise's value, or null if it has not settled within ms (the timer is cleared). */
export function within(promise, ms) {
  let timer;
  const t = new Promise((r) => {
    timer = setTimeout(() => r(null), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- processes

const live = new Set(); // every child process not yet seen to exit
const allClients = new Set(); // every client not yet cleaned up
const allServers = new Set(); // every Server not yet cleaned up

function killAll() {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
process.on('exit', killAll);
// File-level safety net (the root test's after hook): nothing outlives the file,
// even a test that timed out while its body was still awaiting.
after(async () => {
  for (const c of allClients) {
    try {
      c.terminate();
    } catch {
      /* ignore */
    }
  }
  const waits = [...live].map(
    (p) =>
      new Promise((r) => {
        if (p.exitCode !== null || p.signalCode !== null) r();
        else {
          p.once('exit', r);
        }
      }),
  );
  killAll();
  await Promise.all(waits);
  await Promise.all([...allServers].map((s) => s.cleanup()));
});

/** A free loopback TCP port: listen on 0, read the port, close. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * The keep-alive agent every harness HTTP request goes through, so each test
 * also exercises connections that serve several requests (browsers, SDKs and
 * proxies keep them open).
 */
export const keepAliveAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
after(() => keepAliveAgent.destroy());

/** Plain HTTP request to the server (keep-alive). Resolves {status, headers, body, json}. */
export function httpRequest(port, method, urlPath, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const data =
      body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const h = { ...headers };
    if (data !== undefined) {
      h['content-length'] = Buffer.byteLength(data);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    }
    const req = http.request(
      { host: '127.0.0.1', port, method, path: urlPath, headers: h, agent: keepAliveAgent },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          const ct = res.headers['content-type'] ?? '';
          const answer = { method, path: urlPath, status: res.statusCode, contentType: ct, headers: res.headers };
          checkAnswer(port, { ...answer, body: text });
          resolve({ status: res.statusCode, headers: res.headers, body: text, json });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error(`HTTP ${method} ${urlPath} timed out`)));
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

export const httpGet = (port, p, opts) => httpRequest(port, 'GET', p, opts);

/**
 * POST a JSON body on a connection of its own (no keep-alive agent, so many
 * are truly concurrent), with no time limit unless timeoutMs is given (then
 * the request fails after it); resolves {status, headers, body (text)}.
 */
export function postFresh(port, urlPath, body, { headers = {}, timeoutMs = 0 } = {}) {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: urlPath,
        agent: false,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const ct = res.headers['content-type'] ?? '';
          const answer = {
            method: 'POST',
            path: urlPath,
            status: res.statusCode,
            contentType: ct,
            headers: res.headers,
          };
          checkAnswer(port, { ...answer, body: text });
          resolve({ status: res.statusCode, headers: res.headers, body: text });
        });
      },
    );
    if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('TETHER_')) continue; // never let the caller's config leak in
    env[k] = v;
  }
  return { ...env, ...extra };
}

class Server {
  constructor({ dataDir, args, env, ownsDataDir, host }) {
    this.host = host;
    this.dataDir = dataDir;
    this.args = args;
    this.env = env;
    this.ownsDataDir = ownsDataDir;
    this.output = ''; // stderr + stdout of every run of this server, in order
    this.runs = 0;
    this.proc = null;
    this.exited = null; // promise of {code, signal} for the current proc
    this.port = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }
  get alive() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  _log(s) {
    this.output += s;
    if (this.output.length > 4_000_000) this.output = this.output.slice(-2_000_000);
  }

  async _spawn(port) {
    this.port = port;
    tetherPorts.add(port); // its HTTP answers are checked against openapi.yaml
    this.runs += 1;
    const argv = [
      '--host',
      this.host,
      '--port',
      String(port),
      '--data-dir',
      this.dataDir,
      '--web-dir',
      'web',
      // Tests read every line, the per-call "llm call" lines (debug) included.
      '--log-level',
      'debug',
      ...this.args,
    ];
    this._log(`\n=== run ${this.runs}: ${BIN} ${argv.join(' ')}\n`);
    const proc = spawn(BIN, argv, { cwd: REPO, env: cleanEnv(this.env), stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    live.add(proc);
    proc.stderr.setEncoding('utf8');
    proc.stdout.setEncoding('utf8');
    proc.stderr.on('data', (d) => this._log(d));
    proc.stdout.on('data', (d) => this._log(d));
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        live.delete(proc);
        this._log(`=== run ${this.runs} exited code=${code} signal=${signal}\n`);
        resolve({ code, signal });
      });
      proc.on('error', (err) => {
        live.delete(proc);
        this._log(`=== spawn error: ${err.message}\n`);
        resolve({ code: -1, signal: null, error: err });
      });
    });
    await this._waitReady(10_000);
  }

  async _waitReady(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let exitInfo = null;
    this.exited.then((e) => {
      exitInfo = e;
    });
    let lastErr = 'no answer';
    while (Date.now() < deadline) {
      if (exitInfo) {
        const err = new Error(
          `tether exited before ready (code=${exitInfo.code} signal=${exitInfo.signal})\n${this.tail()}`,
        );
        err.exitInfo = exitInfo;
        throw err;
      }
      try {
        const r = await httpGet(this.port, '/readyz');
        if (r.status === 200) return;
        lastErr = `status ${r.status}`;
      } catch (e) {
        lastErr = e.message;
      }
      await sleep(50);
    }
    throw new Error(`tether not ready on port ${this.port} after ${timeoutMs} ms (${lastErr})\n${this.tail()}`);
  }

  tail(n = 6000) {
    return this.output.length > n ? '…' + this.output.slice(-n) : this.output;
  }

  async _waitExit(timeoutMs) {
    let timer;
    const t = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const r = await Promise.race([this.exited, t]);
    clearTimeout(timer);
    return r;
  }

  /** SIGKILL and wait for the process to be gone. */
  async kill9() {
    if (!this.alive) return this.exited ? await this.exited : null;
    this.proc.kill('SIGKILL');
    return await this.exited;
  }

  /** Graceful stop: SIGTERM, wait (≤ 10 s) and require exit code 0. */
  async stop({ signal = 'SIGTERM', timeoutMs = 10_000 } = {}) {
    if (!this.alive) throw new Error('stop(): server is not running');
    this.proc.kill(signal);
    const r = await this._waitExit(timeoutMs);
    if (r === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
      throw new Error(`tether did not exit within ${timeoutMs} ms of ${signal}\n${this.tail()}`);
    }
    if (r.code !== 0 || r.signal !== null) {
      throw new Error(
        `tether exited with code=${r.code} signal=${r.signal} after ${signal}, expected code 0\n${this.tail()}`,
      );
    }
    return r;
  }

  /** Start again on the same data dir (same port if it can be had, else a fresh one). */
  async restart({ newPort = false } = {}) {
    if (this.alive) throw new Error('restart(): server still running; stop() or kill9() it first');
    try {
      await this._spawn(newPort ? await freePort() : this.port);
    } catch (e) {
      if (newPort || !e.exitInfo) throw e;
      // The old port may be in TIME_WAIT or taken: try once more on a fresh one.
      await this._spawn(await freePort());
    }
    return this;
  }

  /** Kill (if needed) and remove the temp data dir. Never throws. */
  async cleanup() {
    allServers.delete(this);
    tetherPorts.delete(this.port); // the port may serve something else next
    try {
      if (this.alive) {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    } catch {
      /* ignore */
    }
    if (this.ownsDataDir) {
      try {
        fs.rmSync(this.dataDir, { recursive: true, force: true });
      } catch {
        /* ignore */
      }
    }
  }
}

/**
 * Start build/tether on a free loopback port with a fresh temp data dir
 * (unless dataDir is given) and wait for GET /readyz == 200.
 * Returns a Server: {port, url, wsUrl, dataDir, proc, kill9(), stop(), restart(), output}.
 */
export async function startServer({ dataDir, args = [], env = {}, host = '127.0.0.1' } = {}) {
  if (!fs.existsSync(BIN)) throw new Error(`tether binary not found at ${BIN} (build it, or set TETHER_BIN)`);
  const owns = !dataDir;
  const dir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tether-it-'));
  const srv = new Server({ dataDir: dir, args, env, ownsDataDir: owns, host });
  allServers.add(srv);
  try {
    await srv._spawn(await freePort());
  } catch (e) {
    await srv.cleanup();
    throw e;
  }
  return srv;
}

// ------------------------------------------------------------------- client

let clientSeq = 0;

/** Frames off schema seen by any CheckedWebSocket (itest fails the test they came in). */
export const offSchemaFrames = [];

function parsedOrNull(data) {
  try {
    return JSON.parse(String(data));
  } catch {
    return null;
  }
}

/**
 * A `ws` WebSocket that checks every frame it sends and receives against
 * protocol/schema, for clients the harness does not drive itself (the web
 * client, web/tether-client.js, takes it as its WebSocket constructor).
 */
export class CheckedWebSocket extends WebSocket {
  static dirs = ['client', 'server']; // schemas.mjs: what this socket sends, what it receives

  constructor(...args) {
    super(...args);
    this.on('message', (data, isBinary) => {
      const f = isBinary ? null : parsedOrNull(data);
      const bad = f
        ? frameSchemaError(this.constructor.dirs[1], f)
        : `server sent a frame that is not JSON text: ${String(data).slice(0, 300)}`;
      if (bad) offSchemaFrames.push(bad);
    });
  }

  send(data, ...rest) {
    const f = parsedOrNull(data);
    const bad = f
      ? frameSchemaError(this.constructor.dirs[0], f)
      : `client sent a frame that is not JSON: ${String(data).slice(0, 300)}`;
    if (bad) offSchemaFrames.push(bad);
    return super.send(data, ...rest);
  }

  /** Send a frame off schema on purpose (a bad-input test), unchecked. */
  sendUnchecked(data, ...rest) {
    return super.send(data, ...rest);
  }
}

/** The same for /v1/ai-sdk/ws (protocol/schema/ai-sdk-ws.*.json). */
export class CheckedAiSdkWebSocket extends CheckedWebSocket {
  static dirs = ['ai-sdk-ws.client', 'ai-sdk-ws.server'];
}

export class Client {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name;
    this.frames = []; // every frame received, parsed (or {__raw} if not JSON)
    this.events = []; // frames carrying a numeric seq (session events)
    this.errors = []; // every frame of type "error"
    this.sent = []; // what we sent (truncated), for diagnostics
    this.schemaErrors = []; // received frames that do not match protocol/schema (itest fails on any)
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._waiters = []; // {pred, from, resolve, reject, timer, kind}
    this._cursor = 0; // nextEvent consumption cursor into events
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const [, p] of this._pending) {
          clearTimeout(p.timer);
          p.reject(new Error(`${this.name}: socket closed (${code} ${reason}) before reply to ${p.id}`));
        }
        this._pending.clear();
        for (const w of this._waiters) {
          clearTimeout(w.timer);
          w.reject(new Error(`${this.name}: socket closed (${code} ${reason}) while waiting for ${w.what}`));
        }
        this._waiters = [];
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {
      /* surfaced via close */
    });
    ws.on('message', (data, isBinary) => this._onMessage(data, isBinary));
  }

  get protocol() {
    return this.ws.protocol;
  }
  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  _onMessage(data, isBinary) {
    let f;
    const text = data.toString('utf8');
    try {
      f = JSON.parse(text);
    } catch {
      f = { __raw: text, __binary: isBinary };
    }
    if (isBinary) f.__binary = true;
    this.frames.push(f);
    // Every frame the server sends must match its schema (schemas.mjs); a
    // mismatch fails the test that owns this client (itest) with the error.
    const bad =
      f.__raw !== undefined || isBinary
        ? `${this.name}: not a JSON text frame: ${text.slice(0, 300)}`
        : frameSchemaError('server', f);
    if (bad) this.schemaErrors.push(`${this.name}: ${bad}`);
    if (f && typeof f === 'object') {
      if (f.type === 'error') this.errors.push(f);
      if (typeof f.seq === 'number') this.events.push(f);
      if (typeof f.re === 'string' && this._pending.has(f.re)) {
        const p = this._pending.get(f.re);
        this._pending.delete(f.re);
        clearTimeout(p.timer);
        p.resolve(f);
      }
    }
    this._checkWaiters();
  }

  _checkWaiters() {
    if (!this._waiters.length) return;
    const still = [];
    for (const w of this._waiters) {
      const list = w.kind === 'frame' ? this.frames : this.events;
      let hit = -1;
      for (let i = w.from; i < list.length; i++) {
        if (w.pred(list[i])) {
          hit = i;
          break;
        }
      }
      if (hit >= 0) {
        clearTimeout(w.timer);
        if (w.consume) this._cursor = Math.max(this._cursor, hit + 1);
        w.resolve(list[hit]);
      } else {
        w.from = list.length;
        still.push(w);
      }
    }
    this._waiters = still;
  }

  _wait(kind, pred, timeoutMs, from, consume, what) {
    return new Promise((resolve, reject) => {
      const w = { kind, pred, from, resolve, reject, consume, what };
      w.timer = setTimeout(() => {
        this._waiters = this._waiters.filter((x) => x !== w);
        reject(
          new Error(
            `${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; last frames:\n${this.lastFrames()}`,
          ),
        );
      }, timeoutMs);
      this._waiters.push(w);
      if (this.closeInfo) {
        clearTimeout(w.timer);
        this._waiters = this._waiters.filter((x) => x !== w);
        reject(new Error(`${this.name}: socket already closed (${this.closeInfo.code}) while waiting for ${what}`));
        return;
      }
      this._checkWaiters();
    });
  }

  lastFrames(n = 15) {
    return this.frames
      .slice(-n)
      .map((f) => '  ' + JSON.stringify(f).slice(0, 300))
      .join('\n');
  }

  /**
   * Send an object as a JSON text frame. It must match its client schema
   * (schemas.mjs), else this throws with the schema error; a test that sends a
   * malformed frame on purpose says so with {invalid: true}.
   */
  send(obj, { invalid = false } = {}) {
    if (!invalid) {
      const bad = frameSchemaError('client', obj);
      if (bad) throw new Error(`${this.name}: ${bad}`);
    }
    const s = JSON.stringify(obj);
    this.sent.push(s.slice(0, 200));
    this.ws.send(s);
  }

  /** Send raw data: a string (text frame) or Buffer ({binary:true} for a binary frame). */
  sendRaw(data, { binary = false } = {}) {
    this.sent.push(`[raw${binary ? ' binary' : ''}] ` + String(data).slice(0, 200));
    this.ws.send(data, { binary });
  }

  /** Send with an auto id; resolves with the reply carrying re == id (ok, error, welcome…). */
  request(obj, timeoutMs = 5000, { invalid = false } = {}) {
    const id = obj.id ?? `${this.name}-r${this._nextId++}`;
    const msg = { ...obj, id };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(
          new Error(
            `${this.name}: no reply to ${JSON.stringify(msg).slice(0, 200)} within ${timeoutMs} ms; last frames:\n${this.lastFrames()}`,
          ),
        );
      }, timeoutMs);
      this._pending.set(id, { id, resolve, reject, timer });
      try {
        this.send(msg, { invalid });
      } catch (e) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(e);
      }
    });
  }

  /** Like request() but throws unless the reply is type "ok". */
  async ok(obj, timeoutMs) {
    const r = await this.request(obj, timeoutMs);
    if (r.type !== 'ok')
      throw new Error(`${this.name}: expected ok for ${JSON.stringify(obj).slice(0, 200)}, got ${JSON.stringify(r)}`);
    return r;
  }

  /** Wait for the next event (seq-carrying frame) after the last one nextEvent returned. */
  nextEvent(pred = () => true, timeoutMs = 5000) {
    return this._wait('event', pred, timeoutMs, this._cursor, true, `event ${pred.toString().slice(0, 120)}`);
  }

  /** Wait for any event, already received or future, matching pred (does not move the cursor). */
  waitEvent(pred, timeoutMs = 5000, from = 0) {
    return this._wait('event', pred, timeoutMs, from, false, `event ${pred.toString().slice(0, 120)}`);
  }

  /** Wait for any frame (already received from index `from`, or future) matching pred. */
  waitFrame(pred, timeoutMs = 5000, from = 0) {
    return this._wait('frame', pred, timeoutMs, from, false, `frame ${pred.toString().slice(0, 120)}`);
  }

  /** ping (with an id); resolves with the pong, which must carry re == id. */
  async ping(timeoutMs = 3000) {
    const id = `${this.name}-p${this._nextId++}`;
    const from = this.frames.length;
    this.send({ type: 'ping', id });
    const f = await this.waitFrame((x) => x.type === 'pong' || (x.type === 'error' && x.re === id), timeoutMs, from);
    if (f.type === 'pong' && f.re !== id) throw new Error(`${this.name}: pong without re=${id}: ${JSON.stringify(f)}`);
    return f;
  }

  /** hello with token (omitted when undefined); resolves with the reply. */
  hello(token, extra = {}, opts) {
    const m = { type: 'hello', client: 'tether-it/1', ...extra };
    if (token !== undefined) m.token = token;
    return this.request(m, undefined, opts);
  }

  /** Events of one session, in arrival order. */
  sessionEvents(session) {
    return this.events.filter((e) => e.session === session);
  }

  maxSeq(session) {
    let m = 0;
    for (const e of this.events) if (e.session === session && e.seq > m) m = e.seq;
    return m;
  }

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
    return this.closed;
  }

  /** Abrupt TCP drop, no close handshake. */
  terminate() {
    this.ws.terminate();
    return this.closed;
  }
}

/**
 * Open a WebSocket to /v1/ws. Options:
 *  header:    token sent as `Authorization: Bearer <header>` on the upgrade
 *  query:     token sent as `?token=<query>`
 *  protocols: subprotocols offered (default ['tether.v1']; [] for none)
 *  token:     if given, a hello with this token is sent and must get welcome
 *  hello:     true to send a hello without token (open mode)
 *  wsOptions: extra options for the ws client (e.g. {autoPong:false})
 *  host:      address to connect to (default 127.0.0.1)
 *  params:    more query parameters on the upgrade URL ({session: id} routes through haproxy)
 * Resolves with a Client once open (rejects if the upgrade fails).
 */
export function connect(
  port,
  {
    token,
    header,
    query,
    params,
    protocols = [SUBPROTOCOL],
    hello = false,
    name,
    wsOptions = {},
    host = '127.0.0.1',
  } = {},
) {
  let q = query !== undefined ? `?token=${encodeURIComponent(query)}` : '';
  if (params) q += (q ? '&' : '?') + new URLSearchParams(params).toString();
  const headers = header !== undefined ? { Authorization: `Bearer ${header}` } : {};
  const ws = new WebSocket(`ws://${host}:${port}/v1/ws${q}`, protocols, {
    headers,
    handshakeTimeout: 5000,
    maxPayload: 64 << 20,
    ...wsOptions,
  });
  const c = new Client(ws, name ?? `c${++clientSeq}`);
  allClients.add(c);
  return new Promise((resolve, reject) => {
    ws.once('open', async () => {
      if (token === undefined && !hello) return resolve(c);
      try {
        const w = await c.hello(token);
        if (w.type !== 'welcome') throw new Error(`${c.name}: hello answered by ${JSON.stringify(w)}`);
        c.welcome = w;
        resolve(c);
      } catch (e) {
        reject(e);
      }
    });
    ws.once('unexpected-response', (req, res) => {
      const err = new Error(`upgrade refused: HTTP ${res.statusCode}`);
      err.statusCode = res.statusCode;
      res.resume();
      ws.terminate();
      reject(err);
    });
    ws.once('error', reject);
  });
}

/** Send hello on an existing client (helper form). */
export function hello(client, token, extra) {
  return client.hello(token, extra);
}

// ------------------------------------------------------------------- tokens

const b64u = (buf) => Buffer.from(buf).toString('base64url');

/** Mint a JWT with node's crypto (independent of the server). alg 'none' gives an unsigned token. */
export function mintJwt(secret, claims, { alg = 'HS256', header = {} } = {}) {
  const h = b64u(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const p = b64u(JSON.stringify(claims));
  if (alg === 'none') return `${h}.${p}.`;
  const sig = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest();
  return `${h}.${p}.${b64u(sig)}`;
}

/** Verify an HS256 JWT with node's crypto; returns {header, payload} or throws. */
export function verifyJwt(token, secret) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a JWT: ' + token);
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  const want = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want))
    throw new Error('JWT signature does not verify');
  return { header, payload };
}

export async function mintViaApi(port, apiKey, user, ttl_s = 3600) {
  const r = await httpRequest(port, 'POST', '/v1/tokens', {
    headers: { Authorization: `Bearer ${apiKey}` },
    body: { user, ttl_s },
  });
  if (r.status !== 200 || typeof r.json?.token !== 'string') {
    throw new Error(`POST /v1/tokens for ${user}: HTTP ${r.status} ${r.body}`);
  }
  return r.json.token;
}

// ----------------------------------------------------------------- sessions

export async function openSession(c, agent = 'echo', extra = {}) {
  const r = await c.ok({ type: 'session.open', agent, ...extra });
  if (typeof r.session !== 'string') throw new Error(`session.open ok without session: ${JSON.stringify(r)}`);
  return r;
}

/** Wait for a state event of `session` with seq > afterSeq and the given state. */
export function waitState(c, session, state, afterSeq = 0, timeoutMs = 5000) {
  return c.waitEvent(
    (e) => e.session === session && e.type === 'state' && e.state === state && e.seq > afterSeq,
    timeoutMs,
  );
}

/** Say `text` (extra: more fields of the say) and wait until the turn is over (state idle after it). Returns {reply, events}. */
export async function sayAndWait(c, session, text, client_msg_id, timeoutMs = 10_000, extra = {}) {
  const before = c.maxSeq(session);
  const reply = await c.ok({ type: 'say', session, text, client_msg_id, ...extra });
  // The turn's own user event comes first; idle after it ends the turn.
  const user = await c.waitEvent(
    (e) => e.session === session && e.type === 'user' && e.client_msg_id === client_msg_id && e.seq > before,
    timeoutMs,
  );
  const idle = await waitState(c, session, 'idle', user.seq, timeoutMs);
  const events = c.sessionEvents(session).filter((e) => e.seq >= user.seq && e.seq <= idle.seq);
  return { reply, events, user, idle };
}

export async function sessionInfo(c, session) {
  const r = await c.ok({ type: 'session.list' });
  if (!Array.isArray(r.sessions)) throw new Error(`session.list without sessions array: ${JSON.stringify(r)}`);
  return r.sessions.find((s) => s.session === session);
}

// ------------------------------------------------------------- invariants

/** Every event carries session, seq and an RFC 3339 UTC ts. */
export function checkEventShape(assert, e) {
  assert.equal(typeof e.type, 'string', `event without type: ${JSON.stringify(e)}`);
  assert.equal(typeof e.session, 'string', `event without session: ${JSON.stringify(e)}`);
  assert.ok(Number.isInteger(e.seq) && e.seq >= 1, `bad seq: ${JSON.stringify(e)}`);
  assert.match(String(e.ts), RFC3339_UTC, `ts not RFC 3339 UTC: ${JSON.stringify(e)}`);
}

/** Seqs strictly +1 from `first`, no gap, no duplicate. */
export function assertContiguous(assert, events, first, label = '') {
  const seqs = events.map((e) => e.seq);
  const want = seqs.map((_, i) => first + i);
  assert.deepEqual(seqs, want, `${label} seqs not contiguous from ${first}: ${JSON.stringify(seqs)}`);
}

/** Per message_id: exactly one start, then deltas, then exactly one end or discard. */
export function checkMessages(assert, events) {
  const msgs = new Map();
  for (const e of events) {
    if (!['message.start', 'delta', 'message.end', 'message.discard'].includes(e.type)) continue;
    const id = e.message_id;
    assert.equal(typeof id, 'string', `message event without message_id: ${JSON.stringify(e)}`);
    let m = msgs.get(id);
    if (e.type === 'message.start') {
      assert.ok(!m, `second message.start for ${id}: ${JSON.stringify(e)}`);
      m = { id, start: e, deltas: [], end: null, discard: null };
      msgs.set(id, m);
      continue;
    }
    assert.ok(m, `${e.type} before message.start for ${id}: ${JSON.stringify(e)}`);
    assert.ok(!m.end && !m.discard, `${e.type} after the message was finished: ${JSON.stringify(e)}`);
    if (e.type === 'delta') m.deltas.push(e);
    else if (e.type === 'message.end') m.end = e;
    else m.discard = e;
  }
  return msgs;
}

// --------------------------------------------------------- test wrapper

/**
 * A test that owns servers and clients: all are killed/closed when it ends;
 * on failure, the server output and recent frames are printed.
 */
export function itest(name, fn, { timeout = 20_000, skip } = {}) {
  return test(name, { timeout, skip }, async (t) => {
    const servers = [];
    const clientsBefore = new Set(allClients);
    const offSchemaBefore = offSchemaFrames.length;
    const offSpecBefore = offSpecAnswers.length;
    const ctx = {
      t,
      async startServer(opts) {
        const s = await startServer(opts);
        servers.push(s);
        return s;
      },
      servers,
    };
    let failed = false;
    try {
      await fn(ctx);
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      const mine = [...allClients].filter((c) => !clientsBefore.has(c));
      const schemaErrors = [
        ...mine.flatMap((c) => c.schemaErrors),
        ...offSchemaFrames.slice(offSchemaBefore),
        ...offSpecAnswers.slice(offSpecBefore),
      ];
      if (!failed && schemaErrors.length) {
        failed = true;
        // Reported after the cleanup below, as this test's failure.
        ctx.schemaFailure = new Error(
          `frames or HTTP answers that do not match protocol/schema or openapi.yaml:\n${schemaErrors.slice(0, 5).join('\n')}`,
        );
      }
      if (failed) {
        if (schemaErrors.length)
          console.error(`--- frames or answers off schema:\n${schemaErrors.slice(0, 5).join('\n')}`);
        for (const c of mine) {
          console.error(
            `--- client ${c.name} close=${JSON.stringify(c.closeInfo)} sent(last 5): ${JSON.stringify(c.sent.slice(-5))}\n${c.lastFrames(25)}`,
          );
        }
        for (const s of servers) console.error(`--- server output (data dir ${s.dataDir}):\n${s.tail(8000)}`);
      }
      for (const c of mine) {
        try {
          c.terminate();
        } catch {
          /* ignore */
        }
        allClients.delete(c);
      }
      await Promise.all(servers.map((s) => s.cleanup()));
    }
    if (ctx.schemaFailure) throw ctx.schemaFailure;
  });
}

// ------------------------------------------------------ model layer (LLM)
/**
 * Something a file's tests share (a fake provider, a browser): made by
 * start() before them, closed (its close()) after. Returns a stand-in used as
 * the thing itself inside the tests (its properties, its methods bound to
 * it); touching it before it was started is an error.
 */
export function forTheTests(start, what = 'it') {
  let live = null;
  before(async () => {
    live = await start();
  });
  after(async () => {
    await live?.close();
  });
  return new Proxy(
    {},
    {
      get(_, key) {
        if (!live) {
          if (typeof key === 'symbol') return undefined;
          throw new Error(`${what} not started yet (.${key} outside a test)`);
        }
        const v = Reflect.get(live, key, live);
        return typeof v === 'function' ? v.bind(live) : v;
      },
    },
  );
}

// Helpers for the llm-*.test.mjs files, which drive Tether against the fake
// provider (tests/fake-provider) through a routes file (agents/llm/route.h).

const routeDirs = new Set();
after(() => {
  for (const d of routeDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
});

/** Write a routes object to a fresh temp file; returns its path (removed when the file's tests end). */
export function writeRoutesFile(routes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-routes-'));
  routeDirs.add(dir);
  const p = path.join(dir, 'routes.json');
  fs.writeFileSync(p, JSON.stringify(routes, null, 2));
  return p;
}

/** One OpenAI-format target at the fake provider under `prefix` (key from FAKE_KEY). */
export function fakeTarget(fpUrl, prefix, extra = {}) {
  return { provider: 'openai', base_url: `${fpUrl}/${prefix}/v1`, model: 'gpt-4o-mini', key_env: 'FAKE_KEY', ...extra };
}

/** The JSON log lines of a server's output with "msg":"llm call" (one per provider attempt). */
export function llmCallLines(output) {
  const lines = [];
  for (const l of output.split('\n')) {
    if (!l.includes('"llm call"')) continue;
    try {
      const j = JSON.parse(l);
      if (j.msg === 'llm call') lines.push(j);
    } catch {
      /* not JSON */
    }
  }
  return lines;
}

/** What a client shows: the deltas of every message not discarded, concatenated (seq order, each seq once). */
export function shownText(events) {
  const seen = new Set();
  const evs = [...events]
    .sort((a, b) => a.seq - b.seq)
    .filter((e) => (seen.has(e.seq) ? false : (seen.add(e.seq), true)));
  const discarded = new Set(evs.filter((e) => e.type === 'message.discard').map((e) => e.message_id));
  return evs
    .filter((e) => e.type === 'delta' && !discarded.has(e.message_id))
    .map((e) => e.text)
    .join('');
}
