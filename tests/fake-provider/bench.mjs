// Measures the fake provider's own ceiling, so that benchmarks of Tether can
// tell whether the fake provider is their bottleneck.
//
//   node tests/fake-provider/bench.mjs [--duration S] [--warmup S] [--inprocess]
//
// The server runs as a child process (as the CLI is used); load comes from
// this process, so on a 2-core machine client and server get about one core
// each. Two clients:
//   - node:http with keep-alive agents (what the brief asks for; it is the
//     heavier side, so it tends to be the limit), and
//   - a lean raw-socket HTTP/1.1 keep-alive client (node:net), closer to what
//     a C client like Tether costs, to find the server's ceiling.
// Server CPU per phase comes from /_health: near 100% means the server is the
// limit; less means the client was. Prints one JSON object.

import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const DURATION = arg('--duration', 4) * 1000;
const WARMUP = arg('--warmup', 1) * 1000;
const INPROCESS = process.argv.includes('--inprocess');

// ------------------------------------------------------------------ server

async function startServer() {
  if (INPROCESS) {
    const { startFakeProvider } = await import('./server.mjs');
    const fp = await startFakeProvider({ maxRequests: 1000 });
    return { port: fp.port, stop: () => fp.close() };
  }
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs'), '--port', '0', '--max-requests', '1000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)).listening);
    });
    child.on('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  return {
    port,
    stop: () =>
      new Promise((r) => {
        child.on('exit', r);
        child.kill('SIGTERM');
      }),
  };
}

function request(port, agent, method, p, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const health = async (port) => JSON.parse((await request(port, false, 'GET', '/_health', {}, undefined)).body);
const script = (port, obj) =>
  request(port, false, 'POST', '/_script', { 'content-type': 'application/json' }, JSON.stringify(obj));

// ------------------------------------------------------------------ measuring

function pct(sorted, p) {
  if (!sorted.length) return null;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] * 100) / 100;
}

/**
 * Runs `run(record, running)` (which resolves when its loops stop) for
 * WARMUP + DURATION ms; counts what starts and ends inside the measured window.
 * `record(startTime, units)` records a completed request, `record(t, 0, true)` an error.
 */
async function phase(port, run) {
  const tStart = performance.now() + WARMUP;
  const tEnd = tStart + DURATION;
  let done = 0;
  let units = 0;
  let errors = 0;
  const lat = [];
  const record = (s, n, err) => {
    if (err) {
      errors++;
      return;
    }
    const e = performance.now();
    if (s >= tStart && e <= tEnd) {
      done++;
      units += n;
      lat.push(e - s);
    }
  };
  const h0 = new Promise((resolve) => setTimeout(() => resolve(health(port)), WARMUP));
  await run(record, () => performance.now() < tEnd);
  const [c0, c1] = [await h0, await health(port)];
  const wall = (performance.now() - tStart) / 1000;
  const cpu = (c1.cpu_user_us + c1.cpu_system_us - (c0.cpu_user_us + c0.cpu_system_us)) / 1e6;
  lat.sort((a, b) => a - b);
  const secs = DURATION / 1000;
  return {
    count: done,
    per_s: Math.round(done / secs),
    units_per_s: Math.round(units / secs),
    errors,
    latency_ms: { p50: pct(lat, 0.5), p90: pct(lat, 0.9), p99: pct(lat, 0.99), max: pct(lat, 1) },
    server_cpu_pct: Math.round((cpu / wall) * 100),
  };
}

/** `concurrency` loops of `once()` (which resolves to a unit count). */
const loops = (concurrency, once) => (record, running) =>
  Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (running()) {
        const s = performance.now();
        try {
          record(s, await once());
        } catch {
          record(s, 0, true);
        }
      }
    }),
  );

/**
 * Lean keep-alive client on raw sockets: each connection sends `raw` (a whole
 * HTTP/1.1 request), reads the whole response (content-length, or the chunked
 * terminator), and repeats. Each response counts `unitsPer` units.
 */
const rawLoops = (port, concurrency, raw, unitsPer) => (record, running) => {
  const payload = Buffer.from(raw, 'latin1');
  return Promise.all(
    Array.from(
      { length: concurrency },
      () =>
        new Promise((resolve) => {
          const sock = net.connect(port, '127.0.0.1');
          sock.setNoDelay(true);
          sock.setEncoding('latin1');
          let acc = '';
          let need = -1; // -1 unknown, -2 chunked, else total length
          let t = 0;
          const send = () => {
            if (!running()) {
              sock.end();
              resolve();
              return;
            }
            acc = '';
            need = -1;
            t = performance.now();
            sock.write(payload);
          };
          sock.on('data', (d) => {
            acc += d;
            if (need === -1) {
              const he = acc.indexOf('\r\n\r\n');
              if (he < 0) return;
              if (!acc.startsWith('HTTP/1.1 200')) {
                record(t, 0, true);
                sock.destroy();
                resolve();
                return;
              }
              const m = /\r\ncontent-length: *(\d+)/i.exec(acc.slice(0, he));
              need = m ? he + 4 + Number(m[1]) : -2;
            }
            if (need === -2 ? acc.endsWith('\r\n0\r\n\r\n') : acc.length >= need) {
              record(t, unitsPer);
              send();
            }
          });
          sock.on('error', () => {
            record(t, 0, true);
            resolve();
          });
          sock.on('connect', send);
        }),
    ),
  );
};

