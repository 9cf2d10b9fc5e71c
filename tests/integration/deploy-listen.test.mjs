// --host binds exactly what it names (issue 15): one address, a list, IPv6;
// nothing else answers, and the start-up log states what was bound, read
// back from the sockets.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, freePort, REPO } from './harness.mjs';
import { rawGet, runTether, stopTether } from './deploy-lib.mjs';

function dataDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tether-listen-'));
}

async function start(host, port) {
  const dir = dataDir();
  const r = await runTether(BIN, ['--host', host, '--port', String(port), '--data-dir', dir], { cwd: REPO });
  assert.ok(r.proc, `did not start: ${JSON.stringify(r.lines)}`);
  r.dir = dir;
  return r;
}

async function finish(r) {
  const e = await stopTether(r);
  fs.rmSync(r.dir, { recursive: true, force: true });
  assert.equal(e.code, 0);
}

const listening = (r) => r.lines.find((l) => l.msg === 'listening');

test('--host 127.0.0.2 binds only 127.0.0.2: 127.0.0.1 on the same port is refused', async () => {
  const port = await freePort();
  const r = await start('127.0.0.2', port);
  try {
    assert.deepEqual(listening(r).bound, [`127.0.0.2:${port}`]);
    // What the kernel says is listening on that port: 127.0.0.2 alone, no wildcard.
    const ss = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
    assert.deepEqual(
      ss
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[3]),
      [`127.0.0.2:${port}`],
      ss,
    );
    const ok = await rawGet('127.0.0.2', port, '/healthz');
    assert.equal(ok.status, 200);
    await assert.rejects(rawGet('127.0.0.1', port, '/healthz'), /ECONNREFUSED/);
  } finally {
    await finish(r);
  }
});

test('--host as a list with IPv6: both addresses answer, the log names each', async () => {
  const port = await freePort();
  const r = await start('127.0.0.3 , [::1] ', port);
  try {
    assert.deepEqual(listening(r).bound, [`127.0.0.3:${port}`, `[::1]:${port}`]);
    assert.equal((await rawGet('127.0.0.3', port, '/healthz')).status, 200);
    assert.equal((await rawGet('::1', port, '/healthz')).status, 200);
    await assert.rejects(rawGet('127.0.0.1', port, '/healthz'), /ECONNREFUSED/);
  } finally {
    await finish(r);
  }
});

test('--host ::1 alone is IPv6 only (V6ONLY): IPv4 loopback is refused', async () => {
  const port = await freePort();
  const r = await start('::1', port);
  try {
    assert.deepEqual(listening(r).bound, [`[::1]:${port}`]);
    assert.equal((await rawGet('::1', port, '/healthz')).status, 200);
    await assert.rejects(rawGet('127.0.0.1', port, '/healthz'), /ECONNREFUSED/);
  } finally {
    await finish(r);
  }
});

test('an address that cannot be bound stops the start-up with a message naming it', async () => {
  const port = await freePort();
  const dir = dataDir();
  try {
    const r = await runTether(BIN, ['--host', '127.0.0.1,192.0.2.1', '--port', String(port), '--data-dir', dir], {
      cwd: REPO,
    });
    assert.notEqual(r.code, 0);
    const line = r.lines.find((l) => l.msg === 'cannot listen');
    assert.ok(line, JSON.stringify(r.lines));
    assert.match(line.error, /assign/i);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
