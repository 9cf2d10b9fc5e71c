// A throwaway Tether cluster for the tests: a PostgreSQL (pg-lib.mjs), N
// tether nodes on free loopback ports (harness.mjs startServer: each its own
// temp --data-dir, --node-id node1..nodeN, the same --database-url), and
// haproxy in front, a child process in foreground mode (-db) on loopback.
//
// One source of truth for the load balancer: haproxy runs server/haproxy.cfg
// itself, with only its "# BEGIN nodes" ... "# END nodes" block rewritten to
// this cluster's nodes (each line in the form of the block's first one) and
// its "${TETHER_LB_*-default}" variables set in haproxy's environment (the
// frontend address and the health check timing). A second file, made here,
// adds a stats page on another loopback port so tests can see what haproxy
// thinks of each node (status()).
//
// Everything is stopped by destroy(); a file that uses startCluster() also
// gets a safety net (this module's after hook, and a process exit hook for
// haproxy) so nothing outlives it, also when a test fails or times out.
//
//   const cl = await startCluster({ nodes: 3, args: ['--durability', 'replicated'] });
//   const c = await cl.connect('s_123');          // through haproxy, ?session=s_123
//   await cl.kill9(1); await cl.waitStatus(1, 'DOWN');
//   await cl.destroy();

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

import { REPO, connect, freePort, httpGet, sleep, startServer } from './harness.mjs';
import { pgAvailable, startPostgres } from './pg-lib.mjs';

/** The haproxy config the cluster runs (its node block rewritten). */
export const HAPROXY_TEMPLATE = path.join(REPO, 'server', 'haproxy.cfg');

