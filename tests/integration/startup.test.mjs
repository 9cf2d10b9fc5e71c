// Start-up failures: a port another process holds is a clear error and a
// non-zero exit, never a "listening" line followed by exit 0.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { runToExit } from './exit-lib.mjs';

function occupy(host) {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, host, () => resolve(s));
  });
}

for (const host of ['127.0.0.1', 'localhost']) {
  test(`a port already taken on ${host}: exit 1 with a clear message, never "listening"`, async () => {
    const holder = await occupy('127.0.0.1');
    try {
      const { port } = holder.address();
      const r = await runToExit(['--host', host, '--port', String(port)]);
      assert.equal(r.timedOut, false, `tether kept running on a taken port:\n${r.output}`);
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, /"cannot listen".*the port is already in use by another process/);
      assert.match(r.output, new RegExp(`"port":${port}`));
      assert.doesNotMatch(r.output, /"msg":"listening"/);
      // The holder still owns its port and still accepts.
      await new Promise((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1', () => {
          c.destroy();
          resolve();
        });
        c.on('error', reject);
      });
    } finally {
      holder.close();
    }
  });
}
