// HTTP answers checked against protocol/openapi.yaml: given the method, path,
// status, content type and body of a response, find its operation and
// response in the document and validate the body against the declared
// schema (ajv, draft 2020-12), so the document cannot drift from the server.
//
// - application/json (and any +json type): the body must parse and match.
// - text/event-stream: every complete event's data must be JSON matching the
//   media type's `x-sse-data` schema (OpenAPI 3.1 has no item schema for a
//   stream; 3.2's itemSchema says the same), or `[DONE]` where `x-sse-done`
//   is true. An event cut off by a dropped connection is not checked.
// - text/*: checked when the schema is a string schema (e.g. /healthz's const).
// - a status the operation does not declare is a mismatch, except the ones
//   the document's info.description promises for every route (responseOf).
// - an empty body is a mismatch only where content is declared (not for HEAD).
//
// The harness (harness.mjs) calls httpSchemaError() on every answer of its
// HTTP helpers and of fetch() to a server it started; itest fails the test.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import YAML from 'yaml';

const FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'protocol', 'openapi.yaml');
export const openapi = YAML.parse(fs.readFileSync(FILE, 'utf8'));

// strict off: the document's schemas sit among OpenAPI's own keywords
// (paths, responses, ...), which ajv would otherwise refuse when it compiles
// a schema by its pointer into the document.
const ajv = new Ajv2020({ allErrors: true, strict: false, allowUnionTypes: true });
ajv.addFormat('date', /^\d{4}-\d{2}-\d{2}$/);
ajv.addFormat('binary', true);
ajv.addSchema(openapi, 'openapi.yaml');

const compiled = new Map();
const escape = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** The validator of the schema at a JSON pointer (array of keys) into the document. */
function validatorAt(keys) {
  const ptr = 'openapi.yaml#/' + keys.map((k) => escape(String(k))).join('/');
  let v = compiled.get(ptr);
  if (!v) {
    v = ajv.getSchema(ptr);
    if (!v) throw new Error(`openapi-validate: no schema at ${ptr}`);
    compiled.set(ptr, v);
  }
  return v;
}

/** Follow a local $ref ('#/components/...'): [object, its keys]. */
function deref(obj, keys) {
  while (obj && typeof obj.$ref === 'string' && obj.$ref.startsWith('#/')) {
    keys = obj.$ref
      .slice(2)
      .split('/')
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    obj = keys.reduce((o, k) => o?.[k], openapi);
  }
  return [obj, keys];
}

