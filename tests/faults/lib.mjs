// Helpers shared by the fault suite (tests/faults/*.test.mjs). Builds on the
// integration harness; adds: a sanitizer-checking test wrapper, a seeded RNG,
// RSS sampling, /healthz latency, and a raw WebSocket client that can send
// frames the `ws` package refuses to (invalid UTF-8 text, odd opcodes).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { BIN, httpGet, itest, sleep } from '../integration/harness.mjs';

export { BIN };

/** Any of these in a server's stderr fails the test. */
export const SANITIZER_RE =
  /ERROR: AddressSanitizer|ERROR: LeakSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer|SUMMARY: \w+Sanitizer|AddressSanitizer:DEADLYSIGNAL/;

export const isSanitized = () => /asan|sanit/i.test(BIN);

/** Lines of a server's output around the first sanitizer report, or null. */
export function sanitizerReport(output) {
  const m = SANITIZER_RE.exec(output);
  if (!m) return null;
  return output.slice(Math.max(0, m.index - 500), m.index + 6000);
}

export function assertNoSanitizer(srv, label = '') {
  const rep = sanitizerReport(srv.output);
  assert.equal(rep, null, `sanitizer report in tether's stderr ${label}:\n${rep}`);
}

/**
 * itest plus: at the end, every server still running is stopped with SIGTERM
 * (exit code 0 required, so with the ASan build LeakSanitizer runs), and no
 * sanitizer report may appear in any server's output (checked on failure too).
 */
export function ftest(name, fn, opts = {}) {
  return itest(
    name,
    async (ctx) => {
      let err = null;
      try {
        await fn(ctx);
      } catch (e) {
        err = e;
      }
      for (const s of ctx.servers) {
        if (s.alive) {
          try {
            await s.stop({ timeoutMs: 15_000 });
          } catch (e) {
            err ??= e;
          }
        }
      }
      for (const s of ctx.servers) {
        const rep = sanitizerReport(s.output);
        if (rep) {
          const e = new Error(`sanitizer report in tether's stderr:\n${rep}`);
          if (err) e.message += `\n(the test also failed: ${err.message})`;
          throw e;
        }
      }
      if (err) throw err;
    },
    opts,
  );
}

// ----------------------------------------------------------------- RNG

/** mulberry32: small seeded PRNG. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)); // inclusive
  next.pick = (arr) => arr[Math.floor(next() * arr.length)];
  return next;
}

/** The seed: FAULT_SEED from the environment, else a fresh one (always printed). */
export function seedFor(label) {
  const seed = process.env.FAULT_SEED ? Number(process.env.FAULT_SEED) : crypto.randomInt(1, 2 ** 31);
  console.log(`# ${label}: seed ${seed} (reproduce with FAULT_SEED=${seed})`);
  return seed;
}

// --------------------------------------------------------- measurements

/**
 * Anonymous resident memory of a process in KiB (RssAnon from /proc/PID/status):
 * the heap and stacks, without the file-backed pages of the LMDB map, which
 * grow with the data written and belong to the page cache.
 */
export function rssKiB(pid, field = 'RssAnon') {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(s);
  return m ? Number(m[1]) : NaN;
}

/** GET /healthz, returning its latency in ms (throws unless 200). */
export async function healthzMs(port) {
  const t0 = performance.now();
  const r = await httpGet(port, '/healthz');
  const dt = performance.now() - t0;
  if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
  return dt;
}

/** Sample /healthz every `everyMs` until stop() is called; returns {stop, samples}. */
export function healthzProbe(port, everyMs = 100) {
  const samples = [];
  const failures = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        samples.push(await healthzMs(port));
      } catch (e) {
        failures.push(e.message);
      }
      await sleep(everyMs);
    }
  })();
  return {
    samples,
    failures,
    async stop() {
      running = false;
      await loop;
      return { samples, failures };
    },
  };
}

export const percentile = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

// ------------------------------------------------------ raw WebSocket client

/**
 * A hand-rolled RFC 6455 client over a net.Socket: it frames whatever it is
 * given (invalid UTF-8 in a text frame, reserved opcodes, huge lengths, no
 * mask…). Received text frames are parsed into `frames`; the close frame's
 * code goes to `closeCode`.
 */
