// Heartbeats: the server pings every heartbeat_s and drops a socket silent for three intervals.
import assert from 'node:assert/strict';
import { connect, itest, sleep, within } from './harness.mjs';

itest(
  '--heartbeat-s 1: welcome says so, the server pings, a client answering pings stays connected',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--heartbeat-s', '1'] });
    const c = await connect(srv.port, { hello: true });
    assert.equal(c.welcome.heartbeat_s, 1);
    let pings = 0;
    c.ws.on('ping', () => {
      pings += 1;
    });
    await sleep(3500); // ws answers pings automatically
    assert.ok(pings >= 2, `server pings seen in 3.5 s: ${pings}`);
    assert.ok(c.isOpen, 'a socket that answers pings is not dropped');
    assert.equal((await c.ping()).type, 'pong');
  },
);

itest('--heartbeat-s 1: a socket that never answers is closed after about three intervals', async ({ startServer }) => {
  const srv = await startServer({ args: ['--heartbeat-s', '1'] });
  const c = await connect(srv.port, { hello: true, wsOptions: { autoPong: false } });
  const t0 = Date.now();
  const closed = await within(c.closed, 6000);
  assert.ok(closed, 'a silent socket must be closed within 6 s with --heartbeat-s 1');
  const dt = Date.now() - t0;
  assert.ok(dt >= 2000, `closed too early (${dt} ms): three intervals are 3 s`);
});