const templates = Object.keys(openapi.paths).map((p) => ({
  p,
  re: new RegExp('^' + p.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
  literal: !p.includes('{'),
}));

/** The path item's key for a request path (query stripped), literal paths first; null if none. */
export function pathTemplate(urlPath) {
  const p = urlPath.split('?')[0];
  if (openapi.paths[p]) return p;
  const hit = templates.find((t) => !t.literal && t.re.test(p));
  return hit ? hit.p : null;
}

function errorsOf(v) {
  return v.errors
    .slice(0, 6)
    .map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`)
    .join('; ');
}

/** The events of an SSE body: [{data, id, event}] for each complete event (ended by a blank line). */
export function sseEvents(text) {
  const out = [];
  const blocks = text.replace(/\r\n?/g, '\n').split('\n\n');
  blocks.pop(); // the part after the last blank line is not a complete event
  for (const b of blocks) {
    const data = [];
    let id = null;
    let event = null;
    for (const line of b.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
      else if (field === 'event') event = value;
    }
    if (data.length) out.push({ data: data.join('\n'), id, event });
  }
  return out;
}

const component = (name) => deref(openapi.components.responses[name], ['components', 'responses', name]);

/**
 * The response object (dereferenced) and its keys for op + status, or null.
 * Besides what each operation declares, what the document's info.description
 * promises for every route: 404 NotFound (no such path, or a method the path
 * does not take), 405 Error (GET or POST where the other is the path's),
 * 429 Error (a /v1/ route over a rate limit), 403 Error (the origin policy),
 * OPTIONS a CORS preflight (204 with no body, 404 NotFound); Error is
 * OpenAIError on the gateway's paths.
 */
function responseOf(op, opKeys, status, pathKey, method) {
  const responses = op?.responses ?? {};
  const s = String(status);
  const key = s in responses ? s : `${s[0]}XX` in responses ? `${s[0]}XX` : 'default' in responses ? 'default' : null;
  if (key) return deref(responses[key], [...opKeys, 'responses', key]);
  const gateway = /^\/v1\/(chat\/completions|embeddings|models)/.test(pathKey ?? '');
  const error = component(gateway ? 'OpenAIError' : 'Error');
  if (s === '404' && (!pathKey || !op)) return component('NotFound');
  if (s === '403') return error; // the origin policy, on every route
  if (method === 'options') return s === '204' ? [{ description: 'preflight' }, []] : null;
  if ((s === '405' && pathKey && ['get', 'post'].includes(method)) || (s === '429' && pathKey?.startsWith('/v1/')))
    return error;
  return null;
}

/** The response's declared headers against the answer's (lower-case names): null, or what is wrong. */
function headerError(resp, respKeys, headers) {
  for (const [name, h] of Object.entries(resp.headers ?? {})) {
    const value = headers[name.toLowerCase()];
    if (value === undefined) {
      if (h.required) return `header ${name} is required`;
      continue;
    }
    if (!h.schema) continue;
    const v = validatorAt([...respKeys, 'headers', name, 'schema']);
    if (!v(value)) return `header ${name}: ${value}: ${errorsOf(v)}`;
  }
  return null;
}

/**
 * null when the answer matches openapi.yaml, else a message naming the
 * operation, the response and every error.
 */
export function httpSchemaError({ method, path: urlPath, status, contentType = '', body = '', headers }) {
  method = method.toLowerCase();
  const pathKey = pathTemplate(urlPath);
  const op = pathKey ? openapi.paths[pathKey][method] : null;
  const where = `${method.toUpperCase()} ${urlPath.split('?')[0]} ${status}`;
  if (pathKey && !op && ![404, 405].includes(status) && method !== 'options')
    return `openapi.yaml: ${where}: ${pathKey} has no ${method} operation (answered ${status}, not 404 or 405)`;
  const opKeys = ['paths', pathKey, method];
  const [resp, respKeys] = responseOf(op, opKeys, status, pathKey, method) ?? [null, null];
  if (!resp) return `openapi.yaml: ${where}: status ${status} is not declared for ${pathKey ?? 'an unknown path'}`;
  const badHeader = headers && headerError(resp, respKeys, headers);
  if (badHeader) return `openapi.yaml: ${where}: ${badHeader}`;
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : String(body ?? '');
  const content = resp.content;
  if (!content) {
    if (text.length && method !== 'head')
      return `openapi.yaml: ${where}: a body (${contentType}) where none is declared: ${text.slice(0, 200)}`;
    return null;
  }
  if (!text.length) {
    if (method === 'head') return null;
    return `openapi.yaml: ${where}: an empty body where ${Object.keys(content).join(', ')} is declared`;
  }
  const base = (t) => t.split(';')[0].trim().toLowerCase();
  const ct = base(contentType);
  const mediaKey = Object.keys(content).find((k) => base(k) === ct);
  if (!mediaKey)
    return `openapi.yaml: ${where}: content type ${contentType || '(none)'} is not declared (${Object.keys(content).join(', ')})`;
  const media = content[mediaKey];
  const mediaKeys = [...respKeys, 'content', mediaKey];
  if (ct === 'application/json' || ct.endsWith('+json')) {
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      return `openapi.yaml: ${where}: the body is not JSON: ${text.slice(0, 200)}`;
    }
    if (!media.schema) return null;
    const v = validatorAt([...mediaKeys, 'schema']);
    if (v(json)) return null;
    return `openapi.yaml: ${where} (${mediaKey}): ${errorsOf(v)}\n  body: ${text.slice(0, 600)}`;
  }
  if (ct === 'text/event-stream') {
    const v = media['x-sse-data'] ? validatorAt([...mediaKeys, 'x-sse-data']) : null;
    for (const ev of sseEvents(text)) {
      if (ev.data === '[DONE]') {
        if (media['x-sse-done']) continue;
        return `openapi.yaml: ${where}: data [DONE] in a stream that does not declare x-sse-done`;
      }
      let json;
      try {
        json = JSON.parse(ev.data);
      } catch {
        return `openapi.yaml: ${where}: an event's data is not JSON: ${ev.data.slice(0, 200)}`;
      }
      if (v && !v(json))
        return `openapi.yaml: ${where} (x-sse-data): ${errorsOf(v)}\n  event: ${ev.data.slice(0, 600)}`;
    }
    return null;
  }
  if (ct.startsWith('text/') && media.schema?.type === 'string') {
    const v = validatorAt([...mediaKeys, 'schema']);
    if (!v(text)) return `openapi.yaml: ${where} (${mediaKey}): ${errorsOf(v)}\n  body: ${text.slice(0, 300)}`;
  }
  return null;
}

// ------------------------------------------------------- the harness's glue

/** The ports of the servers the harness started: only their answers are checked (not the fake provider's). */
export const tetherPorts = new Set();

/** Answers off openapi.yaml seen by any check (itest fails the test they came in). */
export const offSpecAnswers = [];

/** How many answers were checked (a test can see the checks ran). */
export const answersChecked = { n: 0 };

/** Check one answer of a server on `port`; records and returns the mismatch (null when none or not a server's). */
export function checkAnswer(port, answer) {
  if (!tetherPorts.has(Number(port))) return null;
  answersChecked.n += 1;
  const bad = httpSchemaError(answer);
  if (bad) offSpecAnswers.push(bad);
  return bad;
}

/**
 * fetch() as the SDKs use it (the AI SDK, openai, @ag-ui/client), with every
 * answer of a harness server checked: the body is read as it passes to the
 * caller (never ahead of it, so a caller that cancels still drops the
 * connection), and checked when it ends or is cancelled (then only the
 * complete events of a stream).
 */
export function installFetchCheck() {
  const plain = globalThis.fetch;
  if (plain.openapiChecked) return;
  const checked = async (input, init) => {
    const res = await plain(input, init);
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (!['127.0.0.1', 'localhost'].includes(url.hostname) || !tetherPorts.has(Number(url.port))) return res;
    const method = init?.method ?? (typeof input === 'object' && input.method) ?? 'GET';
    const answer = {
      method,
      path: url.pathname,
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      headers: Object.fromEntries(res.headers),
    };
    const port = url.port;
    if (!res.body) {
      checkAnswer(port, { ...answer, body: '' });
      return res;
    }
    const dec = new TextDecoder();
    let text = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      checkAnswer(port, { ...answer, body: text + dec.decode() });
    };
    const reader = res.body.getReader();
    const body = new ReadableStream({
      async pull(ctl) {
        const { value, done: end } = await reader.read().catch((e) => {
          finish();
          throw e;
        });
        if (end) {
          finish();
          ctl.close();
          return;
        }
        text += dec.decode(value, { stream: true });
        ctl.enqueue(value);
      },
      cancel(reason) {
        finish();
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  checked.openapiChecked = true;
  globalThis.fetch = checked;
}
