// Runs the tether binary to its exit (start-up errors): the helper for tests
// that expect the server to refuse to start.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, REPO } from './harness.mjs';

/**
 * Start tether with args on a fresh temp data dir and wait (≤ timeoutMs) for it
 * to exit. Resolves {code, signal, output, ms}; a process still running at
 * the deadline is killed and reported with code null and timedOut true.
 */
export function runToExit(args, { env = {}, timeoutMs = 10_000 } = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-exit-'));
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TETHER_')));
  const started = Date.now();
  const proc = spawn(BIN, ['--data-dir', dataDir, '--web-dir', 'web', ...args], {
    cwd: REPO,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      fs.rmSync(dataDir, { recursive: true, force: true });
      resolve({ code: timedOut ? null : code, signal, output, timedOut, ms: Date.now() - started });
    });
  });
}
