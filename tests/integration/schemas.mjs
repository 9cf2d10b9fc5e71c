// The wire contract's JSON Schemas (protocol/schema/*.json, draft 2020-12),
// loaded once; the harness's WebSocket client validates every frame it sends
// and receives against them (harness.mjs, Client), so protocol/PROTOCOL.md and
// the schemas cannot drift from what the server really does.
//
// Which schema: a client frame by its type (client.<type>.json); a server
// frame with a seq is a session event (event.<type>.json), any other by its
// type (server.<type>.json); the AI SDK socket's frames by direction and type
// (ai-sdk-ws.client.<type>.json, ai-sdk-ws.server.<type>.json). A type with no
// schema is an error too.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'protocol', 'schema');

const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
const validators = new Map();
for (const f of fs.readdirSync(DIR)) {
  if (!f.endsWith('.json')) continue;
  const schema = JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8'));
  validators.set(f.slice(0, -'.json'.length), ajv.compile(schema));
}

/**
 * The schema name a frame is checked against. dir: 'client' (sent) or
 * 'server' (received) on /v1/ws; 'ai-sdk-ws.client' or 'ai-sdk-ws.server' on
 * /v1/ai-sdk/ws.
 */
export function schemaName(dir, frame) {
  if (dir === 'client') return `client.${frame.type}`;
  if (dir === 'server') return typeof frame.seq === 'number' ? `event.${frame.type}` : `server.${frame.type}`;
  return `${dir}.${frame.type}`;
}

/** null when the frame matches its schema, else a message naming the schema and every error. */
export function frameSchemaError(dir, frame) {
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame) || typeof frame.type !== 'string')
    return `${dir} frame is not an object with a string type: ${JSON.stringify(frame).slice(0, 300)}`;
  const name = schemaName(dir, frame);
  const v = validators.get(name);
  if (!v) return `no schema ${name}.json for ${dir} frame ${JSON.stringify(frame).slice(0, 300)}`;
  if (v(frame)) return null;
  const why = v.errors.map(
    (e) => `${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`,
  );
  return `${dir} frame does not match ${name}.json: ${why.join('; ')}\n  frame: ${JSON.stringify(frame).slice(0, 600)}`;
}

export const schemaNames = () => [...validators.keys()];
