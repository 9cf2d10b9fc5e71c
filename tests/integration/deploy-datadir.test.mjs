// Start-up failures of the data directory, each named with its own exit
// code (issue 15; README.md, "Exit codes"): held by another server (with its
// pid), missing parent, not a directory, permission denied (as an
// unprivileged user: root bypasses permissions), no space for a new store.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { BIN, freePort, REPO } from './harness.mjs';
import { runTether, stopTether } from './deploy-lib.mjs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-datadir-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Start with dataDir; expect an exit before listening. Returns {code, line}. */
async function failing(dataDir, { bin = BIN, pre = [] } = {}) {
  const port = await freePort();
  const args = [...pre, '--port', String(port), '--data-dir', dataDir];
  const r = pre.length
    ? await runTether(pre[0], [...pre.slice(1), bin, ...args.slice(pre.length)], { cwd: REPO })
    : await runTether(bin, args, { cwd: REPO });
  assert.ok(!r.proc, `started anyway: ${JSON.stringify(r.lines)}`);
  const line = r.lines.find((l) => l.level === 'error');
  assert.ok(line, JSON.stringify(r.lines));
  return { code: r.code, line, lines: r.lines };
}

test('another server holds the directory: exit 3, its pid named', async () => {
  const dir = path.join(tmp, 'held');
  const first = await runTether(BIN, ['--port', String(await freePort()), '--data-dir', dir], { cwd: REPO });
  assert.ok(first.proc);
  try {
    const { code, line } = await failing(dir);
    assert.equal(code, 3);
    assert.equal(line.msg, 'another server holds the data directory');
    assert.equal(line.pid, first.proc.pid);
    assert.equal(line.exit_code, 3);
    const check = spawnCheck(dir);
    assert.equal(check.status, 1);
    assert.match(check.stdout, new RegExp(`FAIL +data dir .*another server holds.*pid ${first.proc.pid}`));
  } finally {
    assert.equal((await stopTether(first)).code, 0);
  }
});

function spawnCheck(dir) {
  try {
    return { status: 0, stdout: execFileSync(BIN, ['--check-config', '--data-dir', dir], { encoding: 'utf8' }) };
  } catch (e) {
    return e;
  }
}

test('the parent is missing: exit 4', async () => {
  const { code, line } = await failing(path.join(tmp, 'no-such-parent', 'data'));
  assert.equal(code, 4);
  assert.match(line.msg, /parent does not exist/);
  assert.equal(line.path, path.join(tmp, 'no-such-parent'));
});

test('a file, or a file on the path: exit 5', async () => {
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'x');
  const a = await failing(file);
  assert.equal(a.code, 5);
  assert.equal(a.line.msg, 'the data directory is not a directory');
  const b = await failing(path.join(file, 'data'));
  assert.equal(b.code, 5);
  assert.match(b.line.msg, /not a directory/);
});

test('permission denied, as an unprivileged user: exit 6', async () => {
  const root = process.getuid() === 0;
  const locked = path.join(tmp, 'locked');
  fs.mkdirSync(path.join(locked, 'data'), { recursive: true });
  fs.chmodSync(path.join(locked, 'data'), 0o700);
  // As root, run the server as nobody (root would bypass the mode bits).
  if (!root) fs.chmodSync(path.join(locked, 'data'), 0o500);
  const pre = root ? ['runuser', '-u', 'nobody', '--'] : [];
  const { code, line } = await failing(path.join(locked, 'data'), { pre });
  assert.equal(code, 6);
  assert.match(line.msg, /^permission denied/);
  if (!root) fs.chmodSync(path.join(locked, 'data'), 0o700);
});

test('no room for a new store (a full tmpfs, when it can be mounted): exit 7, no crash', async (t) => {
  const mnt = path.join(tmp, 'full');
  fs.mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch {
    t.skip('cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)');
    return;
  }
  try {
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${path.join(mnt, 'fill')}`, 'bs=4k'], { stdio: 'pipe' });
    } catch {
      /* dd ends with ENOSPC: that is the point */
    }
    const { code, line } = await failing(path.join(mnt, 'data'));
    assert.equal(code, 7);
    assert.match(line.msg, /no room for a new store/);
  } finally {
    execFileSync('umount', [mnt]);
  }
});
