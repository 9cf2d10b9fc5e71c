// Provider "bedrock": AWS Bedrock's ConverseStream through the chat agent and
// the OpenAI-compatible gateway, against the fake provider speaking Bedrock's
// wire format (event-stream frames) and checking every request's SigV4
// signature in full with the credentials given here. Faults: throttling,
// an exception mid-stream, a bad CRC, a cut connection; region failover;
// credentials from the shared credentials file; a wrong secret.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  checkMessages,
  llmCallLines,
  waitState,
  connect,
  httpRequest,
  itest,
  openSession,
  sayAndWait,
  shownText,
  writeRoutesFile,
} from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const AWS = { keyId: 'AKIDTETHERTEST', secret: 'tether/test+secret/0123456789abcdefEXAMPLE' };
const ENV = { AWS_ACCESS_KEY_ID: AWS.keyId, AWS_SECRET_ACCESS_KEY: AWS.secret, AWS_SESSION_TOKEN: '' };
// The usual model ID form (with ":"), and one without: curl's signer covers
// only the second, Tether's own the first (agents/llm/bedrock.h).
const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0';
const PLAIN_MODEL = 'amazon.titan-text-express-v1';

const fp = useFakeProvider({ aws: AWS });

const TIMEOUTS = { connect: 1000, first_byte: 2000, idle: 1000, total: 10000 };
const RETRY = { max_attempts: 4, base_ms: 50, max_backoff_ms: 300, max_total_ms: 8000 };

function target(P, region, extra = {}) {
  return {
    provider: 'bedrock',
    base_url: `${fp.url}/${P}-${region}`,
    model: MODEL,
    region,
    timeout_ms: TIMEOUTS,
    ...extra,
  };
}

async function bedrockServer(startServer, P, { regions = ['us-east-1'], env = ENV, extra = {} } = {}) {
  const routes = writeRoutesFile({ routes: { default: regions.map((r) => target(P, r, extra)) }, retry: RETRY });
  return startServer({ args: ['--routes', routes], env });
}

async function chat(startServer, P, opts) {
  const srv = await bedrockServer(startServer, P, opts);
  const c = await connect(srv.port, { hello: true });
  const r = await openSession(c, 'chat', { input: {} });
  await c.waitEvent((e) => e.session === r.session && e.seq === 1);
  return { srv, c, session: r.session };
}

const reqsOf = (P) => fp.requests().filter((r) => r.prefix.startsWith(`${P}-`));

function assertCompleted(events, text) {
  checkMessages(assert, events);
  const ends = events.filter((e) => e.type === 'message.end');
  assert.equal(ends.length, 1, JSON.stringify(events));
  assert.equal(ends[0].text, text);
  assert.equal(shownText(events), text);
  assert.ok(!events.some((x) => x.type === 'error'), JSON.stringify(events));
}

/** Every request was signed for this region and Bedrock, and checked out. */
function assertSigned(reqs, region, { token = null } = {}) {
  assert.ok(reqs.length > 0);
  for (const r of reqs) {
    assert.equal(r.sigv4.ok, true, JSON.stringify(r.sigv4));
    assert.equal(r.sigv4.key_id, AWS.keyId);
    assert.equal(r.sigv4.service, 'bedrock');
    if (region) assert.equal(r.sigv4.region, region);
    assert.equal(r.sigv4.session_token, token);
    assert.match(
      r.headers.authorization,
      /^AWS4-HMAC-SHA256 Credential=AKIDTETHERTEST\/\d{8}\/[a-z0-9-]+\/bedrock\/aws4_request/,
    );
  }
}

itest('chat through bedrock: streamed text, signed with the model ID\'s ":" (own signer)', async ({ startServer }) => {
  const P = 'b-chat';
  fp.script({ text: 'Hello from Bedrock, streamed.', match: { prefix: `${P}-us-east-1` } });
  const { c, session } = await chat(startServer, P);
  const { events } = await sayAndWait(c, session, 'hi there', 'c1');
  assertCompleted(events, 'Hello from Bedrock, streamed.');
  const reqs = reqsOf(P);
  assertSigned(reqs, 'us-east-1');
  assert.equal(reqs[0].path, `/${P}-us-east-1/model/${encodeURIComponent(MODEL)}/converse-stream`);
  assert.equal(reqs[0].model, MODEL);
  assert.equal(reqs[0].stream, true);
  const last = reqs[0].body.messages.at(-1);
  assert.deepEqual(last, { role: 'user', content: [{ text: 'hi there' }] });
  assert.ok(Array.isArray(reqs[0].body.system) && reqs[0].body.system.length > 0, 'the chat prompt goes to "system"');
  assert.equal(typeof reqs[0].body.inferenceConfig?.maxTokens, 'number');
});

