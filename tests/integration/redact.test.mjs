// PII redaction per route (issue 13; agents/llm/redact.h, route "redact"):
// a prompt on a redacted route reaches the provider with placeholders
// instead of the e-mail, phone, card, IBAN and configured pattern, while the
// client gets the reply with the values back, streamed (placeholders cut
// across chunks) and not; embeddings through a redacted route are redacted
// too; a route without "redact" sends the text as it is.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { fakeTarget, httpRequest, itest, writeRoutesFile } from './harness.mjs';
import { checkAnswer } from './openapi-validate.mjs';

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
});

const SECRET =
  'I am jane.doe@example.com, phone +44 20 7946 0958, card 4111 1111 1111 1111, ' +
  'IBAN DE89 3704 0044 0532 0130 00, staff id EMP-123456. Order 1234567890 on 2024-01-15.';
const REDACTED =
  'I am [EMAIL_1], phone [PHONE_1], card [CARD_1], IBAN [IBAN_1], staff id [EMPLOYEE_1]. ' +
  'Order 1234567890 on 2024-01-15.';
// The model's reply, placeholders cut in two (and one the prompt never had).
const TOKENS = ['Noted: [EM', 'AIL_1] and [', 'PHONE_1', '], card [CARD_1', '], [EMPLOYEE_1][EMAIL_7]', ' ok ['];
const RESTORED = 'Noted: jane.doe@example.com and +44 20 7946 0958, card 4111 1111 1111 1111, EMP-123456[EMAIL_7] ok [';

async function redactServer(startServer, P) {
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P)], plain: [fakeTarget(fp.url, `${P}-plain`)] },
    retry: { max_attempts: 1 },
    redact: { routes: { default: true }, patterns: { EMPLOYEE: '\\bEMP-\\d{6}\\b' } },
  });
  return startServer({ args: ['--routes', routes, '--gateway-models', ''], env: { FAKE_KEY: 'fake-key' } });
}

function postStream(port, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          const contentType = res.headers['content-type'];
          checkAnswer(port, {
            method: 'POST',
            path: '/v1/chat/completions',
            status: res.statusCode,
            contentType,
            body: text,
          });
          let content = '';
          for (const line of text.split(/\r?\n/)) {
            if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
            const j = JSON.parse(line.slice(6));
            content += j.choices?.[0]?.delta?.content ?? '';
          }
          resolve({ status: res.statusCode, content, body: text });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const sentText = (rec) => JSON.stringify(rec.body.messages);

itest(
  'a redacted route: placeholders reach the provider, the values come back (plain and streamed)',
  async ({ startServer }) => {
    const P = 'redact-route';
    fp.script({ tokens: TOKENS, match: { prefix: P }, repeat: 2 });
    const srv = await redactServer(startServer, P);
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: SECRET },
    ];

    const plain = await httpRequest(srv.port, 'POST', '/v1/chat/completions', { body: { model: 'default', messages } });
    assert.equal(plain.status, 200, plain.body);
    assert.equal(JSON.parse(plain.body).choices[0].message.content, RESTORED);

    const streamed = await postStream(srv.port, { model: 'default', messages, stream: true });
    assert.equal(streamed.status, 200, streamed.body);
    assert.equal(streamed.content, RESTORED);

    const recs = fp.requests({ prefix: P });
    assert.equal(recs.length, 2);
    for (const rec of recs) {
      const sent = sentText(rec);
      for (const secret of ['jane.doe', '7946', '4111', 'DE89', 'EMP-123456'])
        assert.ok(!sent.includes(secret), `${secret} reached the provider: ${sent}`);
      assert.equal(rec.body.messages.at(-1).content, REDACTED);
    }
    // and the server's own log has none of them either
    assert.ok(!srv.output.includes('jane.doe@example.com'));
  },
);

itest(
  'embeddings through a redacted route: the provider gets placeholders, a plain route the text',
  async ({ startServer }) => {
    const P = 'redact-embed';
    const srv = await redactServer(startServer, P);
    const one = await httpRequest(srv.port, 'POST', '/v1/embeddings', { body: { model: 'default', input: SECRET } });
    assert.equal(one.status, 200, one.body);
    assert.equal(one.json.data.length, 1);
    const two = await httpRequest(srv.port, 'POST', '/v1/embeddings', {
      body: { model: 'default', input: ['mail jane.doe@example.com', 'no secret here'] },
    });
    assert.equal(two.status, 200, two.body);
    assert.equal(two.json.data.length, 2);
    const recs = fp.requests({ prefix: P });
    assert.equal(recs.length, 2);
    assert.equal(recs[0].body.input, REDACTED);
    assert.deepEqual(recs[1].body.input, ['mail [EMAIL_1]', 'no secret here']);
    const plain = await httpRequest(srv.port, 'POST', '/v1/embeddings', {
      body: { model: 'plain', input: 'mail jane.doe@example.com' },
    });
    assert.equal(plain.status, 200, plain.body);
    assert.equal(fp.requests({ prefix: `${P}-plain` })[0].body.input, 'mail jane.doe@example.com');
  },
);

