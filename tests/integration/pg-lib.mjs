// A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, a
// server on a free loopback port (listen_addresses=127.0.0.1) and a temp
// unix socket dir, one database; stopped and removed after.
//
// PostgreSQL refuses to run as root: when the tests run as root (CI), every
// PostgreSQL command runs as Debian's `postgres` user (runuser), and the temp
// dir is handed to it. Queries go through `psql` (postgresql-client).
// Imports nothing of node:test, so benchmarks use it too; a test file calls
// destroyAllPostgres() from its after hook.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const asRoot = process.getuid?.() === 0;

/** Is PostgreSQL installed (initdb present)? */
export const pgAvailable = fs.existsSync(path.join(PG_BIN, 'initdb'));

function pgCmd(bin, args, opts = {}) {
  const exe = path.join(PG_BIN, bin);
  return asRoot
    ? run('runuser', ['-u', 'postgres', '--', exe, ...args], { timeout: 60_000, ...opts })
    : run(exe, args, { timeout: 60_000, ...opts });
}

const clusters = new Set();
let dbSeq = 0;

/** Stop and remove every cluster not destroyed yet (a test file's after hook). */
export async function destroyAllPostgres() {
  for (const c of [...clusters]) await c.destroy();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export class PgCluster {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
    this.data = path.join(dir, 'data');
    this.sock = path.join(dir, 'sock');
    this.db = 'tether_test';
    this.running = false;
  }

  /** The URL Tether gets (TCP on loopback, trust authentication). */
  get url() {
    return `postgresql://tether@127.0.0.1:${this.port}/${this.db}`;
  }

  async start() {
    await pgCmd('pg_ctl', [
      '-D',
      this.data,
      '-l',
      path.join(this.dir, 'log'),
      '-w',
      '-t',
      '30',
      '-o',
      `-c listen_addresses=127.0.0.1 -p ${this.port} -k ${this.sock} -c fsync=off -c synchronous_commit=off`,
      'start',
    ]);
    this.running = true;
  }

  /** Fast shutdown: clients are disconnected. */
  async stop() {
    if (!this.running) return;
    await pgCmd('pg_ctl', ['-D', this.data, '-w', '-m', 'fast', 'stop']);
    this.running = false;
  }

  /** Run one SQL text with psql; resolves the rows as arrays of strings. */
  async query(sql, db = this.db) {
    const { stdout } = await pgCmd('psql', [
      '-X',
      '-q',
      '-At',
      '-F',
      '\t',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      '127.0.0.1',
      '-p',
      String(this.port),
      '-U',
      'tether',
      '-d',
      db,
      '-c',
      sql,
    ]);
    return stdout
      .split('\n')
      .filter((l) => l.length)
      .map((l) => l.split('\t'));
  }

  /** A fresh, empty database on this cluster; resolves its URL. */
  async newDatabase() {
    const name = `t${++dbSeq}`;
    await pgCmd('createdb', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'tether', name]);
    return `postgresql://tether@127.0.0.1:${this.port}/${name}`;
  }

  async value(sql, db) {
    const rows = await this.query(sql, db);
    return rows.length ? rows[0][0] : null;
  }

  log() {
    try {
      return fs.readFileSync(path.join(this.dir, 'log'), 'utf8');
    } catch {
      return '';
    }
  }

  async destroy() {
    clusters.delete(this);
    try {
      await this.stop();
    } catch {
      /* already gone */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** initdb, start, create the database. */
export async function startPostgres() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-pg-'));
  fs.mkdirSync(path.join(dir, 'sock'));
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: g } = await run('id', ['-g', 'postgres']);
    const uid = Number(stdout.trim()),
      gid = Number(g.trim());
    fs.chownSync(dir, uid, gid);
    fs.chownSync(path.join(dir, 'sock'), uid, gid);
  }
  const c = new PgCluster(dir, await freePort());
  clusters.add(c);
  try {
    await pgCmd('initdb', ['-D', c.data, '-U', 'tether', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
    await c.start();
    await pgCmd('createdb', ['-h', '127.0.0.1', '-p', String(c.port), '-U', 'tether', c.db]);
  } catch (e) {
    const log = c.log();
    await c.destroy();
    throw new Error(`cannot start PostgreSQL: ${e.message}\n${log}`);
  }
  return c;
}