function rawRequest(p, headers, body) {
  const h = { host: '127.0.0.1', ...headers, 'content-length': Buffer.byteLength(body) };
  return `POST ${p} HTTP/1.1\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n${body}`;
}

/** An SSE response read with node:http, counting events (blank-line terminated). */
function httpStream(port, agent, p, headers, body, endMark) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: p, headers, agent }, (res) => {
      let events = 0;
      let carry = '';
      let tail = '';
      res.setEncoding('utf8');
      res.on('data', (s) => {
        const t = carry + s;
        for (let i = t.indexOf('\n\n'); i !== -1; i = t.indexOf('\n\n', i + 2)) events++;
        carry = t.endsWith('\n') && !t.endsWith('\n\n') ? '\n' : '';
        tail = (tail + s).slice(-40);
      });
      res.on('end', () => (tail.endsWith(endMark) ? resolve(events) : reject(new Error('incomplete stream'))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// ------------------------------------------------------------------ phases

const OAI = { authorization: 'Bearer bench', 'content-type': 'application/json' };
const ANT = { 'x-api-key': 'bench', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };

async function main() {
  const srv = await startServer();
  const { port } = srv;
  const out = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    server: INPROCESS ? 'in-process' : 'child process',
    duration_s: DURATION / 1000,
  };
  const chatReq = JSON.stringify({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'hello there, how are you today?' }],
  });

  // 1. Non-streamed chat completions, keep-alive, 50 concurrent.
  {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    const headers = { ...OAI, 'content-length': Buffer.byteLength(chatReq) };
    const r = await phase(
      port,
      loops(50, async () => {
        const x = await request(port, agent, 'POST', '/v1/chat/completions', headers, chatReq);
        if (x.status !== 200) throw new Error(String(x.status));
        return 1;
      }),
    );
    agent.destroy();
    out.nonstream_c50_node_http = {
      requests_per_s: r.per_s,
      errors: r.errors,
      latency_ms: r.latency_ms,
      server_cpu_pct: r.server_cpu_pct,
    };
  }
  {
    const r = await phase(port, rawLoops(port, 50, rawRequest('/v1/chat/completions', OAI, chatReq), 1));
    out.nonstream_c50_raw_client = {
      requests_per_s: r.per_s,
      errors: r.errors,
      latency_ms: r.latency_ms,
      server_cpu_pct: r.server_cpu_pct,
    };
  }

  // 2. Streams: 100 concurrent, 200 tokens each, token_delay_ms 0.
  const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
  const kinds = [
    [
      'openai',
      'bench-oai',
      '/v1/chat/completions',
      OAI,
      {
        model: 'gpt-4o',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'go' }],
      },
      'data: [DONE]\n\n',
    ],
    [
      'anthropic',
      'bench-ant',
      '/v1/messages',
      ANT,
      { model: 'claude', max_tokens: 4096, stream: true, messages: [{ role: 'user', content: 'go' }] },
      '{"type":"message_stop"}\n\n',
    ],
  ];
  for (const [name, key, p, hdrs, bodyObj, endMark] of kinds) {
    await script(port, { key, steps: [{ text: words, repeat: 'forever' }] });
    const body = JSON.stringify(bodyObj);
    const headers = { ...hdrs, 'x-fake-key': key, 'content-length': Buffer.byteLength(body) };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 100 });
    const eventsPer = await httpStream(port, agent, p, headers, body, endMark);
    const r = await phase(
      port,
      loops(100, () => httpStream(port, agent, p, headers, body, endMark)),
    );
    agent.destroy();
    out[`stream_${name}_c100_200tok_node_http`] = {
      chunks_per_s: r.units_per_s,
      streams_per_s: r.per_s,
      events_per_stream: eventsPer,
      errors: r.errors,
      stream_ms: r.latency_ms,
      server_cpu_pct: r.server_cpu_pct,
    };
    const rr = await phase(port, rawLoops(port, 100, rawRequest(p, { ...hdrs, 'x-fake-key': key }, body), eventsPer));
    out[`stream_${name}_c100_200tok_raw_client`] = {
      chunks_per_s: rr.units_per_s,
      streams_per_s: rr.per_s,
      errors: rr.errors,
      stream_ms: rr.latency_ms,
      server_cpu_pct: rr.server_cpu_pct,
    };
  }

  // 3. Paced streams: 100 concurrent, 50 tokens, token_delay_ms 5 (the timer path).
  {
    const key = 'bench-paced';
    await script(port, {
      key,
      steps: [{ text: Array.from({ length: 50 }, (_, i) => `p${i}`).join(' '), repeat: 'forever', token_delay_ms: 5 }],
    });
    const body = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'go' }] });
    const headers = { ...OAI, 'x-fake-key': key, 'content-length': Buffer.byteLength(body) };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 100 });
    const r = await phase(
      port,
      loops(100, () => httpStream(port, agent, '/v1/chat/completions', headers, body, 'data: [DONE]\n\n')),
    );
    agent.destroy();
    out.stream_paced_c100_50tok_5ms_node_http = {
      chunks_per_s: r.units_per_s,
      streams_per_s: r.per_s,
      errors: r.errors,
      stream_ms: r.latency_ms,
      ideal_stream_ms: 50 * 5,
      server_cpu_pct: r.server_cpu_pct,
    };
  }

  await srv.stop();
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