function findHaproxy() {
  const given = process.env.HAPROXY_BIN;
  const candidates = given
    ? [given]
    : [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin'].map((d) =>
        path.join(d || '.', 'haproxy'),
      );
  for (const p of candidates) {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** The haproxy binary (HAPROXY_BIN if executable, else found in PATH or /usr/sbin), or null. */
export const HAPROXY_BIN = findHaproxy();
/** Is haproxy installed? (Debian's `haproxy` package) */
export const haproxyAvailable = HAPROXY_BIN !== null;
export { pgAvailable };

const BEGIN = '# BEGIN nodes',
  END = '# END nodes';

/**
 * The template's text with its node block replaced by one `server` line per
 * node ({name, host, port}), each in the form of the block's first line
 * (its options, e.g. `check`, kept). Throws when the template lacks the block.
 */
export function haproxyConfig(nodes, template = fs.readFileSync(HAPROXY_TEMPLATE, 'utf8')) {
  // The markers on lines of their own (the file's comments name them too).
  const b = template.search(new RegExp(`^${BEGIN}$`, 'm')),
    e = template.search(new RegExp(`^${END}$`, 'm'));
  if (b < 0 || e < b) throw new Error(`haproxy template: no "${BEGIN}" ... "${END}" block`);
  const block = template.slice(b + BEGIN.length, e);
  const first = block.split('\n').find((l) => /^\s*server\s/.test(l));
  const m = first?.match(/^(\s*server\s+)\S+(\s+)\S+(.*)$/);
  if (!m) throw new Error('haproxy template: the node block has no "server NAME ADDR ..." line');
  const lines = nodes.map((n) => `${m[1]}${n.name}${m[2]}${n.host}:${n.port}${m[3]}`);
  return `${template.slice(0, b + BEGIN.length)}\n${lines.join('\n')}\n${template.slice(e)}`;
}

const clusters = new Set();
const haproxies = new Set();

process.on('exit', () => {
  for (const p of haproxies) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});
after(async () => {
  for (const c of [...clusters]) await c.destroy();
});

class Cluster {
  constructor({ pg, nodes, env, check, dir }) {
    this.pg = pg; // PgCluster (pg-lib.mjs) or null
    this.nodes = nodes; // harness Servers, each with .nodeId and .index
    this.env = env;
    this.check = check;
    this.dir = dir; // haproxy's config files
    this.lbPort = 0;
    this.statsPort = 0;
    this.haproxy = null; // the child process
    this.haproxyOutput = '';
    this._exited = null;
  }

  /** The node: an index (0-based), its node id ('node2') or the Server itself. */
  node(n) {
    const s =
      typeof n === 'number' ? this.nodes[n] : typeof n === 'string' ? this.nodes.find((x) => x.nodeId === n) : n;
    if (!s || !this.nodes.includes(s)) throw new Error(`no such node: ${n}`);
    return s;
  }

  /** The database URL every node was given ('' without a database). */
  get databaseUrl() {
    return this.pg ? this.pg.url : '';
  }
  /** http:// of haproxy's frontend. */
  get lbUrl() {
    return `http://127.0.0.1:${this.lbPort}`;
  }
  /** The WebSocket URL through haproxy, routed by session id (none: round robin). */
  wsUrl(sessionId) {
    const q = sessionId === undefined ? '' : `?${new URLSearchParams({ session: sessionId })}`;
    return `ws://127.0.0.1:${this.lbPort}/v1/ws${q}`;
  }
  /** http:// of node i directly (not through haproxy). */
  nodeUrl(i) {
    return this.node(i).url;
  }
  /** A harness Client through haproxy, routed by sessionId; hello sent unless opts say otherwise. */
  connect(sessionId, opts = {}) {
    const params = sessionId === undefined ? undefined : { session: sessionId };
    return connect(this.lbPort, { hello: opts.token === undefined, ...opts, params });
  }
  /** The node id that a socket for sessionId reaches now (connects, reads welcome.node, closes). */
  async nodeFor(sessionId) {
    const c = await this.connect(sessionId);
    try {
      return c.welcome.node;
    } finally {
      c.terminate();
    }
  }

  // ---------------------------------------------------------- faults

  /** SIGKILL a node and wait until it is gone. */
  async kill9(n) {
    return this.node(n).kill9();
  }
  /** SIGSTOP a node: it holds its sockets and its port but answers nothing. */
  stop(n) {
    const s = this.node(n);
    if (!s.alive) throw new Error(`stop(): ${s.nodeId} is not running`);
    s.proc.kill('SIGSTOP');
  }
  /** SIGCONT a node stopped by stop(). */
  cont(n) {
    const s = this.node(n);
    if (!s.alive) throw new Error(`cont(): ${s.nodeId} is not running`);
    s.proc.kill('SIGCONT');
  }
  /**
   * Start a node that was killed (or stop it gracefully first with
   * {graceful: true}) again on its data dir, port and node id. Should its
   * port be taken, it comes up on another one and haproxy is restarted with
   * the new address (its sockets are dropped then).
   */
  async restart(n, { graceful = false } = {}) {
    const s = this.node(n);
    if (s.alive) await (graceful ? s.stop() : s.kill9());
    const port = s.port;
    await s.restart();
    if (s.port !== port) await this.restartHaproxy();
    return s;
  }
  /** Stop PostgreSQL (fast shutdown: its clients are cut) and start it again on its port. */
  async restartPostgres({ downMs = 0 } = {}) {
    if (!this.pg) throw new Error('restartPostgres(): this cluster has no database');
    await this.pg.stop();
    if (downMs) await sleep(downMs);
    await this.pg.start();
  }

  // ---------------------------------------------------------- haproxy

  _writeConfig() {
    const nodes = this.nodes.map((s) => ({ name: s.nodeId, host: '127.0.0.1', port: s.port }));
    fs.writeFileSync(path.join(this.dir, 'haproxy.cfg'), haproxyConfig(nodes));
    // The stats page: a second file, so the cluster's config stays the template.
    fs.writeFileSync(
      path.join(this.dir, 'stats.cfg'),
      `frontend tether_test_stats\n    mode http\n    no log\n    bind 127.0.0.1:${this.statsPort}\n` +
        '    stats enable\n    stats uri /stats\n    stats refresh 0\n',
    );
  }

  async startHaproxy() {
    if (!haproxyAvailable) throw new Error('haproxy is not installed (apt-get install haproxy)');
    if (!this.lbPort) this.lbPort = await freePort();
    if (!this.statsPort) this.statsPort = await freePort();
    this._writeConfig();
    const args = ['-db', '-f', path.join(this.dir, 'haproxy.cfg'), '-f', path.join(this.dir, 'stats.cfg')];
    const env = {
      ...process.env,
      TETHER_LB_BIND: `127.0.0.1:${this.lbPort}`,
      TETHER_LB_CHECK_INTER: this.check.inter,
      TETHER_LB_CHECK_FALL: String(this.check.fall),
      TETHER_LB_CHECK_RISE: String(this.check.rise),
      TETHER_LB_CHECK_TIMEOUT: this.check.timeout,
    };
    this.haproxyOutput += `\n=== ${HAPROXY_BIN} ${args.join(' ')}\n`;
    const p = spawn(HAPROXY_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.haproxy = p;
    haproxies.add(p);
    const log = (d) => {
      this.haproxyOutput += d;
      if (this.haproxyOutput.length > 2_000_000) this.haproxyOutput = this.haproxyOutput.slice(-1_000_000);
    };
    p.stdout.setEncoding('utf8').on('data', log);
    p.stderr.setEncoding('utf8').on('data', log);
    this._exited = new Promise((resolve) => {
      p.on('exit', (code, signal) => {
        haproxies.delete(p);
        if (this.haproxy === p) this.haproxy = null;
        log(`=== haproxy exited code=${code} signal=${signal}\n`);
        resolve({ code, signal });
      });
      p.on('error', (err) => {
        haproxies.delete(p);
        if (this.haproxy === p) this.haproxy = null;
        log(`=== haproxy spawn error: ${err.message}\n`);
        resolve({ code: -1, error: err });
      });
    });
    const alive = this.nodes.filter((s) => s.alive).map((s) => s.nodeId);
    await this.waitStatus(alive, 'UP', 10_000);
  }

  async stopHaproxy() {
    const p = this.haproxy;
    if (!p) return;
    this.haproxy = null;
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 3000);
      await this._exited;
      clearTimeout(t);
    }
  }

  async restartHaproxy() {
    await this.stopHaproxy();
    await this.startHaproxy();
  }

  /** haproxy's view of the nodes: {nodeId: 'UP' | 'DOWN' | 'MAINT' | 'UP 1/2' | ...}. */
  async status() {
    const r = await httpGet(this.statsPort, '/stats;csv;norefresh');
    if (r.status !== 200) throw new Error(`haproxy stats: HTTP ${r.status}`);
    const lines = r.body.split('\n').filter((l) => l.length);
    const cols = lines[0].replace(/^# /, '').split(',');
    const px = cols.indexOf('pxname'),
      sv = cols.indexOf('svname'),
      st = cols.indexOf('status');
    const out = {};
    for (const l of lines.slice(1)) {
      const f = l.split(',');
      if (f[px] === 'tether' && f[sv] !== 'BACKEND' && f[sv] !== 'FRONTEND') out[f[sv]] = f[st];
    }
    return out;
  }

  /** Wait until haproxy reports each of nodes (indexes, Servers or ids) as `want` ('UP' or 'DOWN'). */
  async waitStatus(nodes, want, timeoutMs = 10_000) {
    const ids = (Array.isArray(nodes) ? nodes : [nodes]).map((n) => this.node(n).nodeId);
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (!this.haproxy) throw new Error(`haproxy is not running\n${this.haproxyTail()}`);
      try {
        const st = await this.status();
        last = JSON.stringify(st);
        if (ids.every((id) => st[id] === want)) return st;
      } catch (e) {
        last = e.message;
      }
      await sleep(50);
    }
    throw new Error(`haproxy: ${ids.join(', ')} not ${want} after ${timeoutMs} ms (${last})\n${this.haproxyTail()}`);
  }

  haproxyTail(n = 4000) {
    return this.haproxyOutput.length > n ? '…' + this.haproxyOutput.slice(-n) : this.haproxyOutput;
  }

  /** Everything the nodes and haproxy printed (the tail of each), for a failure message. */
  tail(n = 4000) {
    return [
      ...this.nodes.map((s) => `--- ${s.nodeId} (port ${s.port}, data ${s.dataDir}):\n${s.tail(n)}`),
      `--- haproxy (port ${this.lbPort}):\n${this.haproxyTail(n)}`,
    ].join('\n');
  }

  /** Stop haproxy, the nodes (SIGCONT first, then SIGKILL) and PostgreSQL; remove the temp dirs. Never throws. */
  async destroy() {
    if (!clusters.delete(this)) return;
    try {
      await this.stopHaproxy();
    } catch {
      /* ignore */
    }
    await Promise.all(this.nodes.map((s) => s.cleanup()));
    try {
      await this.pg?.destroy();
    } catch {
      /* ignore */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Start PostgreSQL (unless database is false), `nodes` tether nodes and
 * haproxy in front; resolves a Cluster once haproxy sees every node UP.
 *   nodes:     how many (default 3); node i has --node-id `node${i + 1}`
 *   args:      more arguments for every node (e.g. ['--durability', 'replicated'])
 *   nodeArgs:  (i) => more arguments for node i
 *   env:       environment of every node
 *   database:  start a PostgreSQL and give every node its --database-url (default true)
 *   check:     haproxy's health checks: {inter, fall, rise, timeout} (default 200ms,
 *              2, 1, 1s: a dead node is DOWN within about 0.5 s, a frozen one (its
 *              port still accepting) within about 2.5 s; a node slower than 1 s to
 *              answer /readyz twice in a row is taken out too)
 * On failure everything started is stopped again.
 */
export async function startCluster({
  nodes = 3,
  args = [],
  nodeArgs = () => [],
  env = {},
  database = true,
  check = {},
} = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-lb-'));
  const cl = new Cluster({
    pg: null,
    nodes: [],
    env,
    dir,
    check: { inter: '200ms', fall: 2, rise: 1, timeout: '1s', ...check },
  });
  clusters.add(cl);
  try {
    if (database) cl.pg = await startPostgres();
    for (let i = 0; i < nodes; i++) {
      const nodeId = `node${i + 1}`;
      const db = cl.pg ? ['--database-url', cl.pg.url] : [];
      const s = await startServer({ args: ['--node-id', nodeId, ...db, ...args, ...nodeArgs(i)], env });
      s.nodeId = nodeId;
      s.index = i;
      cl.nodes.push(s);
    }
    await cl.startHaproxy();
  } catch (e) {
    const tail = cl.tail();
    await cl.destroy();
    e.message += `\n${tail}`;
    throw e;
  }
  return cl;
}

/** haproxy's version line, or null when it is not installed. */
export function haproxyVersion() {
  if (!haproxyAvailable) return null;
  try {
    return execFileSync(HAPROXY_BIN, ['-v'], { encoding: 'utf8' }).split('\n')[0];
  } catch {
    return null;
  }
}
