// TLS on the listener (issue 15), with a CA and certificates made here by
// the `openssl` command: HTTPS and wss:// on one port, TLS 1.2 and up only,
// no plain HTTP on it; SIGHUP swaps the certificate for new handshakes while
// an open WebSocket goes on; a bad pair on SIGHUP keeps the old one; a bad
// pair at start-up stops it with a message.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { BIN, Client, freePort, openSession, REPO, sayAndWait, sleep, SUBPROTOCOL } from './harness.mjs';
import { runTether, stopTether } from './deploy-lib.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-tls-'));
const f = (n) => path.join(dir, n);
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
let ca;

/** A P-256 key and a certificate for 127.0.0.1 signed by the test CA. */
function issue(name, cn) {
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  );
  fs.writeFileSync(f('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    'ext',
  );
}

before(() => {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Tether Test CA',
  );
  issue('one', 'tether-one');
  issue('two', 'tether-two');
  ca = fs.readFileSync(f('ca.pem'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The server's certificate CN and protocol on a fresh TLS connection (opts: extra tls.connect options). */
function handshake(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...opts }, () => {
      const r = { cn: s.getPeerCertificate().subject.CN, protocol: s.getProtocol(), alpn: s.alpnProtocol };
      s.end();
      resolve(r);
    });
    s.on('error', reject);
  });
}

function httpsGet(port, p) {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: p, ca, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });
}

function wss(port) {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/ws`, SUBPROTOCOL, { ca, handshakeTimeout: 5000 });
  const c = new Client(ws, 'tls');
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('error', reject);
  });
}

async function start(cert, key, port) {
  const r = await runTether(
    BIN,
    ['--port', String(port), '--data-dir', f(`data-${port}`), '--tls-cert', cert, '--tls-key', key],
    {
      cwd: REPO,
    },
  );
  assert.ok(r.proc, JSON.stringify(r.lines));
  assert.equal(r.lines.find((l) => l.msg === 'listening').tls, true);
  return r;
}

const waitLog = async (r, msg, from) => {
  for (let i = 0; i < 100; i++) {
    const hit = r.lines.slice(from).find((l) => l.msg === msg);
    if (hit) return hit;
    await sleep(50);
  }
  throw new Error(`no "${msg}" in ${JSON.stringify(r.lines.slice(from))}`);
};

test('HTTPS and wss:// on one port, TLS 1.2+ only, no plain HTTP', async () => {
  const port = await freePort();
  const r = await start(f('one.pem'), f('one.key'), port);
  try {
    const h = await handshake(port);
    assert.equal(h.cn, 'tether-one');
    assert.equal(h.protocol, 'TLSv1.3');
    assert.equal(h.alpn, false, 'no h2 by ALPN unless asked');
    assert.equal((await handshake(port, { ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'http/1.1');
    assert.equal((await handshake(port, { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    await assert.rejects(
      handshake(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
      /protocol|version|alert/i,
    );
    const ok = await httpsGet(port, '/healthz');
    assert.equal(ok.status, 200);
    const page = await httpsGet(port, '/');
    assert.match(page.body, /<html/i);
    const c = await wss(port);
    assert.equal((await c.hello()).type, 'welcome');
    const { session } = await openSession(c, 'echo');
    const { events } = await sayAndWait(c, session, 'over tls', 'm1');
    assert.ok(events.some((e) => e.type === 'message.end'));
    c.ws.close();
    // Plain HTTP on the TLS port gets no HTTP answer.
    const plain = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () =>
        s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
      );
      let got = '';
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
      s.setTimeout(3000, () => s.destroy());
    });
    assert.doesNotMatch(plain, /^HTTP\/1\.1 200/);
  } finally {
    assert.equal((await stopTether(r)).code, 0);
  }
});

test('SIGHUP: new handshakes get the new certificate, an open WebSocket goes on; a bad pair keeps the old one', async () => {
  const port = await freePort();
  fs.copyFileSync(f('one.pem'), f('live.pem'));
  fs.copyFileSync(f('one.key'), f('live.key'));
  const r = await start(f('live.pem'), f('live.key'), port);
  try {
    const c = await wss(port);
    await c.hello();
    const { session } = await openSession(c, 'echo');
    await sayAndWait(c, session, 'before', 'b1');
    fs.copyFileSync(f('two.pem'), f('live.pem'));
    fs.copyFileSync(f('two.key'), f('live.key'));
    let from = r.lines.length;
    r.proc.kill('SIGHUP');
    assert.equal((await waitLog(r, 'TLS certificate reloaded', from)).subject, '/CN=tether-two');
    assert.equal((await handshake(port)).cn, 'tether-two');
    const { events } = await sayAndWait(c, session, 'after the reload', 'b2');
    assert.ok(
      events.some((e) => e.type === 'message.end'),
      'the open socket was not dropped',
    );
    // A key that does not match: logged, the previous pair stays.
    fs.copyFileSync(f('one.key'), f('live.key'));
    from = r.lines.length;
    r.proc.kill('SIGHUP');
    const bad = await waitLog(r, 'TLS certificate not reloaded; the previous one stays', from);
    assert.match(bad.error, /does not match/);
    assert.equal((await handshake(port)).cn, 'tether-two');
    assert.equal((await httpsGet(port, '/healthz')).status, 200);
    c.ws.close();
  } finally {
    assert.equal((await stopTether(r)).code, 0);
  }
});

test('--check-config names the certificate, or why the pair cannot be used', () => {
  const good = execFileSync(
    BIN,
    ['--check-config', '--data-dir', f('d-check'), '--tls-cert', f('one.pem'), '--tls-key', f('one.key')],
    {
      encoding: 'utf8',
    },
  );
  assert.match(good, /ok +tls +.*one\.pem \(\/CN=tether-one, valid until /);
  let bad;
  try {
    execFileSync(
      BIN,
      ['--check-config', '--data-dir', f('d-check'), '--tls-cert', f('one.pem'), '--tls-key', f('two.key')],
      {
        encoding: 'utf8',
      },
    );
  } catch (e) {
    bad = e;
  }
  assert.equal(bad?.status, 1);
  assert.match(bad.stdout, /FAIL +tls +--tls-key does not match --tls-cert/);
});

test('a bad pair at start-up: a message, exit 1', async () => {
  const port = await freePort();
  const mismatched = await runTether(
    BIN,
    ['--port', String(port), '--data-dir', f('d-bad'), '--tls-cert', f('one.pem'), '--tls-key', f('two.key')],
    { cwd: REPO },
  );
  assert.equal(mismatched.code, 1);
  assert.match(mismatched.lines.find((l) => l.msg === 'cannot use the TLS certificate').error, /does not match/);
  const half = await runTether(BIN, ['--port', String(port), '--data-dir', f('d-bad'), '--tls-cert', f('one.pem')], {
    cwd: REPO,
  });
  assert.equal(half.code, 1);
  assert.match(half.lines.find((l) => l.msg === 'cannot use the TLS certificate').error, /both/);
});
