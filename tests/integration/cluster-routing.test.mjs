// Three tether nodes (local durability, one PostgreSQL) behind haproxy run
// with server/haproxy.cfg (cluster-lib.mjs): a session id in ?session=
// always reaches the same node, ids spread over the nodes, requests without
// it go round robin, and when a node dies only its ids move, to the live
// nodes, and come back when it is up again (consistent hashing). A node that
// stops answering (SIGSTOP) has its sockets closed by haproxy once marked
// down, so their clients reconnect elsewhere.
import assert from 'node:assert/strict';
import { connect, httpGet, itest, openSession, sleep } from './harness.mjs';
import { haproxyAvailable, pgAvailable, startCluster } from './cluster-lib.mjs';

const skip = !haproxyAvailable
  ? 'haproxy is not installed (apt-get install haproxy; .ci/deps.sh test installs it)'
  : !pgAvailable
    ? 'PostgreSQL is not installed (postgresql-15; .ci/deps.sh test installs it)'
    : false;

// Fixed ids: haproxy's placement is a function of the id and the server list,
// so the spread below is the same on every run.
const IDS = Array.from({ length: 30 }, (_, i) => `s_${String(i).padStart(3, '0')}_route`);

async function placement(cl, ids = IDS) {
  const out = {};
  for (const id of ids) out[id] = await cl.nodeFor(id);
  return out;
}

const byNode = (map) => {
  const out = {};
  for (const [id, node] of Object.entries(map)) (out[node] ??= []).push(id);
  return out;
};

async function withCluster(t, fn) {
  const cl = await startCluster({ nodes: 3 });
  try {
    await fn(cl);
  } catch (e) {
    console.error(cl.tail());
    throw e;
  } finally {
    await cl.destroy();
  }
}

itest(
  'the same session id always reaches the same node, ids spread over all three, no id: round robin',
  async ({ t }) => {
    await withCluster(t, async (cl) => {
      for (let i = 0; i < 3; i++) {
        const r = await httpGet(cl.nodes[i].port, '/readyz');
        assert.match(r.body, new RegExp(`^ready\nnode: node${i + 1}\n`));
        assert.equal(r.headers['x-tether-node'], `node${i + 1}`);
        assert.equal(cl.nodeUrl(i), `http://127.0.0.1:${cl.nodes[i].port}`);
      }
      const first = await placement(cl);
      for (let round = 0; round < 2; round++) assert.deepEqual(await placement(cl), first, `round ${round}`);
      const spread = byNode(first);
      assert.deepEqual(Object.keys(spread).sort(), ['node1', 'node2', 'node3'], JSON.stringify(spread));
      // Two sockets of one session held open at once land together too.
      const [a, b] = [await cl.connect(IDS[0]), await cl.connect(IDS[0])];
      assert.equal(a.welcome.node, first[IDS[0]]);
      assert.equal(b.welcome.node, first[IDS[0]]);
      // A URL that has other parameters besides session routes the same.
      const other = await cl.connect(undefined, { params: { session: IDS[1], v: '2' } });
      assert.equal(other.welcome.node, first[IDS[1]]);
      // Without the parameter: round robin over the live nodes, sockets and HTTP requests.
      const seen = new Set();
      for (let i = 0; i < 6; i++) seen.add(await cl.nodeFor(undefined));
      assert.deepEqual([...seen].sort(), ['node1', 'node2', 'node3']);
      const answered = new Set();
      for (let i = 0; i < 6; i++) answered.add((await httpGet(cl.lbPort, '/healthz')).headers['x-tether-node']);
      assert.deepEqual([...answered].sort(), ['node1', 'node2', 'node3']);
    });
  },
  { skip, timeout: 60_000 },
);

itest(
  "a killed node's session ids move to the live nodes, the others stay; all come back when it restarts",
  async ({ t }) => {
    await withCluster(t, async (cl) => {
      const before = await placement(cl);
      const victim = 'node2';
      const moved = byNode(before)[victim];
      assert.ok(moved?.length, `no id of the ${IDS.length} lands on ${victim}`);
      const held = await cl.connect(moved[0]);
      assert.equal(held.welcome.node, victim);

      await cl.kill9(victim);
      await cl.waitStatus(victim, 'DOWN');
      await held.closed;
      const during = await placement(cl);
      for (const id of IDS) {
        if (before[id] === victim) assert.notEqual(during[id], victim, `${id} still routed to the dead node`);
        else assert.equal(during[id], before[id], `${id} moved from ${before[id]} though its node lives`);
      }
      // They went to both survivors or one; either way to live nodes only, and stably.
      assert.deepEqual(await placement(cl), during);

      await cl.restart(victim);
      await cl.waitStatus(victim, 'UP');
      assert.deepEqual(await placement(cl), before, 'the ring is the same once node2 is back');
    });
  },
  { skip, timeout: 60_000 },
);

itest(
  'a node that stops answering (SIGSTOP) is marked down, its sockets are closed, its ids go elsewhere',
  async ({ t }) => {
    await withCluster(t, async (cl) => {
      const before = await placement(cl);
      const victim = 'node3';
      const ids = byNode(before)[victim];
      assert.ok(ids?.length, `no id lands on ${victim}`);
      const held = await cl.connect(ids[0]);
      assert.equal(held.welcome.node, victim);

      cl.stop(2);
      await cl.waitStatus(2, 'DOWN');
      // on-marked-down shutdown-sessions: haproxy closes the frozen node's sockets.
      const closed = await Promise.race([held.closed.then(() => true), new Promise((r) => setTimeout(r, 5000, false))]);
      assert.ok(closed, 'the socket to the stopped node stayed open');
      for (const id of ids) assert.notEqual(await cl.nodeFor(id), victim);

      cl.cont(2);
      await cl.waitStatus(2, 'UP');
      assert.deepEqual(await placement(cl), before);
    });
  },
  { skip, timeout: 60_000 },
);

itest(
  'a restarted haproxy routes every id as before; nodes reconnect to a restarted PostgreSQL',
  async ({ t }) => {
    await withCluster(t, async (cl) => {
      const before = await placement(cl);
      await cl.restartHaproxy();
      assert.deepEqual(await placement(cl), before, 'the ring depends on the config only');

      await cl.restartPostgres({ downMs: 300 });
      // Each node archives a session created after the restart: it connected again.
      for (let i = 0; i < cl.nodes.length; i++) {
        const c = await connect(cl.nodes[i].port, { hello: true });
        const { session } = await openSession(c, 'echo');
        const deadline = Date.now() + 20_000;
        let n = '0';
        while (Date.now() < deadline && n === '0') {
          n = await cl.pg.value(`SELECT count(*) FROM events WHERE session = '${session}'`);
          if (n === '0') await sleep(100);
        }
        assert.notEqual(n, '0', `node${i + 1} archived nothing after the database restart`);
      }
    });
  },
  { skip, timeout: 60_000 },
);