itest(
  'a model ID without reserved characters is signed by libcurl (CURLOPT_AWS_SIGV4), with a session token',
  async ({ startServer }) => {
    const P = 'b-curl';
    fp.script({ text: 'signed by curl', match: { prefix: `${P}-eu-west-3` } });
    const env = { ...ENV, AWS_SESSION_TOKEN: 'session-token-xyz' };
    const { c, session } = await chat(startServer, P, { regions: ['eu-west-3'], env, extra: { model: PLAIN_MODEL } });
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    assertCompleted(events, 'signed by curl');
    const reqs = reqsOf(P);
    assertSigned(reqs, 'eu-west-3', { token: 'session-token-xyz' });
    assert.equal(reqs[0].path, `/${P}-eu-west-3/model/${PLAIN_MODEL}/converse-stream`);
    assert.equal(reqs[0].headers['x-amz-security-token'], 'session-token-xyz');
  },
);

itest(
  'a tool call through bedrock: toolUse streamed, the result sent back as a toolResult',
  async ({ startServer }) => {
    const P = 'b-tools';
    fp.script({
      tool_calls: [{ id: 'tooluse_1', name: 'calculate', arguments: { expression: '6*7' } }],
      split_args: 3,
      match: { prefix: `${P}-us-east-1` },
    });
    fp.script({ text: 'The answer is 42.', match: { prefix: `${P}-us-east-1` } });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-br-agents-'));
    const agents = path.join(dir, 'agents.json');
    fs.writeFileSync(
      agents,
      JSON.stringify({ agents: [{ name: 'helper', description: 'numbers', tools: ['calculate'] }] }),
    );
    try {
      const routes = writeRoutesFile({ routes: { default: [target(P, 'us-east-1')] }, retry: RETRY });
      const srv = await startServer({ args: ['--routes', routes, '--agents', agents], env: ENV });
      const c = await connect(srv.port, { hello: true });
      const { session } = await openSession(c, 'helper');
      await c.ok({ type: 'say', session, text: 'what is six times seven?' });
      await waitState(c, session, 'idle', 2, 10000);
      const evs = c.sessionEvents(session);
      const calls = evs.filter((e) => e.type === 'tool.call');
      assert.equal(calls.length, 1, JSON.stringify(evs));
      assert.equal(calls[0].name, 'calculate');
      const results = evs.filter((e) => e.type === 'tool.result');
      assert.equal(results[0].result.result, 42, JSON.stringify(results));
      const reqs = reqsOf(P);
      assert.equal(reqs.length, 2);
      assertSigned(reqs, 'us-east-1');
      const spec = reqs[0].body.toolConfig.tools.map((t) => t.toolSpec.name);
      assert.ok(spec.includes('calculate'), JSON.stringify(reqs[0].body.toolConfig));
      const blocks = reqs[1].body.messages.flatMap((m) => m.content);
      const use = blocks.find((x) => x.toolUse);
      const result = blocks.find((x) => x.toolResult);
      assert.equal(use.toolUse.toolUseId, 'tooluse_1');
      assert.deepEqual(use.toolUse.input, { expression: '6*7' });
      assert.equal(result.toolResult.toolUseId, 'tooluse_1');
      assert.match(result.toolResult.content[0].text, /42/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

itest('throttling in region a (429 ThrottlingException): failover to region b', async ({ startServer }) => {
  const P = 'b-throttle';
  fp.script({ status: 429, match: { prefix: `${P}-us-east-1` }, repeat: 'forever' });
  fp.script({ text: 'from the second region', match: { prefix: `${P}-us-west-2` } });
  const { c, session } = await chat(startServer, P, { regions: ['us-east-1', 'us-west-2'] });
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  assertCompleted(events, 'from the second region');
  const reqs = reqsOf(P);
  assert.deepEqual(
    reqs.map((r) => r.sigv4.region),
    ['us-east-1', 'us-west-2'],
    'each region signs with its own scope',
  );
  assertSigned(reqs, null);
  fp.reset();
});

itest(
  'an exception mid-stream (throttlingException frame): the partial message is discarded and retried',
  async ({ startServer }) => {
    const P = 'b-midstream';
    const text = 'alpha beta gamma delta';
    fp.script([
      {
        text,
        in_stream_error: { after: 2, type: 'throttlingException', message: 'slow down' },
        match: { prefix: `${P}-us-east-1` },
      },
      { text, match: { prefix: `${P}-us-east-1` } },
    ]);
    const { c, session } = await chat(startServer, P);
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    assertCompleted(events, text);
    assert.ok(
      events.some((e) => e.type === 'message.discard'),
      'the partial output was discarded',
    );
    assert.equal(reqsOf(P).length, 2);
  },
);

for (const [name, fault] of [
  ['a cut connection', { reset_after: 1 }],
  ['a stream that ends without metadata', { end_after: 2 }],
]) {
  itest(`${name} mid-stream: an error, then a retry that completes`, async ({ startServer }) => {
    const P = `b-${name.replace(/[^a-z]+/g, '-')}`;
    const text = 'one two three';
    fp.script([
      { text, ...fault, match: { prefix: `${P}-us-east-1` } },
      { text, match: { prefix: `${P}-us-east-1` } },
    ]);
    const { c, session } = await chat(startServer, P);
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    assertCompleted(events, text);
    assert.equal(reqsOf(P).length, 2);
  });
}

// A bad CRC is a malformed response: like any provider's, not asked of
// that target again in the call, so the next region answers.
itest('a bad CRC mid-stream in region a: the next region answers', async ({ startServer }) => {
  const P = 'b-badcrc';
  const text = 'one two three';
  fp.script({ text, malformed_after: 1, match: { prefix: `${P}-us-east-1` } });
  fp.script({ text, match: { prefix: `${P}-us-west-2` } });
  const { srv, c, session } = await chat(startServer, P, { regions: ['us-east-1', 'us-west-2'] });
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  assertCompleted(events, text);
  assert.deepEqual(
    reqsOf(P).map((r) => r.sigv4.region),
    ['us-east-1', 'us-west-2'],
  );
  assert.deepEqual(
    llmCallLines(srv.output).map((l) => l.outcome),
    ['malformed', 'ok'],
  );
});

itest('a validation error (400, "Input is too long") is not retried as is', async ({ startServer }) => {
  const P = 'b-400';
  fp.script({ status: 400, match: { prefix: `${P}-us-east-1` }, repeat: 'forever' });
  const { srv, c, session } = await chat(startServer, P);
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  assert.ok(
    events.some((e) => e.type === 'error' || e.type === 'message.end'),
    JSON.stringify(events),
  );
  // context_length: one trim-and-retry at most, never four attempts
  assert.ok(reqsOf(P).length <= 2, `${reqsOf(P).length} attempts`);
  const lines = llmCallLines(srv.output);
  assert.equal(lines[0].provider, 'bedrock');
  assert.equal(lines[0].outcome, 'context_length', JSON.stringify(lines));
  assert.equal(lines[0].http_status, 400);
  fp.reset();
});

itest(
  "the x-amzn-ErrorType decides the class: 424 ModelErrorException is the server's, so it is retried",
  async ({ startServer }) => {
    const P = 'b-424';
    fp.script([
      { status: 424, match: { prefix: `${P}-us-east-1` } },
      { text: 'second try', match: { prefix: `${P}-us-east-1` } },
    ]);
    const { srv, c, session } = await chat(startServer, P);
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    assertCompleted(events, 'second try');
    assert.deepEqual(
      llmCallLines(srv.output).map((l) => [l.outcome, l.http_status]),
      [
        ['server', 424],
        ['ok', 200],
      ],
    );
  },
);

itest(
  'a wrong secret: the fake refuses the signature (403), the call fails as auth, no retries',
  async ({ startServer }) => {
    const P = 'b-badsig';
    const env = { ...ENV, AWS_SECRET_ACCESS_KEY: 'not-the-secret' };
    const { c, session } = await chat(startServer, P, { env });
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    assert.ok(
      events.some((e) => e.type === 'error'),
      JSON.stringify(events),
    );
    const reqs = reqsOf(P);
    assert.equal(reqs.length, 1, 'auth errors are not retried');
    assert.equal(reqs[0].sigv4.ok, false);
    assert.equal(reqs[0].status, 403);
  },
);

itest('credentials from the shared credentials file, profile AWS_PROFILE', async ({ startServer }) => {
  const P = 'b-file';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-aws-'));
  const file = path.join(dir, 'credentials');
  fs.writeFileSync(
    file,
    `[default]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n\n# the one used\n[tether]\naws_access_key_id = ${AWS.keyId}\naws_secret_access_key = ${AWS.secret}\n`,
  );
  try {
    fp.script({ text: 'file creds work', match: { prefix: `${P}-us-east-1` } });
    const env = {
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
      AWS_SHARED_CREDENTIALS_FILE: file,
      AWS_PROFILE: 'tether',
    };
    const { c, session } = await chat(startServer, P, { env });
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    assertCompleted(events, 'file creds work');
    assertSigned(reqsOf(P), 'us-east-1');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

itest('no credentials anywhere: the server refuses to start and says where it looked', async ({ startServer }) => {
  const env = {
    AWS_ACCESS_KEY_ID: '',
    AWS_SECRET_ACCESS_KEY: '',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/tether/credentials',
  };
  await assert.rejects(
    () => bedrockServer(startServer, 'b-nocreds', { env }),
    (e) => /no AWS credentials.*\/nonexistent\/tether\/credentials/s.test(e.message),
  );
});

itest('the gateway (/v1/chat/completions) over a bedrock route, streamed and not', async ({ startServer }) => {
  const P = 'b-gw';
  fp.script({ text: 'gateway says hi', match: { prefix: `${P}-us-east-1` } });
  fp.script({ text: 'streamed via gateway', match: { prefix: `${P}-us-east-1` } });
  const srv = await bedrockServer(startServer, P);
  const r = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    body: { model: 'default', messages: [{ role: 'user', content: 'hello' }] },
  });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.choices[0].message.content, 'gateway says hi');
  assert.equal(r.json.choices[0].finish_reason, 'stop');
  assert.equal(typeof r.json.usage.prompt_tokens, 'number');
  const s = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    body: { model: 'default', stream: true, messages: [{ role: 'user', content: 'hello' }] },
  });
  assert.equal(s.status, 200, s.body);
  const text = s.body
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '')
    .join('');
  assert.equal(text, 'streamed via gateway');
  assertSigned(reqsOf(P), 'us-east-1');
});
