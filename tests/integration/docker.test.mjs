// The Docker image, checked without a Docker engine (issue 15): what
// .dockerignore keeps out of the build context, the layout the image copies
// from its build stage (the same `cmake --install` with DESTDIR), the binary
// in that layout with the image's environment (--check-config, then a real
// start), and the image's HEALTHCHECK command against it, live and stopped.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { BIN, freePort, REPO } from './harness.mjs';
import { runTether, stopTether } from './deploy-lib.mjs';

const dockerfile = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
const stages = dockerfile.split(/^FROM /m).slice(1);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-docker-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Does one .dockerignore pattern (Go filepath.Match, no "!") match a top-level name? */
function ignored(patterns, name) {
  return patterns.some((p) => {
    const re = new RegExp(
      '^' +
        p
          .replace(/[.+^${}()|\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]') +
        '$',
    );
    return re.test(name);
  });
}

/** The ENV pairs of the runtime stage. */
function imageEnv() {
  const env = {};
  for (const m of stages[1].matchAll(/^ENV (.*)$/gm))
    for (const kv of m[1].trim().split(/\s+/)) env[kv.split('=')[0]] = kv.split('=')[1];
  return env;
}

test('.dockerignore keeps local builds, node_modules, data and .git out, and the sources in', () => {
  const patterns = fs
    .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  assert.ok(!patterns.some((p) => p.startsWith('!')), 'no exceptions');
  for (const n of ['build', 'build-debug', 'build-asan', 'build-release', 'build-fuzz', 'node_modules', 'data', '.git'])
    assert.ok(ignored(patterns, n), `${n} is excluded`);
  for (const n of [
    'CMakeLists.txt',
    'package.json',
    'package-lock.json',
    'server',
    'agents',
    'state',
    'protocol',
    'web',
  ])
    assert.ok(!ignored(patterns, n), `${n} is copied`);
  // Whatever is in this checkout now: nothing copied is a build or a dependency tree.
  for (const n of fs.readdirSync(REPO))
    if (/^build|^node_modules$/.test(n)) assert.ok(ignored(patterns, n), `${n} would be copied`);
});

test('the Dockerfile: npm ci and cmake --install in the build stage, non-root user, data volume, HEALTHCHECK', () => {
  assert.equal(stages.length, 2);
  assert.match(stages[0], /RUN npm ci /);
  assert.match(stages[0], /DESTDIR=\/stage cmake --install build --prefix \/usr\/local/);
  assert.match(stages[1], /COPY --from=build \/stage\/usr\/local \/usr\/local/);
  const user = /^USER (\S+)/m.exec(stages[1]);
  assert.ok(user && user[1] !== 'root' && user[1] !== '0', 'runs as a non-root user');
  assert.match(stages[1], /^VOLUME \/data$/m);
  assert.match(stages[1], /^HEALTHCHECK .*CMD \[/m);
  assert.equal(imageEnv().TETHER_DATA_DIR, '/data');
});

test('the image layout, as the build stage makes it, runs with the image environment and passes the HEALTHCHECK', async () => {
  const stage = path.join(tmp, 'stage');
  execFileSync('cmake', ['--install', path.dirname(BIN), '--prefix', '/usr/local'], {
    env: { ...process.env, DESTDIR: stage },
    stdio: 'pipe',
  });
  const bin = path.join(stage, 'usr/local/bin/tether');
  for (const f of [
    'web/index.html',
    'prompts/chat.system.md',
    'tokenizer/o200k_base.tiktoken',
    'tokenizer/cl100k_base.tiktoken',
  ])
    assert.ok(fs.existsSync(path.join(stage, 'usr/local/share/tether', f)), f);
  const port = String(await freePort());
  // The image's environment, but loopback and a temp dir for /data (tests bind loopback only).
  const env = { ...imageEnv(), TETHER_HOST: '127.0.0.1', TETHER_PORT: port, TETHER_DATA_DIR: path.join(tmp, 'data') };
  env.TETHER_PHOTOS_ROOT = path.join(tmp, 'data', 'photos');
  env.TETHER_API_KEYS = 'docker-test-key';
  const check = execFileSync(bin, ['--check-config'], {
    cwd: '/',
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
  });
  assert.equal((check.match(/\(installed\)/g) ?? []).length, 4, check); // web, prompts, two encodings
  const hc = JSON.parse(/^HEALTHCHECK .*CMD (\[.*\])$/m.exec(stages[1])[1]);
  const health = () =>
    spawnSync(hc[0], hc.slice(1), { env: { PATH: process.env.PATH, TETHER_PORT: port }, timeout: 10_000 });
  const r = await runTether(bin, [], { cwd: '/', env });
  assert.ok(r.proc, JSON.stringify(r.lines));
  try {
    const h = health();
    assert.equal(h.status, 0, `healthcheck failed: ${h.stderr}`);
  } finally {
    assert.equal((await stopTether(r)).code, 0);
  }
  assert.notEqual(health().status, 0, 'the healthcheck fails once the server is gone');
});
