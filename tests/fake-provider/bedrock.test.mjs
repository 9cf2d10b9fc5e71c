// Tests of the fake provider's Bedrock side (bedrock.mjs): requests signed
// here with a small SigV4 signer of the test's own, event-stream responses
// parsed by a reader of the test's own (CRCs checked with a bitwise CRC-32,
// not the fake's table), errors and faults in Bedrock's format, and the
// signature check refusing what AWS would refuse.
// Run: node --test tests/fake-provider/

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, beforeEach, test } from 'node:test';
import { startFakeProvider } from './server.mjs';

const AWS = { keyId: 'AKIDFAKETEST', secret: 'fake/secret+0123456789' };
const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0';

let fp;
before(async () => {
  fp = await startFakeProvider({ aws: AWS });
});
after(async () => {
  await fp.close();
});
beforeEach(() => fp.reset());

function crcBitwise(buf) {
  let c = 0xffffffff;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Messages of an event stream: {headers, payload, crcOk}. */
function readFrames(buf) {
  const out = [];
  let at = 0;
  while (at + 16 <= buf.length) {
    const total = buf.readUInt32BE(at);
    const hlen = buf.readUInt32BE(at + 4);
    assert.equal(buf.readUInt32BE(at + 8), crcBitwise(buf.subarray(at, at + 8)), 'prelude CRC');
    const m = buf.subarray(at, at + total);
    const headers = {};
    let i = 12;
    while (i < 12 + hlen) {
      const n = m[i];
      const name = m.subarray(i + 1, i + 1 + n).toString();
      assert.equal(m[i + 1 + n], 7, 'string header');
      const vlen = m.readUInt16BE(i + 2 + n);
      headers[name] = m.subarray(i + 4 + n, i + 4 + n + vlen).toString();
      i += 4 + n + vlen;
    }
    const payload = m.subarray(12 + hlen, total - 4).toString();
    out.push({ headers, payload, crcOk: m.readUInt32BE(total - 4) === crcBitwise(m.subarray(0, total - 4)) });
    at += total;
  }
  assert.equal(at, buf.length, 'no bytes left over');
  return out;
}

const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();
const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** POST body to path, signed as AWS asks (path segments encoded once more). */
function post(path, body, { secret = AWS.secret, sign = true, region = 'us-east-1', single = false } = {}) {
  const data = JSON.stringify(body);
  const host = `127.0.0.1:${fp.port}`;
  const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const headers = { 'content-type': 'application/json', host, 'x-amz-date': date };
  if (sign) {
    const canonPath = single ? path : path.replace(/%/g, '%25'); // single: as curl 7.88 signs
    const signed = 'content-type;host;x-amz-date';
    const canon = ['POST', canonPath, '', ...signed.split(';').map((h) => `${h}:${headers[h]}`), '', signed, sha(data)];
    const scope = `${date.slice(0, 8)}/${region}/bedrock/aws4_request`;
    const sts = ['AWS4-HMAC-SHA256', date, scope, sha(canon.join('\n'))].join('\n');
    let k = hmac('AWS4' + secret, date.slice(0, 8));
    for (const p of [region, 'bedrock', 'aws4_request']) k = hmac(k, p);
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${AWS.keyId}/${scope}, SignedHeaders=${signed}, Signature=${hmac(k, sts).toString('hex')}`;
  }
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: fp.port, method: 'POST', path, headers }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

const PATH = (op) => `/p1/model/${encodeURIComponent(MODEL)}/${op}`;
const BODY = { messages: [{ role: 'user', content: [{ text: 'hello there' }] }], inferenceConfig: { maxTokens: 50 } };

test('ConverseStream: event-stream frames, CRCs right, text then stop then metadata', async () => {
  fp.script({ text: 'Hi there friend', tool_calls: [{ id: 't1', name: 'f', arguments: { a: 1 } }], split_args: 2 });
  const r = await post(PATH('converse-stream'), BODY);
  assert.equal(r.status, 200, r.body.toString());
  assert.equal(r.headers['content-type'], 'application/vnd.amazon.eventstream');
  const frames = readFrames(r.body);
  assert.ok(frames.every((f) => f.crcOk && f.headers[':message-type'] === 'event'));
  const types = frames.map((f) => f.headers[':event-type']);
  assert.deepEqual(types, [
    'messageStart',
    'contentBlockDelta',
    'contentBlockDelta',
    'contentBlockDelta',
    'contentBlockStop',
    'contentBlockStart',
    'contentBlockDelta',
    'contentBlockDelta',
    'contentBlockStop',
    'messageStop',
    'metadata',
  ]);
  const p = frames.map((f) => JSON.parse(f.payload));
  assert.equal(
    p
      .slice(1, 4)
      .map((x) => x.delta.text)
      .join(''),
    'Hi there friend',
  );
  assert.deepEqual(p[5].start.toolUse, { toolUseId: 't1', name: 'f' });
  assert.equal(p[6].delta.toolUse.input + p[7].delta.toolUse.input, '{"a":1}');
  assert.equal(p[9].stopReason, 'tool_use');
  assert.equal(typeof p[10].usage.inputTokens, 'number');
  const rec = fp.requests()[0];
  assert.equal(rec.model, MODEL);
  assert.equal(rec.prefix, 'p1');
  assert.equal(rec.sigv4.ok, true);
  assert.equal(rec.sigv4.region, 'us-east-1');
});

test('Converse: JSON output, default echo of the last user text', async () => {
  const r = await post(PATH('converse'), BODY);
  assert.equal(r.status, 200);
  const j = JSON.parse(r.body);
  assert.equal(j.output.message.content[0].text, 'echo: hello there');
  assert.equal(j.stopReason, 'end_turn');
});

test('faults: bad CRC, exception mid-stream, throttling status', async () => {
  fp.script({ text: 'a b c', malformed_after: 1 });
  let f = readFrames((await post(PATH('converse-stream'), BODY)).body);
  assert.equal(f.at(-1).crcOk, false, 'the last message has a wrong CRC');
  assert.ok(f.slice(0, -1).every((x) => x.crcOk));

  fp.script({ text: 'a b c', in_stream_error: { after: 2, type: 'throttlingException', message: 'slow' } });
  f = readFrames((await post(PATH('converse-stream'), BODY)).body);
  const last = f.at(-1);
  assert.equal(last.headers[':message-type'], 'exception');
  assert.equal(last.headers[':exception-type'], 'throttlingException');
  assert.deepEqual(JSON.parse(last.payload), { message: 'slow' });

  fp.script({ status: 429 });
  const r = await post(PATH('converse-stream'), BODY);
  assert.equal(r.status, 429);
  assert.match(r.headers['x-amzn-errortype'], /^ThrottlingException:/);
  assert.equal(typeof JSON.parse(r.body).message, 'string');
});

test('signatures: missing, wrong secret, and a single-encoded path are refused (403)', async () => {
  for (const opts of [{ sign: false }, { secret: 'wrong' }, { single: true }]) {
    const r = await post(PATH('converse-stream'), BODY, opts);
    assert.equal(r.status, 403);
    assert.match(r.headers['x-amzn-errortype'], /^InvalidSignatureException:/);
  }
  assert.equal(fp.requests().length, 3);
  assert.ok(fp.requests().every((x) => x.sigv4.ok === false && x.served_by === 'auth'));
});

test('validation: messages must be a non-empty list of role + content blocks', async () => {
  const r = await post(PATH('converse'), { messages: [] });
  assert.equal(r.status, 400);
  assert.match(r.headers['x-amzn-errortype'], /^ValidationException:/);
});
