// A client process for the connection benchmarks (forked by idle.mjs and
// resume.mjs): holds thousands of WebSockets to Tether, each authenticated and
// attached to its own echo session, from one loopback source address.
// Commands arrive over IPC; each answer carries epoch-ms times (comparable
// across processes on this machine).
import WebSocket from 'ws';

const nowMs = () => performance.timeOrigin + performance.now();
const clients = []; // {ws, session, last}
let errors = 0;
const kinds = {};
const kind = (k) => {
  kinds[k] = (kinds[k] || 0) + 1;
};

function connect(port, token, local) {
  return new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', {
    localAddress: local,
    perMessageDeflate: false,
    handshakeTimeout: 30000,
  });
}

function openOne(port, token, local, say) {
  return new Promise((resolve) => {
    const c = { ws: connect(port, token, local), session: null, last: 0 };
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      errors++;
      kind(why);
      c.ws.terminate();
      resolve(null);
    };
    c.ws.on('error', (e) => fail(`socket: ${e.code || e.message}`));
    c.ws.on('close', (code) => fail(`closed ${code}`));
    c.ws.on('open', () => c.ws.send(JSON.stringify({ type: 'hello', token, client: 'bench/1' })));
    c.ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.seq) c.last = Math.max(c.last, m.seq);
      if (m.type === 'welcome') c.ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
      else if (m.type === 'ok' && m.re === 'o') {
        c.session = m.session;
        if (say) c.ws.send(JSON.stringify({ type: 'say', session: m.session, text: 'hello there' }));
        else done();
      } else if (m.type === 'state' && m.state === 'idle' && m.seq > 1) done();
      else if (m.type === 'error') fail(`error ${m.code}`);
    });
    const done = () => {
      settled = true;
      c.ws.removeAllListeners('message');
      c.ws.removeAllListeners('close');
      c.ws.on('message', (d) => {
        const m = JSON.parse(d);
        if (m.seq) c.last = Math.max(c.last, m.seq);
      });
      resolve(c);
    };
  });
}

async function open({ port, token, local, n, say, window }) {
  const t0 = nowMs();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(window, n) }, async () => {
      while (next < n) {
        next++;
        const c = await openOne(port, token, local, say);
        if (c) clients.push(c);
      }
    }),
  );
  return { opened: clients.length, errors, error_kinds: kinds, t0, t1: nowMs() };
}

// Each client starts a turn, waits for its `ok`, and drops its socket while
// the echo agent is still streaming: the rest of the turn is missed.
async function drop({ text }) {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise((resolve) => {
          c.ws.removeAllListeners('message');
          c.ws.on('message', (d) => {
            const m = JSON.parse(d);
            if (m.seq) c.last = Math.max(c.last, m.seq);
            if (m.type === 'ok' && m.re === 's') {
              c.ws.terminate();
              resolve();
            }
          });
          c.ws.send(JSON.stringify({ type: 'say', id: 's', session: c.session, text }));
        }),
    ),
  );
  return { dropped: clients.length };
}

// All clients reconnect at once and re-attach after their last seq.
async function reattach({ port, token, local, at }) {
  while (nowMs() < at) await new Promise((r) => setTimeout(r, 1));
  let replayed = 0;
  let errs = 0;
  const times = [];
  await Promise.all(
    clients.map(
      (c) =>
        new Promise((resolve) => {
          const ws = connect(port, token, local);
          let head = Infinity;
          const finish = (ok) => {
            if (!ok) errs++;
            else times.push(nowMs());
            c.ws = ws;
            resolve();
          };
          ws.on('error', () => finish(false));
          ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token })));
          ws.on('message', (d) => {
            const m = JSON.parse(d);
            if (m.type === 'welcome')
              ws.send(JSON.stringify({ type: 'session.attach', id: 'a', session: c.session, after: c.last }));
            else if (m.type === 'ok' && m.re === 'a') {
              head = m.head;
              if (c.last >= head) finish(true);
            } else if (m.type === 'error') {
              ws.removeAllListeners('message');
              finish(false);
            } else if (m.seq) {
              if (m.seq !== c.last + 1 && m.type !== 'snapshot') errs++;
              c.last = m.seq;
              replayed++;
              if (c.last >= head) {
                ws.removeAllListeners('message');
                finish(true);
              }
            }
          });
        }),
    ),
  );
  times.sort((a, b) => a - b);
  return { caught_up: times.length, errors: errs, replayed, first: times[0], last: times[times.length - 1] };
}

process.on('message', async (msg) => {
  let res;
  if (msg.cmd === 'open') res = await open(msg);
  else if (msg.cmd === 'drop') res = await drop(msg);
  else if (msg.cmd === 'reattach') res = await reattach(msg);
  else if (msg.cmd === 'close') {
    for (const c of clients) c.ws.terminate();
    process.send({ closed: true }, () => process.exit(0));
    return;
  }
  process.send(res);
});
process.on('disconnect', () => process.exit(0)); // the benchmark went away
setTimeout(() => process.exit(3), 20 * 60 * 1000).unref(); // never outlive the run
