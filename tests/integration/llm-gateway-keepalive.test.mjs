// The gateway's cost per request (issue 18): a plain request is a plain
// upstream call (not a stream), a streamed answer is chunked so the
// connection serves the next request, and a successful call writes no log
// line unless --log-level debug.

import assert from 'node:assert/strict';
import net from 'node:net';
import { fakeTarget, httpRequest, itest, llmCallLines, sleep, writeRoutesFile } from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

async function gwServer(startServer, P, args = []) {
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  return startServer({ args: ['--routes', routes, ...args], env: { FAKE_KEY: 'fake-key' } });
}

const rawPost = (body) => {
  const b = JSON.stringify(body);
  return `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
};

/** Reads HTTP/1.1 responses off one socket: next() resolves {status, headers, body} (length or chunked). */
function responses(sock) {
  let buf = '';
  let closed = false;
  const waiters = [];
  const parse = () => {
    const he = buf.indexOf('\r\n\r\n');
    if (he < 0) return null;
    const lines = buf.slice(0, he).split('\r\n');
    const headers = Object.fromEntries(
      lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    let body = '';
    let pos = he + 4;
    if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        const eol = buf.indexOf('\r\n', pos);
        if (eol < 0) return null;
        const n = parseInt(buf.slice(pos, eol), 16);
        if (buf.length < eol + 2 + n + 2) return null;
        body += buf.slice(eol + 2, eol + 2 + n);
        pos = eol + 2 + n + 2;
        if (n === 0) break;
      }
    } else {
      const len = Number(headers['content-length']);
      if (!Number.isInteger(len)) return closed ? { headers, body: buf.slice(pos), delimited: 'close' } : null;
      if (buf.length < pos + len) return null;
      body = buf.slice(pos, pos + len);
      pos += len;
    }
    buf = buf.slice(pos);
    return { status: Number(lines[0].split(' ')[1]), headers, body };
  };
  const pump = () => {
    while (waiters.length) {
      const r = parse();
      if (r) waiters.shift().resolve(r);
      else if (closed)
        waiters.shift().reject(new Error(`connection closed; unread: ${JSON.stringify(buf.slice(0, 300))}`));
      else break;
    }
  };
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    pump();
  });
  sock.on('close', () => {
    closed = true;
    pump();
  });
  return {
    next: (ms = 5000) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no response in time')), ms);
        waiters.push({
          resolve: (r) => (clearTimeout(t), resolve(r)),
          reject: (e) => (clearTimeout(t), reject(e)),
        });
        pump();
      }),
    closed: () => closed,
  };
}

itest('a streamed answer is chunked and the same connection then serves the next request', async ({ startServer }) => {
  const P = 'ka-stream';
  fp.script({ tokens: ['one', ' two', ' three'], match: { prefix: P } });
  fp.script({ text: 'second answer', match: { prefix: P } });
  fp.script({ tokens: ['third', ' stream'], match: { prefix: P } });
  const srv = await gwServer(startServer, P);
  const sock = net.connect(srv.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const rd = responses(sock);
  const messages = [{ role: 'user', content: 'hi' }];

  sock.write(rawPost({ model: 'default', messages, stream: true }));
  const a = await rd.next();
  assert.equal(a.status, 200, a.body);
  assert.equal(a.headers['transfer-encoding'], 'chunked', JSON.stringify(a.headers));
  assert.equal(a.headers['content-length'], undefined);
  assert.notEqual(a.headers.connection, 'close');
  assert.match(a.body, /"content":"one"/);
  assert.ok(a.body.endsWith('data: [DONE]\n\n'), a.body);

  sock.write(rawPost({ model: 'default', messages }));
  const b = await rd.next();
  assert.equal(b.status, 200, b.body);
  assert.equal(JSON.parse(b.body).choices[0].message.content, 'second answer');

  sock.write(rawPost({ model: 'default', messages, stream: true }));
  const c = await rd.next();
  assert.equal(c.status, 200, c.body);
  assert.match(c.body, /"content":" stream"/);
  assert.ok(!rd.closed(), 'the connection is still open after three answers');
  sock.destroy();
});

itest('a plain request is a plain upstream call (stream false); a streamed one streams', async ({ startServer }) => {
  const P = 'ka-plain';
  fp.script({ text: 'plain reply', usage: { prompt_tokens: 3, completion_tokens: 2 }, match: { prefix: P } });
  fp.script({ text: 'streamed reply', match: { prefix: P } });
  const srv = await gwServer(startServer, P);
  const messages = [{ role: 'user', content: 'hi' }];
  const plain = await httpRequest(srv.port, 'POST', '/v1/chat/completions', { body: { model: 'default', messages } });
  assert.equal(plain.status, 200, plain.body);
  assert.equal(plain.json.choices[0].message.content, 'plain reply');
  assert.equal(plain.json.usage.total_tokens, 5);
  const streamed = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    body: { model: 'default', messages, stream: true },
  });
  assert.equal(streamed.status, 200, streamed.body);
  assert.match(streamed.body, /streamed/);
  const reqs = fp.requests({ prefix: P });
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0].body.stream, false, 'the plain request reached the provider unstreamed');
  assert.equal(reqs[0].body.stream_options, undefined);
  assert.match(String(reqs[0].headers.accept), /application\/json/);
  assert.equal(reqs[1].body.stream, true);
});

itest('a successful call logs no line at info level; a failed attempt does', async ({ startServer }) => {
  const P = 'ka-log';
  fp.script([
    { text: 'fine', match: { prefix: P } },
    { status: 400, match: { prefix: P } },
  ]);
  const srv = await gwServer(startServer, P, ['--log-level', 'info']);
  const messages = [{ role: 'user', content: 'hi' }];
  const ok = await httpRequest(srv.port, 'POST', '/v1/chat/completions', { body: { model: 'default', messages } });
  assert.equal(ok.status, 200, ok.body);
  const bad = await httpRequest(srv.port, 'POST', '/v1/chat/completions', { body: { model: 'default', messages } });
  assert.equal(bad.status, 400, bad.body);
  await sleep(100);
  const lines = llmCallLines(srv.output);
  assert.equal(lines.length, 1, srv.output.slice(-2000));
  assert.notEqual(lines[0].outcome, 'ok');
  assert.equal(lines[0].level, 'info');
  assert.equal(lines[0].http_status, 400);
});