itest(
  'a large prompt (prepared in the thread pool) is redacted too; one over the caps is refused, nothing sent',
  async ({ startServer }) => {
    const P = 'redact-large';
    fp.script({ text: 'to [EMAIL_1]', match: { prefix: P } });
    const srv = await redactServer(startServer, P);
    const filler = 'lorem ipsum dolor sit amet '.repeat(1000); // 27 KB: over the 16 KiB prepared on the loop
    const big = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
      body: { model: 'default', messages: [{ role: 'user', content: `${filler}mail bob@example.org` }] },
    });
    assert.equal(big.status, 200, big.body);
    assert.equal(JSON.parse(big.body).choices[0].message.content, 'to bob@example.org');
    assert.equal(fp.requests({ prefix: P })[0].body.messages[0].content, `${filler}mail [EMAIL_1]`);

    const many = Array.from({ length: 600 }, (_, i) => `u${i}@example.org`).join(' ');
    const refused = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
      body: { model: 'default', messages: [{ role: 'user', content: many }] },
    });
    assert.ok(refused.status >= 400, refused.body);
    assert.equal(fp.requests({ prefix: P }).length, 1, 'nothing more reached the provider');
  },
);

itest(
  "tool calls: arguments in the history are redacted, the reply's arguments restored (cut in fragments)",
  async ({ startServer }) => {
    const P = 'redact-tools';
    fp.script({
      tool_calls: [{ id: 'call_2', name: 'send', arguments: '{"to":"[EMAIL_1]","card":"[CARD_1]"}', split_args: 7 }],
      match: { prefix: P },
      repeat: 2,
    });
    const srv = await redactServer(startServer, P);
    const messages = [
      { role: 'user', content: 'mail jane.doe@example.com' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'lookup', arguments: '{"card": "4111 1111 1111 1111", "n": 4111111111111111}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'card 4111 1111 1111 1111 is valid' },
    ];
    const tools = [{ type: 'function', function: { name: 'send', parameters: { type: 'object' } } }];
    const want = '{"to":"jane.doe@example.com","card":"4111 1111 1111 1111"}';
    const plain = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
      body: { model: 'default', messages, tools },
    });
    assert.equal(plain.status, 200, plain.body);
    assert.equal(JSON.parse(plain.body).choices[0].message.tool_calls[0].function.arguments, want);
    const streamed = await postStream(srv.port, { model: 'default', messages, tools, stream: true });
    assert.equal(streamed.status, 200, streamed.body);
    let args = '';
    for (const line of streamed.body.split(/\r?\n/)) {
      if (!line.startsWith('data: {')) continue;
      for (const tc of JSON.parse(line.slice(6)).choices?.[0]?.delta?.tool_calls ?? [])
        args += tc.function?.arguments ?? '';
    }
    assert.equal(args, want);
    for (const rec of fp.requests({ prefix: P })) {
      const sent = sentText(rec);
      // strings only: a JSON number is sent as it is (documented)
      assert.ok(!sent.includes('4111 1111') && !sent.includes('jane.doe'), sent);
      const call = rec.body.messages[1].tool_calls[0].function;
      assert.deepEqual(JSON.parse(call.arguments), { card: '[CARD_1]', n: 4111111111111111 });
    }
  },
);

itest('a route without "redact" sends the prompt as it is', async ({ startServer }) => {
  const P = 'redact-off';
  fp.script({ text: 'fine', match: { prefix: `${P}-plain` } });
  const srv = await redactServer(startServer, P);
  const r = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    body: { model: 'plain', messages: [{ role: 'user', content: SECRET }] },
  });
  assert.equal(r.status, 200, r.body);
  assert.equal(fp.requests({ prefix: `${P}-plain` })[0].body.messages.at(-1).content, SECRET);
});

itest('a bad redact pattern is refused at start with its path', async ({ startServer }) => {
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, 'redact-bad')] },
    redact: { routes: { default: true }, patterns: { EMPLOYEE: '(unclosed' } },
  });
  await assert.rejects(startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'fake-key' } }), /redact.*EMPLOYEE/s);
});