export class RawWs {
  static connect(port, { path = '/v1/ws', protocol = 'tether.v1', host = '127.0.0.1', allowHalfOpen = false } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port, allowHalfOpen });
      const key = crypto.randomBytes(16).toString('base64');
      let buf = Buffer.alloc(0);
      const onData = (d) => {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        const head = buf.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101/.test(head)) {
          sock.destroy();
          reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
          return;
        }
        const ws = new RawWs(sock);
        resolve(ws);
        ws._feed(buf.subarray(end + 4));
      };
      sock.on('data', onData);
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.write(
          `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
            (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
            '\r\n',
        );
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.frames = [];
    this.closeCode = null;
    this.error = null; // the socket's error (ECONNRESET: the server reset the connection)
    this.ended = false;
    this._buf = Buffer.alloc(0);
    this._waiters = [];
    this.closed = new Promise((resolve) => {
      sock.on('close', () => {
        this.ended = true;
        resolve({ code: this.closeCode });
        this._check();
      });
    });
    sock.on('error', (err) => {
      this.error ??= err; /* and surfaced via close */
    });
    sock.on('data', (d) => this._feed(d));
  }

  _feed(d) {
    this._buf = Buffer.concat([this._buf, d]);
    for (;;) {
      const b = this._buf;
      if (b.length < 2) return;
      const op = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) return;
      const payload = b.subarray(off, off + len);
      this._buf = b.subarray(off + len);
      if (op === 1) {
        let f;
        try {
          f = JSON.parse(payload.toString('utf8'));
        } catch {
          f = { __raw: payload.toString('utf8') };
        }
        this.frames.push(f);
      } else if (op === 8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      } else if (op === 9) {
        this.sendFrame(0xa, payload);
      }
      this._check();
    }
  }

  _check() {
    this._waiters = this._waiters.filter((w) => {
      const f = this.frames.slice(w.from).find(w.pred);
      if (f) {
        clearTimeout(w.timer);
        w.resolve(f);
        return false;
      }
      if (this.ended) {
        clearTimeout(w.timer);
        w.resolve(null);
        return false;
      }
      return true;
    });
  }

  /** The first frame from index `from` matching pred; null on timeout or close. */
  waitFrame(pred, timeoutMs = 5000, from = 0) {
    return new Promise((resolve) => {
      const w = { pred, from, resolve };
      w.timer = setTimeout(() => {
        this._waiters = this._waiters.filter((x) => x !== w);
        resolve(null);
      }, timeoutMs);
      this._waiters.push(w);
      this._check();
    });
  }

  /** Write one frame (client frames are masked unless mask:false). */
  sendFrame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
    const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    const len = p.length;
    let hdr;
    if (len < 126) {
      hdr = Buffer.alloc(2);
      hdr[1] = len;
    } else if (len < 65536) {
      hdr = Buffer.alloc(4);
      hdr[1] = 126;
      hdr.writeUInt16BE(len, 2);
    } else {
      hdr = Buffer.alloc(10);
      hdr[1] = 127;
      hdr.writeBigUInt64BE(BigInt(len), 2);
    }
    hdr[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
    if (!mask) {
      this.sock.write(Buffer.concat([hdr, p]));
      return;
    }
    hdr[1] |= 0x80;
    const m = crypto.randomBytes(4);
    const body = Buffer.alloc(len);
    for (let i = 0; i < len; i++) body[i] = p[i] ^ m[i & 3];
    this.sock.write(Buffer.concat([hdr, m, body]));
  }

  sendText(s) {
    this.sendFrame(1, Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));
  }
  sendJson(o) {
    this.sendText(JSON.stringify(o));
  }

  async request(o, timeoutMs = 5000) {
    const from = this.frames.length;
    this.sendJson(o);
    return this.waitFrame((f) => f.re === o.id, timeoutMs, from);
  }

  async ping(id = `rp${Math.random()}`, timeoutMs = 3000) {
    const from = this.frames.length;
    this.sendJson({ type: 'ping', id });
    return this.waitFrame((f) => f.re === id, timeoutMs, from);
  }

  destroy() {
    this.sock.destroy();
  }
}
