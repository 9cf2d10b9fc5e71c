// Helpers for the deployment tests (issue 15): start the binary as an
// operator would (any cwd, any arguments), read its JSON log lines, and talk
// raw HTTP to any loopback address. Every process started here is killed
// when the file ends.

import { spawn } from 'node:child_process';
import net from 'node:net';
import { after } from 'node:test';

const procs = new Set();
after(() => {
  for (const p of procs) p.kill('SIGKILL');
});

/**
 * Spawn bin with args in cwd; resolves when a log line with msg `until`
 * appears ({proc, lines, exited}) or the process exits ({code, lines}).
 */
export function runTether(bin, args, { cwd, env = {}, until = 'listening', timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.add(proc);
    const lines = [];
    let out = '';
    let done = false;
    const exited = new Promise((r) =>
      proc.on('exit', (code, signal) => {
        procs.delete(proc);
        r({ code, signal });
      }),
    );
    const timer = setTimeout(() => {
      if (!done) reject(new Error(`no "${until}" within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (d) => {
      out += d;
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        let j;
        try {
          j = JSON.parse(line);
        } catch {
          j = { text: line };
        }
        lines.push(j);
        if (!done && until && j.msg === until) {
          done = true;
          clearTimeout(timer);
          resolve({ proc, lines, exited });
        }
      }
    };
    proc.stderr.setEncoding('utf8').on('data', onData);
    proc.stdout.setEncoding('utf8').on('data', onData);
    exited.then(({ code, signal }) => {
      if (out) onData('\n');
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ code, signal, lines, exited });
    });
  });
}

/** SIGTERM and wait; resolves the exit {code, signal}. */
export async function stopTether(r) {
  r.proc.kill('SIGTERM');
  return await r.exited;
}

/** One raw HTTP/1.1 request to host:port; resolves {status, headers, body} or rejects with the socket error. */
export function rawHttp(host, port, request) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let data = Buffer.alloc(0);
    s.on('connect', () => s.write(request));
    s.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString('latin1').split('\r\n');
      const headers = {};
      for (const h of head.slice(1)) {
        const k = h.indexOf(':');
        headers[h.slice(0, k).trim().toLowerCase()] = h.slice(k + 1).trim();
      }
      const len = Number(headers['content-length'] ?? 0);
      if (data.length - end - 4 >= len) {
        s.destroy();
        const body = data.subarray(end + 4, end + 4 + len).toString('utf8');
        resolve({ status: Number(head[0].split(' ')[1]), headers, body });
      }
    });
    s.on('error', reject);
    s.setTimeout(5000, () => {
      s.destroy();
      reject(new Error(`timeout: ${data.toString('latin1')}`));
    });
  });
}

/** GET path on host:port (Connection: close). */
export const rawGet = (host, port, path, headers = '') =>
  rawHttp(
    host,
    port,
    `GET ${path} HTTP/1.1\r\nHost: ${host.includes(':') ? `[${host}]` : host}:${port}\r\n${headers}Connection: close\r\n\r\n`,
  );
