// Start a tether on a given port and data directory (the harness picks its
// own port): the second process of an upgrade (--takeover, server/README.md).
import { spawn } from 'node:child_process';
import { BIN, REPO } from './harness.mjs';

/** A tether on port and dataDir (not through the harness, which picks its own port). */
export function spawnTether(port, dataDir, args) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TETHER_')) env[k] = v;
  env.FAKE_KEY = 'k';
  const argv = ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--web-dir', 'web'];
  const proc = spawn(BIN, [...argv, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { proc, output: '' };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (p.output = (p.output + d).slice(-400_000)));
  proc.stdout.resume();
  p.exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  p.alive = () => proc.exitCode === null && proc.signalCode === null;
  return p;
}

/** A process started with --takeover on the port and data directory of a running one. */
export const startTakeover = (port, dataDir, args) => spawnTether(port, dataDir, [...args, '--takeover', 'on']);
