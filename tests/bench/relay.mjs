// Relay overhead: from the moment an upstream chunk is written by the
// provider to the moment the client holds the corresponding frame.
//
//   node tests/bench/relay.mjs [streams] [chunks] [gap_ms]   (default 1 stream, 2000 chunks, 1 ms apart)
//
// The upstream here is a minimal OpenAI-compatible SSE server living in this
// same process, so its send time and the client's receive time come from one
// monotonic clock: every chunk's text is the hrtime (ns) at which it was
// written. Paths measured, all over loopback:
//   direct   - an HTTP client reading the upstream itself (the floor)
//   session  - chat agent: upstream -> Tether -> LMDB commit -> WebSocket delta
//   gateway  - POST /v1/chat/completions stream: upstream -> Tether -> SSE
// Reported: p50 / p99 / p999 in microseconds, and overhead over direct.
// Uses build/tether unless TETHER_BIN is set. Stops by itself.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

const STREAMS = Number(process.argv[2] || 1);
const CHUNKS = Number(process.argv[3] || 2000);
const GAP_MS = Number(process.argv[4] || 1); // pause between chunks, so each is its own TCP segment
const BIN = process.env.TETHER_BIN || path.resolve('build/tether');
const now = () => process.hrtime.bigint();

// --- upstream --------------------------------------------------------------
const upstream = http.createServer((req, res) => {
  req.resume();
  req.on('end', async () => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const head = { id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm' };
    for (let i = 0; i < CHUNKS; i++) {
      const chunk = { ...head, choices: [{ index: 0, delta: { content: `${now()} ` }, finish_reason: null }] };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      await new Promise((r) => setTimeout(r, GAP_MS));
    }
    res.write(`data: ${JSON.stringify({ ...head, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
    res.write(
      `data: ${JSON.stringify({ ...head, choices: [], usage: { prompt_tokens: 1, completion_tokens: CHUNKS } })}\n\n`,
    );
    res.end('data: [DONE]\n\n');
  });
});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const upPort = upstream.address().port;

// --- helpers ---------------------------------------------------------------
function sample(latencies, text) {
  for (const tok of text.split(' ')) if (tok) latencies.push(Number(now() - BigInt(tok)) / 1000);
}

function pct(sorted, p) {
  return +sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(1);
}

function summary(lat) {
  const s = [...lat].sort((a, b) => a - b);
  return { samples: s.length, p50_us: pct(s, 0.5), p99_us: pct(s, 0.99), p999_us: pct(s, 0.999) };
}

function sseClient(port, pathName, body, onData) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: pathName,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
      },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
            const c = JSON.parse(line.slice(6));
            const t = c.choices?.[0]?.delta?.content;
            if (t) onData(t);
          }
        });
        res.on('end', resolve);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// --- the paths ---------------------------------------------------------------
async function direct() {
  const lat = [];
  await Promise.all(
    Array.from({ length: STREAMS }, () =>
      sseClient(upPort, '/v1/chat/completions', { stream: true }, (t) => sample(lat, t)),
    ),
  );
  return summary(lat);
}

async function gateway(port) {
  const lat = [];
  const body = { model: 'default', stream: true, messages: [{ role: 'user', content: 'go' }] };
  await Promise.all(
    Array.from({ length: STREAMS }, () => sseClient(port, '/v1/chat/completions', body, (t) => sample(lat, t))),
  );
  return summary(lat);
}

function session(port) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`);
    const lat = [];
    let done = 0;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.type === 'welcome')
        for (let i = 0; i < STREAMS; i++) ws.send(JSON.stringify({ type: 'session.open', id: `o${i}`, agent: 'chat' }));
      else if (m.type === 'ok' && m.re?.startsWith('o'))
        ws.send(JSON.stringify({ type: 'say', session: m.session, text: 'go' }));
      else if (m.type === 'delta') sample(lat, m.text);
      else if (m.type === 'message.end' && ++done === STREAMS) {
        ws.close();
        resolve(summary(lat));
      }
    });
  });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-relay-'));
const routes = path.join(dir, 'routes.json');
writeFileSync(
  routes,
  JSON.stringify({
    routes: { default: [{ provider: 'openai', base_url: `http://127.0.0.1:${upPort}/v1`, model: 'm' }] },
  }),
);
const port = await freePort();
const srv = spawn(
  BIN,
  [
    '--port',
    String(port),
    '--data-dir',
    path.join(dir, 'data'),
    '--routes',
    routes,
    '--log-level',
    'warn',
    '--sync',
    'periodic',
    '--rate-msgs-per-s',
    '100000',
    '--rate-burst',
    '100000',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
for (;;) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
  } catch {
    /* starting */
  }
  await new Promise((r) => setTimeout(r, 10));
}

const base = await direct();
const viaSession = await session(port);
const viaGateway = await gateway(port);
srv.kill('SIGTERM');
await new Promise((r) => srv.on('exit', r));
upstream.close();
rmSync(dir, { recursive: true, force: true });

const over = (x) => ({ p50_us: +(x.p50_us - base.p50_us).toFixed(1), p99_us: +(x.p99_us - base.p99_us).toFixed(1) });
console.log(
  JSON.stringify(
    {
      streams: STREAMS,
      chunks_per_stream: CHUNKS,
      gap_ms: GAP_MS,
      direct: base,
      session: viaSession,
      gateway: viaGateway,
      overhead_session: over(viaSession),
      overhead_gateway: over(viaGateway),
    },
    null,
    2,
  ),
);
