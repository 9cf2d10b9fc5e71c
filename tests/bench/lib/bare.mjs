// The bare libwebsockets peer of the socket benchmarks (issue 18): the C
// program tests/bench/bare_lws.c, built as bench_bare_lws beside tether
// (<build>/bench_bare_lws, the build of TETHER_BIN; or BARE_LWS_BIN). Same lws, same libuv loop, same buffers as Tether, no
// application work: it answers hello, session.open, ping, say and replay
// with frames of the shape and size Tether sends (see the C file).
// When the binary is missing the benchmarks run without the peer (its
// figures null, `met` null) and say so on stderr.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BIN, spawnRaised, stopProc } from './common.mjs';

export const BARE_BIN = process.env.BARE_LWS_BIN || path.join(path.dirname(BIN), 'bench_bare_lws');

/** True when the peer can run; otherwise warns once (stderr) and returns false. */
let warned = false;
export function bareAvailable() {
  if (existsSync(BARE_BIN)) return true;
  if (!warned)
    console.error(
      `no bare-lws peer at ${BARE_BIN}: build it (cmake --build <build> --target bench_bare_lws) or set BARE_LWS_BIN`,
    );
  warned = true;
  return false;
}

/** The spawn arguments of the peer on `port` (for benchmarks that time the spawn itself). */
export const bareArgs = (port) => [String(port)];

/** Start the peer on a free loopback port; resolves once it prints {"listening":PORT}. */
export async function startBare() {
  const proc = spawnRaised(BARE_BIN, bareArgs(0), { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => {
    err = (err + d).slice(-2000);
  });
  const port = await new Promise((resolve, reject) => {
    let outText = '';
    proc.stdout.on('data', (d) => {
      outText += d;
      const nl = outText.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(outText.slice(0, nl)).listening);
    });
    proc.on('exit', (c, s) => reject(new Error(`bench_bare_lws exited (${c ?? s}): ${err}`)));
  });
  proc.stdout.resume();
  return { proc, port, pid: proc.pid, bare: true, stop: () => stopProc(proc) };
}
