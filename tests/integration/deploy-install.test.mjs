// Install and relocate (issue 15): `cmake --install` into a temp prefix,
// then the installed binary, run from an unrelated directory, finds its web
// page, prompt templates and tokenizer ranks under PREFIX/share/tether
// (`--check-config` says so), serves the page, and a chat agent runs with the
// installed system prompt. Without the installed prompts it refuses to start
// and says where it looked: it never falls back to the source tree.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { BIN, connect, fakeTarget, freePort, openSession, sayAndWait, writeRoutesFile } from './harness.mjs';
import { rawGet, runTether, stopTether } from './deploy-lib.mjs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-install-'));
const prefix = path.join(tmp, 'prefix');
const elsewhere = path.join(tmp, 'elsewhere');
const installed = path.join(prefix, 'bin', 'tether');
const share = path.join(prefix, 'share', 'tether');
let fp;

before(async () => {
  execFileSync('cmake', ['--install', path.dirname(BIN), '--prefix', prefix], { stdio: 'pipe' });
  fs.mkdirSync(elsewhere);
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('the install puts the binary, web files, prompts, tokenizer ranks and the systemd unit under the prefix', () => {
  assert.ok(fs.statSync(installed).mode & 0o111, 'bin/tether is executable');
  for (const f of ['web/index.html', 'web/tether-client.js', 'prompts/chat.system.md', 'tether.service'])
    assert.ok(fs.existsSync(path.join(share, f)), f);
  for (const enc of ['o200k_base', 'cl100k_base']) {
    const ranks = fs.readFileSync(path.join(share, 'tokenizer', `${enc}.tiktoken`), 'latin1');
    assert.ok(ranks.split('\n').length > 100000, `${enc} has its ranks`);
  }
  assert.match(fs.readFileSync(path.join(share, 'tokenizer', 'SOURCE'), 'utf8'), /^gpt-tokenizer \d/);
  assert.ok(!fs.existsSync(path.join(share, 'web', 'README.md')), 'no repository notes among the served files');
});

test('the systemd unit verifies and its hardening rates OK (systemd-analyze, where installed)', (t) => {
  const which = spawnSync('sh', ['-c', 'command -v systemd-analyze']);
  if (which.status !== 0) {
    t.skip('systemd-analyze is not installed');
    return;
  }
  const unit = path.join(tmp, 'tether.service');
  fs.writeFileSync(
    unit,
    fs.readFileSync(path.join(share, 'tether.service'), 'utf8').replaceAll('/usr/local/bin/tether', installed),
  );
  const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(verify.stderr.trim(), '', 'no warnings');
  const sec = spawnSync('systemd-analyze', ['security', '--offline=yes', unit], { encoding: 'utf8' });
  const level = /Overall exposure level for tether\.service: ([\d.]+)/.exec(sec.stdout);
  assert.ok(level, sec.stdout + sec.stderr);
  assert.ok(Number(level[1]) <= 2, `exposure ${level[1]}`);
});

test('--check-config from another directory: everything found under the prefix, exit 0', () => {
  const out = execFileSync(installed, ['--check-config', '--data-dir', path.join(elsewhere, 'data')], {
    cwd: elsewhere,
    encoding: 'utf8',
  });
  const real = fs.realpathSync(share);
  assert.match(out, new RegExp(`ok +web +${real}/web \\(installed\\)`));
  assert.match(out, new RegExp(`ok +prompts +${real}/prompts \\(installed\\): 7 templates`));
  assert.match(out, new RegExp(`ok +tokenizer +o200k_base in ${real}/tokenizer \\(installed\\)`));
  assert.match(out, /ok +data dir .*will be created/);
  assert.match(out, /ok +listen +127\.0\.0\.1:8080/);
  assert.match(out, /ready to start/);
  const doctor = execFileSync(installed, ['doctor', '--data-dir', path.join(elsewhere, 'data')], {
    cwd: elsewhere,
    encoding: 'utf8',
  });
  assert.equal(doctor, out, '`tether doctor` is the same check');
});

test(
  'the installed server, started elsewhere, serves the page and runs chat with the installed prompt',
  { timeout: 20_000 },
  async () => {
    const marker = 'You are the installed test assistant (prefix copy).';
    fs.writeFileSync(
      path.join(share, 'prompts', 'chat.system.md'),
      `<!-- prompt: chat.system version: 9 -->\n${marker}\n`,
    );
    fp.script({ text: 'Hi from the fake model', match: { prefix: 'install' } });
    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'install')] } });
    const port = await freePort();
    const r = await runTether(installed, ['--port', String(port), '--data-dir', 'data', '--routes', routes], {
      cwd: elsewhere,
      env: { FAKE_KEY: 'k' },
    });
    assert.ok(r.proc, JSON.stringify(r.lines));
    try {
      const files = r.lines.find((l) => l.msg === 'files');
      assert.equal(files.web, 'installed');
      assert.equal(files.prompts, 'installed');
      assert.equal(files.tokenizer, 'installed');
      const page = await rawGet('127.0.0.1', port, '/');
      assert.equal(page.status, 200);
      assert.match(page.body, /<html/i);
      const c = await connect(port, { hello: true });
      const { session } = await openSession(c, 'chat', { input: {} });
      await sayAndWait(c, session, 'hello', 'm1');
      const req = fp.requests({ prefix: 'install' })[0];
      assert.equal(req.body.messages[0].role, 'system');
      assert.match(req.body.messages[0].content, /installed test assistant/);
      c.close();
    } finally {
      assert.equal((await stopTether(r)).code, 0);
    }
    assert.ok(fs.existsSync(path.join(elsewhere, 'data', 'data.mdb')), 'the data dir is relative to the cwd');
  },
);

test('without its installed prompts the binary refuses to start and says where it looked', async () => {
  fs.rmSync(path.join(share, 'prompts'), { recursive: true });
  const port = await freePort();
  const r = await runTether(installed, ['--port', String(port), '--data-dir', 'data2'], { cwd: elsewhere });
  assert.equal(r.code, 1, JSON.stringify(r.lines));
  const line = r.lines.find((l) => l.msg === 'cannot load the prompt templates');
  assert.match(line.error, /share\/tether\/prompts.*--prompts-dir/);
  const check = (() => {
    try {
      execFileSync(installed, ['--check-config'], { cwd: elsewhere, encoding: 'utf8' });
      return { status: 0 };
    } catch (e) {
      return e;
    }
  })();
  assert.equal(check.status, 1);
  assert.match(check.stdout, /FAIL +prompts +not found/);
});
