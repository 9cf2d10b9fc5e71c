// The protocol's machine-readable description (protocol/schema, asyncapi.yaml,
// openapi.yaml) against the code, and the harness's frame validation itself:
// - a client schema per message type of protocol/frame.c, with exactly the
//   fields of its decoding table (names and which are required);
// - an event schema per event type the code emits;
// - the validator refuses frames off the contract, and the harness's Client
//   refuses to send one and records one it receives.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import YAML from 'yaml';
import { CheckedWebSocket, REPO, connect, freePort, offSchemaFrames } from './harness.mjs';
import { frameSchemaError, schemaNames } from './schemas.mjs';

const SCHEMA_DIR = path.join(REPO, 'protocol', 'schema');
const read = (p) => fs.readFileSync(path.join(REPO, p), 'utf8');
const schema = (name) => JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, `${name}.json`), 'utf8'));

/** frame.c's decoding tables: {type: {fields: [...], required: [...]}}. */
function decoderTables() {
  const src = read('protocol/frame.c');
  const tables = {};
  for (const m of src.matchAll(/static const field_spec (\w+)\[\] = \{([\s\S]*?)END\};/g)) {
    const fields = [...m[2].matchAll(/\{"(\w+)", F_\w+, (\d)/g)].map((f) => ({ name: f[1], required: f[2] === '1' }));
    tables[m[1]] = fields;
  }
  const types = {};
  for (const m of src.matchAll(/\[TT_MSG_\w+\] = \{"([\w.]+)", (\w+)\}/g)) types[m[1]] = tables[m[2]];
  return types;
}

test('a client schema per message type of frame.c, with exactly its fields', () => {
  const types = decoderTables();
  assert.ok(Object.keys(types).length >= 14, JSON.stringify(Object.keys(types)));
  for (const [type, fields] of Object.entries(types)) {
    assert.ok(fields, `${type}: its field table was not found in frame.c`);
    const s = schema(`client.${type}`);
    assert.equal(s.additionalProperties, false, type);
    assert.deepEqual(
      Object.keys(s.properties).sort(),
      ['type', 'id', ...fields.map((f) => f.name)].sort(),
      `client.${type}.json properties`,
    );
    assert.deepEqual(
      [...s.required].sort(),
      ['type', ...fields.filter((f) => f.required).map((f) => f.name)].sort(),
      `client.${type}.json required`,
    );
  }
  const clientSchemas = schemaNames().filter((n) => n.startsWith('client.'));
  assert.deepEqual(clientSchemas.map((n) => n.slice('client.'.length)).sort(), Object.keys(types).sort());
});

test('an event schema per event type the code emits', () => {
  const emitted = new Set();
  const dirs = ['state', 'agents', 'agents/engine'];
  for (const d of dirs) {
    for (const f of fs.readdirSync(path.join(REPO, d))) {
      if (!f.endsWith('.c')) continue;
      const src = read(path.join(d, f));
      for (const m of src.matchAll(/(?:tt_session_emit|tt_event_encode)\(\s*[\w>-]*,?\s*"([\w.]+)"/g))
        emitted.add(m[1]);
      for (const m of src.matchAll(/tt_event_encode\("([\w.]+)"/g)) emitted.add(m[1]);
    }
  }
  assert.ok(emitted.size >= 12, [...emitted].join(' '));
  for (const t of emitted) assert.ok(schemaNames().includes(`event.${t}`), `no schema event.${t}.json`);
});

test('the validator refuses frames off the contract, accepts real ones', () => {
  const ev = { type: 'delta', session: 's_1', seq: 3, ts: '2026-12-05T10:00:00.123Z', message_id: 'm_1', text: 'hi' };
  assert.equal(frameSchemaError('server', ev), null);
  assert.match(frameSchemaError('server', { ...ev, extra: 1 }), /event\.delta\.json.*additional/);
  assert.match(frameSchemaError('server', { ...ev, seq: 0 }), /event\.delta\.json/);
  assert.match(frameSchemaError('server', { ...ev, ts: '2026-12-05 10:00' }), /event\.delta\.json/);
  assert.match(
    frameSchemaError('server', { type: 'error', code: 'nope', message: 'x', retryable: false }),
    /server\.error\.json/,
  );
  assert.equal(
    frameSchemaError('server', { type: 'error', re: 'r1', code: 'conflict', message: 'x', retryable: false }),
    null,
  );
  assert.match(frameSchemaError('server', { type: 'surprise' }), /no schema server\.surprise\.json/);
  assert.match(frameSchemaError('client', { type: 'say', session: 's', text: 'x', sesion: 's' }), /client\.say\.json/);
  assert.match(frameSchemaError('client', { type: 'session.list', limit: 201 }), /client\.session\.list\.json/);
});

test('the harness client refuses to send an off-schema frame and records one it receives', async () => {
  const port = await freePort();
  const wss = new WebSocketServer({ host: '127.0.0.1', port, path: '/v1/ws' });
  wss.on('connection', (ws) => ws.send(JSON.stringify({ type: 'pong', re: 'x', extra: true })));
  try {
    const c = await connect(port);
    assert.throws(() => c.send({ type: 'say', session: 's_1' }), /client\.say\.json.*text/);
    c.send({ type: 'say', session: 's_1' }, { invalid: true }); // a test's deliberate bad frame
    await c.waitFrame((f) => f.type === 'pong');
    assert.equal(c.schemaErrors.length, 1, JSON.stringify(c.schemaErrors));
    assert.match(c.schemaErrors[0], /server\.pong\.json/);
    await c.close();

    // The checked WebSocket the web client is given records both directions.
    const before = offSchemaFrames.length;
    const ws = new CheckedWebSocket(`ws://127.0.0.1:${port}/v1/ws`);
    await new Promise((r) => ws.once('message', r)); // open by then
    ws.send(JSON.stringify({ type: 'hello', token: 5 }));
    const errs = offSchemaFrames.slice(before);
    assert.equal(errs.length, 2, JSON.stringify(errs));
    assert.match(errs[0], /server\.pong\.json/);
    assert.match(errs[1], /client\.hello\.json/);
    offSchemaFrames.splice(before); // this test's own, on purpose
    ws.close();
  } finally {
    await new Promise((r) => wss.close(r));
  }
});

test('asyncapi.yaml and openapi.yaml parse, and name every schema and route', () => {
  const asyncapi = YAML.parse(read('protocol/asyncapi.yaml'));
  assert.equal(asyncapi.asyncapi, '3.0.0');
  const refs = Object.values(asyncapi.components.messages).map((m) => m.payload.schema.$ref);
  const files = fs.readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.json'));
  assert.deepEqual(refs.map((r) => path.basename(r)).sort(), files.sort());
  for (const r of refs) assert.ok(fs.existsSync(path.join(REPO, 'protocol', r)), r);
  const openapi = YAML.parse(read('protocol/openapi.yaml'));
  assert.equal(openapi.openapi, '3.1.0');
  // Every route the server answers (server/http.c, ws.c, aisdk.c, photos_thumb.c) is described.
  const src = read('server/http.c') + read('server/ws.c') + read('server/aisdk.c') + read('server/photos_thumb.c');
  const routes = new Set([...src.matchAll(/"(\/(?:v1\/[\w./-]*|healthz|readyz|metrics))"/g)].map((m) => m[1]));
  for (const r of routes) {
    const p = r.replace(/\/$/, '');
    assert.ok(
      openapi.paths[p] || Object.keys(openapi.paths).some((k) => k.startsWith(p + '/')),
      `${r} is not in openapi.yaml`,
    );
  }
  for (const f of files) {
    const s = schema(f.slice(0, -5));
    assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema', f);
    assert.equal(s.$id, f);
  }
});
