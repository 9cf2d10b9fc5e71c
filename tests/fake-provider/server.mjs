// Fake model provider for Tether's tests and benchmarks.
//
// A real HTTP/1.1 server (node:http, no framework) that speaks the wire formats
// of OpenAI Chat Completions, OpenAI Embeddings and Anthropic Messages, streamed
// (SSE) and not, and replays scripted replies and faults. See README.md in this
// folder for the script format.
//
//   node tests/fake-provider/server.mjs --port 0     -> prints {"listening":PORT}
//   import { startFakeProvider } from './server.mjs' -> in-process use
//
// Listens on 127.0.0.1 only. Stops on SIGTERM / SIGINT.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  BEDROCK_RE,
  EVENTSTREAM_HEADERS,
  bedrockError,
  bedrockNonStream,
  bedrockStream,
  exceptionFrame,
  validateBedrockBody,
  verifySigV4,
} from './bedrock.mjs';

// ------------------------------------------------------------------ constants

const ROUTE_RE = /^(?:\/(.+?))?(\/v1\/(?:chat\/completions|messages|embeddings))\/?$/;
const OPENAI = 'openai';
const ANTHROPIC = 'anthropic';
const BEDROCK = 'bedrock';

const STEP_FIELDS = new Set([
  'name',
  'key',
  'match',
  'repeat',
  'tokens',
  'text',
  'tool_calls',
  'split_args',
  'tool_index_base',
  'usage',
  'finish_reason',
  'stop_reason',
  'model',
  'dims',
  'delay_ms',
  'token_delay_ms',
  'status',
  'retry_after',
  'retry_after_date',
  'retry_after_ms',
  'body',
  'headers',
  'stall',
  'reset',
  'stall_after',
  'reset_after',
  'malformed_after',
  'end_after',
  'in_stream_error',
]);
const MATCH_FIELDS = new Set(['model', 'path', 'prefix', 'key', 'stream']);
const NONNEG_INT_FIELDS = [
  'tool_index_base',
  'delay_ms',
  'token_delay_ms',
  'split_args',
  'dims',
  'retry_after_ms',
  'stall_after',
  'reset_after',
  'malformed_after',
  'end_after',
];
const FAULT_AFTER = ['stall_after', 'reset_after', 'malformed_after', 'end_after'];

// Node sets `connection` itself (keep-alive unless the client asked to close).
const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
};

const CLOUDFLARE_502 =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n';
const CLOUDFLARE_504 =
  '<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n';

// ------------------------------------------------------------------ helpers

/** Split text into word tokens that concatenate back to the text: "a b" -> ["a", " b"]. */
export function splitWords(text) {
  if (typeof text !== 'string' || text === '') return [];
  return text.match(/\s*\S+|\s+$/g) || [text];
}

/** Split a string into n fragments of near-equal length (by code point). */
function splitN(s, n) {
  if (s === '') return [];
  const cps = Array.from(s);
  n = Math.max(1, Math.min(n || 1, cps.length));
  const out = [];
  const base = Math.floor(cps.length / n);
  let extra = cps.length % n;
  let i = 0;
  for (let k = 0; k < n; k++) {
    const len = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    out.push(cps.slice(i, i + len).join(''));
    i += len;
  }
  return out;
}

function countWords(s) {
  if (!s) return 0;
  const m = s.match(/\S+/g);
  return m ? m.length : 0;
}

/** Text of one message's content, OpenAI or Anthropic shape (text parts only). */
function contentText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const p of content) {
    // Bedrock's text blocks are {text} without a type.
    const textual = p && (p.type === 'text' || p.type === 'input_text' || p.type === undefined);
    if (p && typeof p === 'object' && textual && typeof p.text === 'string') {
      out += (out ? ' ' : '') + p.text;
    }
  }
  return out;
}

/** The text of the last user message that has any text (tool_result-only messages are skipped). */
function lastUserText(messages) {
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m && m.role === 'user') {
      const t = contentText(m.content);
      if (t !== '') return t;
    }
  }
  return '';
}

function promptWordCount(body) {
  let n = 0;
  if (body && typeof body.system === 'string') n += countWords(body.system);
  else if (body && Array.isArray(body.system)) n += countWords(contentText(body.system));
  if (body && Array.isArray(body.messages)) {
    for (const m of body.messages) if (m) n += countWords(contentText(m.content));
  }
  return Math.max(1, n);
}

function httpDate(v) {
  if (typeof v === 'number') return new Date(Date.now() + v * 1000).toUTCString();
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toUTCString();
}

const FINISH_TO_STOP = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', content_filter: 'refusal' };
const STOP_TO_FINISH = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

function asJsonString(args) {
  if (args === undefined || args === null) return '{}';
  return typeof args === 'string' ? args : JSON.stringify(args);
}

function noop() {}

// ------------------------------------------------------------------ step validation

/** Validate and normalise one script step. Throws Error with a readable message. */
function normaliseStep(raw, defaultKey, id) {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('a step must be a JSON object');
  for (const k of Object.keys(raw)) {
    if (!STEP_FIELDS.has(k)) throw new Error(`unknown step field "${k}"`);
  }
  for (const k of NONNEG_INT_FIELDS) {
    if (raw[k] !== undefined && !(Number.isInteger(raw[k]) && raw[k] >= 0)) {
      throw new Error(`"${k}" must be a non-negative integer`);
    }
  }
  const match = raw.match === undefined ? {} : raw.match;
  if (!match || typeof match !== 'object' || Array.isArray(match)) throw new Error('"match" must be an object');
  for (const k of Object.keys(match)) {
    if (!MATCH_FIELDS.has(k)) throw new Error(`unknown match field "${k}"`);
  }
  if (raw.key !== undefined && typeof raw.key !== 'string') throw new Error('"key" must be a string');
  if (raw.key !== undefined && match.key !== undefined && raw.key !== match.key)
    throw new Error('"key" and "match.key" differ');
  if (raw.tokens !== undefined && !(Array.isArray(raw.tokens) && raw.tokens.every((t) => typeof t === 'string'))) {
    throw new Error('"tokens" must be an array of strings');
  }
  if (raw.tokens !== undefined && raw.text !== undefined) throw new Error('give "tokens" or "text", not both');
  if (raw.text !== undefined && typeof raw.text !== 'string') throw new Error('"text" must be a string');
  if (raw.tool_calls !== undefined) {
    if (!Array.isArray(raw.tool_calls)) throw new Error('"tool_calls" must be an array');
    for (const tc of raw.tool_calls) {
      if (!tc || typeof tc !== 'object' || typeof tc.name !== 'string')
        throw new Error('each tool call needs a string "name"');
      for (const k of Object.keys(tc)) {
        if (!['id', 'name', 'arguments', 'split_args'].includes(k)) throw new Error(`unknown tool call field "${k}"`);
      }
      if (tc.split_args !== undefined && !(Number.isInteger(tc.split_args) && tc.split_args >= 1)) {
        throw new Error('tool call "split_args" must be a positive integer');
      }
    }
  }
  if (raw.status !== undefined && !(Number.isInteger(raw.status) && raw.status >= 100 && raw.status <= 599)) {
    throw new Error('"status" must be an HTTP status code');
  }
  if (raw.retry_after !== undefined && !(typeof raw.retry_after === 'number' && raw.retry_after >= 0)) {
    throw new Error('"retry_after" must be a number of seconds');
  }
  if (
    raw.retry_after_date !== undefined &&
    typeof raw.retry_after_date !== 'string' &&
    typeof raw.retry_after_date !== 'number'
  ) {
    throw new Error('"retry_after_date" must be a date string or seconds from now');
  }
  if (raw.headers !== undefined && (typeof raw.headers !== 'object' || raw.headers === null))
    throw new Error('"headers" must be an object');
  if (raw.in_stream_error !== undefined) {
    const e = raw.in_stream_error;
    const ok =
      typeof e === 'boolean' ||
      (Number.isInteger(e) && e >= 0) ||
      (e && typeof e === 'object' && (e.after === undefined || (Number.isInteger(e.after) && e.after >= 0)));
    if (!ok) throw new Error('"in_stream_error" must be true, a token count, or {after, type, message}');
  }
  let remaining = 1;
  if (raw.repeat !== undefined) {
    if (raw.repeat === 'forever' || raw.repeat === -1) remaining = Infinity;
    else if (Number.isInteger(raw.repeat) && raw.repeat >= 1) remaining = raw.repeat;
    else throw new Error('"repeat" must be a positive integer, -1 or "forever"');
  }
  const key = raw.key ?? match.key ?? defaultKey ?? '*';
  return {
    id,
    name: raw.name ?? null,
    key: String(key),
    match: {
      model: match.model,
      path: match.path,
      prefix: match.prefix === null ? '' : match.prefix,
      stream: match.stream,
    },
    remaining,
    served: 0,
    spec: raw,
  };
}

function stepMatches(step, r) {
  if (step.key !== r.key) return false;
  const m = step.match;
  if (m.model !== undefined && m.model !== r.model) return false;
  if (m.path !== undefined && m.path !== r.route && m.path !== r.path) return false;
  if (m.prefix !== undefined && m.prefix !== r.prefix) return false;
  if (m.stream !== undefined && Boolean(m.stream) !== r.stream) return false;
  return true;
}

// ------------------------------------------------------------------ error bodies

function openaiError(message, type, param = null, code = null) {
  return JSON.stringify({ error: { message, type, param, code } });
}
function anthropicError(type, message) {
  return JSON.stringify({ type: 'error', error: { type, message } });
}

/** Default {contentType, body} of an error status, in the provider's format. */
function errorBody(provider, status, model) {
  if (status === 502) return { html: true, body: CLOUDFLARE_502 };
  if (status === 504) return { html: true, body: CLOUDFLARE_504 };
  if (provider === ANTHROPIC) {
    switch (status) {
      case 400:
        return { body: anthropicError('invalid_request_error', 'prompt is too long: 210000 tokens > 200000 maximum') };
      case 401:
        return { body: anthropicError('authentication_error', 'invalid x-api-key') };
      case 402:
        return { body: anthropicError('billing_error', 'Your credit balance is too low to access the Anthropic API.') };
      case 403:
        return {
          body: anthropicError(
            'permission_error',
            'Your API key does not have permission to use the specified resource.',
          ),
        };
      case 404:
        return { body: anthropicError('not_found_error', `model: ${model}`) };
      case 413:
        return { body: anthropicError('request_too_large', 'Request exceeds the maximum allowed number of bytes.') };
      case 429:
        return {
          body: anthropicError(
            'rate_limit_error',
            'This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.',
          ),
        };
      case 500:
        return { body: anthropicError('api_error', 'Internal server error') };
      case 529:
        return { body: anthropicError('overloaded_error', 'Overloaded') };
      default:
        return { body: anthropicError(status >= 500 ? 'api_error' : 'invalid_request_error', `HTTP ${status}`) };
    }
  }
  switch (status) {
    case 400:
      return {
        body: openaiError(
          "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.",
          'invalid_request_error',
          'messages',
          'context_length_exceeded',
        ),
      };
    case 401:
      return {
        body: openaiError(
          'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.',
          'invalid_request_error',
          null,
          'invalid_api_key',
        ),
      };
    case 403:
      return {
        body: openaiError(
          'You are not allowed to access this resource.',
          'invalid_request_error',
          null,
          'unsupported_country_region_territory',
        ),
      };
    case 404:
      return {
        body: openaiError(
          `The model \`${model}\` does not exist or you do not have access to it.`,
          'invalid_request_error',
          null,
          'model_not_found',
        ),
      };
    case 429:
      return {
        body: openaiError(
          `Rate limit reached for ${model} in organization org-fake on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms. Visit https://platform.openai.com/account/rate-limits to learn more.`,
          'requests',
          null,
          'rate_limit_exceeded',
        ),
      };
    case 500:
      return {
        body: openaiError('The server had an error while processing your request. Sorry about that!', 'server_error'),
      };
    case 503:
      return { body: openaiError('The server is overloaded or not ready yet.', 'server_error') };
    default:
      return { body: openaiError(`HTTP ${status}`, status >= 500 ? 'server_error' : 'invalid_request_error') };
  }
}

function inStreamErrorPayload(provider, spec) {
  const e = spec && typeof spec === 'object' ? spec : {};
  if (provider === ANTHROPIC) {
    return `event: error\ndata: ${anthropicError(e.type || 'overloaded_error', e.message || 'Overloaded')}\n\n`;
  }
  return `data: ${openaiError(e.message || 'The server had an error while processing your request. Sorry about that!', e.type || 'server_error', null, e.code ?? null)}\n\n`;
}

// ------------------------------------------------------------------ response planning

/**
 * Everything the handlers need from a step (or the default echo), resolved
 * against the request.
 */
function plan(step, provider, body, seq) {
  const s = step ? step.spec : {};
  let tokens;
  if (s.tokens) tokens = s.tokens;
  else if (s.text !== undefined) tokens = splitWords(s.text);
  else if (step && s.tool_calls) tokens = [];
  else tokens = splitWords('echo: ' + lastUserText(body && body.messages));
  const calls = (s.tool_calls || []).map((tc, i) => {
    const args = asJsonString(tc.arguments);
    const n = tc.split_args ?? s.split_args ?? 1;
    return {
      id: tc.id || (provider !== OPENAI ? `toolu_fake${seq}_${i}` : `call_fake${seq}_${i}`),
      name: tc.name,
      args,
      frags: splitN(args, n),
    };
  });
  let completion = tokens.length;
  for (const c of calls) completion += c.frags.length;
  const u = s.usage || {};
  const prompt = u.prompt_tokens ?? u.input_tokens ?? promptWordCount(body);
  const comp = u.completion_tokens ?? u.output_tokens ?? completion;
  let finish = s.finish_reason ?? s.stop_reason;
  let stop;
  if (provider !== OPENAI) {
    stop = finish === undefined ? (calls.length ? 'tool_use' : 'end_turn') : FINISH_TO_STOP[finish] || finish;
  } else {
    finish = finish === undefined ? (calls.length ? 'tool_calls' : 'stop') : STOP_TO_FINISH[finish] || finish;
  }
  const model = s.model ?? (body && typeof body.model === 'string' ? body.model : 'fake-model');
  return { tokens, calls, prompt, comp, finish, stop, model, indexBase: s.tool_index_base ?? 0 };
}

// OpenAI ------------------------------------------------------------------

function openaiNonStream(p, id, created) {
  const message = {
    role: 'assistant',
    content: p.tokens.length || !p.calls.length ? p.tokens.join('') : null,
    refusal: null,
  };
  if (p.calls.length) {
    message.tool_calls = p.calls.map((c) => ({
      id: c.id,
      type: 'function',
      function: { name: c.name, arguments: c.args },
    }));
  }
  return JSON.stringify({
    id,
    object: 'chat.completion',
    created,
    model: p.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: p.finish }],
    usage: { prompt_tokens: p.prompt, completion_tokens: p.comp, total_tokens: p.prompt + p.comp },
    system_fingerprint: 'fp_fake',
  });
}

/**
 * A stream is { prologue, groups[], tail }: strings. Each group ends with one
 * "token" (a text delta or a tool-argument fragment) and carries the structural
 * events that precede it; faults at N fire after N groups.
 */
function openaiStream(p, id, created, includeUsage) {
  const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(p.model)},"system_fingerprint":"fp_fake","choices":[{"index":0,"delta":`;
  const mid = ',"logprobs":null,"finish_reason":';
  const end = includeUsage ? '}],"usage":null}\n\n' : '}]}\n\n';
  const chunk = (delta) => head + delta + mid + 'null' + end;
  const prologue = chunk(
    `{"role":"assistant","content":${p.tokens.length || !p.calls.length ? '""' : 'null'},"refusal":null}`,
  );
  const groups = [];
  for (const t of p.tokens) groups.push(chunk(`{"content":${JSON.stringify(t)}}`));
  p.calls.forEach((c, i) => {
    const header = chunk(
      `{"tool_calls":[{"index":${i + p.indexBase},"id":${JSON.stringify(c.id)},"type":"function","function":{"name":${JSON.stringify(c.name)},"arguments":""}}]}`,
    );
    if (!c.frags.length) {
      groups.push(header);
      return;
    }
    c.frags.forEach((f, k) => {
      const s = chunk(`{"tool_calls":[{"index":${i + p.indexBase},"function":{"arguments":${JSON.stringify(f)}}}]}`);
      groups.push(k === 0 ? header + s : s);
    });
  });
  let tail = head + '{}' + mid + JSON.stringify(p.finish) + end;
  if (includeUsage) {
    tail += `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(p.model)},"system_fingerprint":"fp_fake","choices":[],"usage":{"prompt_tokens":${p.prompt},"completion_tokens":${p.comp},"total_tokens":${p.prompt + p.comp}}}\n\n`;
  }
  tail += 'data: [DONE]\n\n';
  const malformed = head + '{"content":"unterminated' + '\n\n';
  return { prologue, groups, tail, malformed };
}

// Anthropic ---------------------------------------------------------------

function toolInput(args) {
  try {
    const v = JSON.parse(args);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

function anthropicNonStream(p, id) {
  const content = [];
  if (p.tokens.length) content.push({ type: 'text', text: p.tokens.join('') });
  for (const c of p.calls) content.push({ type: 'tool_use', id: c.id, name: c.name, input: toolInput(c.args) });
  return JSON.stringify({
    id,
    type: 'message',
    role: 'assistant',
    model: p.model,
    content,
    stop_reason: p.stop,
    stop_sequence: null,
    usage: {
      input_tokens: p.prompt,
      output_tokens: p.comp,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    },
  });
}

const ev = (name, data) => `event: ${name}\ndata: ${data}\n\n`;

function anthropicStream(p, id) {
  let prologue = ev(
    'message_start',
    JSON.stringify({
      type: 'message_start',
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model: p.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: p.prompt, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
      },
    }),
  );
  const groups = [];
  let pending = '';
  let index = 0;
  const blockStop = (i) => ev('content_block_stop', `{"type":"content_block_stop","index":${i}}`);
  const openBlock = (s) => {
    if (index === 0) prologue += s + ev('ping', '{"type": "ping"}');
    else pending += s;
  };
  const unit = (s) => {
    groups.push(pending + s);
    pending = '';
  };
  if (p.tokens.length) {
    openBlock(
      ev('content_block_start', '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'),
    );
    for (const t of p.tokens) {
      unit(
        ev(
          'content_block_delta',
          `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":${JSON.stringify(t)}}}`,
        ),
      );
    }
    pending += blockStop(0);
    index++;
  }
  for (const c of p.calls) {
    const i = index;
    openBlock(
      ev(
        'content_block_start',
        `{"type":"content_block_start","index":${i},"content_block":{"type":"tool_use","id":${JSON.stringify(c.id)},"name":${JSON.stringify(c.name)},"input":{}}}`,
      ),
    );
    for (const f of c.frags) {
      unit(
        ev(
          'content_block_delta',
          `{"type":"content_block_delta","index":${i},"delta":{"type":"input_json_delta","partial_json":${JSON.stringify(f)}}}`,
        ),
      );
    }
    if (c.frags.length) pending += blockStop(i);
    else unit(blockStop(i));
    index++;
  }
  if (index === 0) prologue += ev('ping', '{"type": "ping"}');
  const tail =
    pending +
    ev(
      'message_delta',
      JSON.stringify({
        type: 'message_delta',
        delta: { stop_reason: p.stop, stop_sequence: null },
        usage: { output_tokens: p.comp },
      }),
    ) +
    ev('message_stop', '{"type":"message_stop"}');
  const malformed = ev(
    'content_block_delta',
    '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"unterminated',
  );
  return { prologue, groups, tail, malformed };
}

// ------------------------------------------------------------------ embeddings

// Words too common to say what a text is about: left out of the embeddings.
const STOP_WORDS = new Set(
  'a an and are as at be by for from has have how in is it its of on or that the this to was were what when where which who why will with'.split(
    ' ',
  ),
);

function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function embedOne(text, dims) {
  // Deterministic hashed bag of words, so that texts sharing words are
  // similar (cosine) and the tests can assert a ranking: every word
  // (lowercased run of letters and digits, common words left out) adds
  // 1 + ln(count) at the dimension its FNV-1a hash picks, with the sign of
  // another bit of the hash; the vector is normalised to unit length, as
  // OpenAI's are. A text without such words gets a fixed unit vector.
  const counts = new Map();
  for (const w of String(text)
    .toLowerCase()
    .match(/[\p{L}\p{N}]+/gu) || []) {
    if (!STOP_WORDS.has(w)) counts.set(w, (counts.get(w) || 0) + 1);
  }
  const v = new Array(dims).fill(0);
  for (const [w, n] of counts) {
    const h = fnv1a(w);
    v[h % dims] += (h & 0x80000000 ? -1 : 1) * (1 + Math.log(n));
  }
  let norm = Math.hypot(...v);
  if (norm === 0) {
    v[0] = 1;
    norm = 1;
  }
  for (let i = 0; i < dims; i++) v[i] = Math.round((v[i] / norm) * 1e7) / 1e7;
  return v;
}

function embeddingInputs(input) {
  if (typeof input === 'string') return [input];
  if (Array.isArray(input)) {
    if (input.length && input.every((x) => typeof x === 'number')) return [JSON.stringify(input)];
    return input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
  }
  return [JSON.stringify(input)];
}

/** The embedding vector the fake provider returns for `text` (for assertions). */
export function fakeEmbedding(text, dims = 8) {
  return embedOne(text, dims);
}

// ------------------------------------------------------------------ the server

export async function startFakeProvider(opts = {}) {
  const fp = new FakeProvider(opts);
  await fp.listen(opts.port ?? 0);
  return fp.api();
}

class FakeProvider {
  constructor(opts) {
    this.dims = opts.dims ?? 8;
    this.maxRequests = opts.maxRequests ?? 10000;
    this.validate = opts.validate !== false;
    // Bedrock: {keyId, secret} to check signatures in full; without, only their shape.
    this.aws = opts.aws || null;
    this.queue = [];
    this.log = [];
    this.seq = 0;
    this.stepSeq = 0;
    this.dropped = 0;
    this.inflight = 0;
    this.started = Date.now();
    this.sockets = new Set();
    this.server = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 65000;
    this.server.headersTimeout = 66000;
    this.server.requestTimeout = 0;
    this.server.on('connection', (s) => {
      s.setNoDelay(true);
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  listen(port) {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = this.server.address().port;
        resolve();
      });
    });
  }

  api() {
    const self = this;
    return {
      port: this.port,
      url: `http://127.0.0.1:${this.port}`,
      server: this.server,
      /** Queue one step or an array of steps; returns their ids. */
      script(steps, options = {}) {
        return self.addSteps(steps, options.key);
      },
      /** Recorded requests (live objects), optionally filtered by {key, prefix, path, route, model}. */
      requests(filter) {
        return self.filtered(filter);
      },
      /** Remaining queued steps. */
      queued(filter) {
        return self.queueView(filter && filter.key);
      },
      /** Clear queued steps and recorded requests (only those of `key` when given). */
      reset(key) {
        self.reset(key);
      },
      /** Poll until fn() returns truthy (checked every 5 ms); rejects after timeoutMs. */
      waitFor(fn, timeoutMs = 2000) {
        return waitFor(fn, timeoutMs);
      },
      close() {
        return self.close();
      },
    };
  }

  addSteps(input, defaultKey) {
    let list = input;
    if (input && !Array.isArray(input) && typeof input === 'object' && Array.isArray(input.steps)) {
      list = input.steps;
      if (input.key !== undefined) defaultKey = input.key;
    }
    if (!Array.isArray(list)) list = [list];
    const steps = list.map((raw, i) => {
      try {
        return normaliseStep(raw, defaultKey, this.stepSeq + i + 1);
      } catch (e) {
        throw new Error(`step ${i}: ${e.message}`);
      }
    });
    this.stepSeq += steps.length;
    this.queue.push(...steps);
    return steps.map((s) => s.id);
  }

  takeStep(r) {
    const q = this.queue;
    for (let i = 0; i < q.length; i++) {
      const s = q[i];
      if (stepMatches(s, r)) {
        s.served++;
        if (--s.remaining <= 0) q.splice(i, 1);
        return s;
      }
    }
    return null;
  }

  queueView(key) {
    return this.queue
      .filter((s) => key === undefined || s.key === key)
      .map((s) => ({
        id: s.id,
        name: s.name,
        key: s.key,
        remaining: s.remaining === Infinity ? 'forever' : s.remaining,
        served: s.served,
        step: s.spec,
      }));
  }

  filtered(f) {
    if (!f) return this.log.slice();
    return this.log.filter(
      (r) =>
        (f.key === undefined || r.key === f.key) &&
        (f.prefix === undefined || r.prefix === f.prefix) &&
        (f.path === undefined || r.path === f.path || r.route === f.path) &&
        (f.route === undefined || r.route === f.route) &&
        (f.model === undefined || r.model === f.model) &&
        (f.since === undefined || r.seq > Number(f.since)),
    );
  }

  reset(key) {
    if (key === undefined || key === null) {
      this.queue = [];
      this.log = [];
      this.dropped = 0;
    } else {
      this.queue = this.queue.filter((s) => s.key !== key);
      this.log = this.log.filter((r) => r.key !== key);
    }
  }

  record(rec) {
    this.log.push(rec);
    // Trim in batches: an array shift per request would cost O(log size).
    if (this.log.length > this.maxRequests + Math.max(64, this.maxRequests >> 3)) {
      const n = this.log.length - this.maxRequests;
      this.log.splice(0, n);
      this.dropped += n;
    }
  }

  async close() {
    await new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const s of this.sockets) s.destroy();
    });
  }

  // -------------------------------------------------------------- dispatch

  handle(req, res) {
    const url = req.url;
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      chunks.push(c);
      size += c.length;
    });
    req.on('end', () => {
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      if (pathname.charCodeAt(1) === 95 /* _ */ && pathname.startsWith('/_')) {
        this.control(req, res, pathname, q < 0 ? '' : url.slice(q + 1), buf);
      } else {
        this.provider(req, res, pathname, buf).catch((e) => {
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({ error: { message: `fake provider bug: ${e.stack}`, type: 'fake_provider_error' } }),
            );
          } else res.destroy();
        });
      }
    });
    res.on('error', noop);
  }

  control(req, res, pathname, query, buf) {
    const send = (status, obj) => {
      const b = JSON.stringify(obj);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
      res.end(b);
    };
    let body;
    if (buf.length) {
      try {
        body = JSON.parse(buf.toString('utf8'));
      } catch (e) {
        return send(400, { error: `invalid JSON: ${e.message}` });
      }
    }
    const params = Object.fromEntries(new URLSearchParams(query));
    const m = req.method;
    if (pathname === '/_health' && m === 'GET') {
      const cpu = process.cpuUsage();
      return send(200, {
        ok: true,
        pid: process.pid,
        port: this.port,
        uptime_ms: Date.now() - this.started,
        queued: this.queue.length,
        requests_total: this.seq,
        requests_logged: this.log.length,
        requests_dropped: this.dropped,
        inflight: this.inflight,
        cpu_user_us: cpu.user,
        cpu_system_us: cpu.system,
        rss: process.memoryUsage.rss(),
      });
    }
    if (pathname === '/_script' && m === 'POST') {
      if (body === undefined)
        return send(400, { error: 'body must be a step, an array of steps, or {"steps":[...], "key":...}' });
      try {
        const ids = this.addSteps(body, params.key);
        return send(200, { ids, queued: this.queue.length });
      } catch (e) {
        return send(400, { error: e.message });
      }
    }
    if (pathname === '/_script' && m === 'GET') return send(200, this.queueView(params.key));
    if (pathname === '/_reset' && m === 'POST') {
      this.reset(body && body.key !== undefined ? body.key : params.key);
      return send(200, { ok: true });
    }
    if (pathname === '/_requests' && m === 'GET') {
      return send(200, this.filtered(Object.keys(params).length ? params : undefined));
    }
    return send(404, { error: `no control endpoint ${m} ${pathname}` });
  }

  async provider(req, res, pathname, buf) {
    const seq = ++this.seq;
    const now = Date.now();
    const mb = BEDROCK_RE.exec(pathname);
    const mm = mb || ROUTE_RE.exec(pathname);
    const route = mb ? `/model/${mb[3]}` : mm ? mm[2] : null;
    const provider = mb ? BEDROCK : route === '/v1/messages' ? ANTHROPIC : OPENAI;
    const rec = {
      seq,
      time: now,
      method: req.method,
      path: pathname,
      url: req.url,
      prefix: mm ? mm[1] || '' : '',
      route,
      key: req.headers['x-fake-key'] || '*',
      headers: req.headers,
      body: null,
      model: null,
      stream: false,
      step: null,
      step_name: null,
      served_by: null,
      status: null,
      chunks_sent: 0,
      fault: null,
      client_closed: false,
      closed_at: null,
      finished_at: null,
    };
    this.record(rec);
    this.inflight++;
    // Bedrock's event-stream frames are binary strings: written as latin1.
    const ctx = { res, rec, closed: false, wake: null, serverClosed: false, enc: mb ? 'latin1' : 'utf8' };
    res.on('close', () => {
      this.inflight--;
      ctx.closed = true;
      if (res.writableFinished) {
        rec.finished_at = Date.now();
      } else if (!ctx.serverClosed) {
        rec.client_closed = true;
        rec.closed_at = Date.now();
      }
      if (ctx.wake) {
        const w = ctx.wake;
        ctx.wake = null;
        w();
      }
    });

    const fail = (status, body, servedBy, extra) => {
      rec.status = status;
      rec.served_by = servedBy;
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...requestIdHeader(provider, seq),
        ...extra,
      });
      res.end(body);
    };

    if (!mm || req.method !== 'POST') {
      const body =
        provider === ANTHROPIC
          ? anthropicError('not_found_error', 'Not Found')
          : openaiError(
              `Unknown request URL: ${req.method} ${pathname}. Please check the URL for typos, or see the docs at https://platform.openai.com/docs/api-reference/.`,
              'invalid_request_error',
              null,
              'unknown_url',
            );
      return fail(404, body, 'not_found');
    }

    if (mb) {
      const r = await this.bedrockChecks(req, rec, mb, buf, pathname, fail);
      if (r === null) return;
      return this.respond(ctx, provider, route, r, now);
    }

    // Body.
    let body;
    try {
      body = JSON.parse(buf.toString('utf8'));
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
    } catch {
      rec.body_raw = buf.toString('utf8');
      return fail(
        400,
        provider === ANTHROPIC
          ? anthropicError(
              'invalid_request_error',
              'There was an issue with the format of your request: the body is not valid JSON',
            )
          : openaiError(
              "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
              'invalid_request_error',
            ),
        'invalid_json',
      );
    }
    rec.body = body;
    rec.model = typeof body.model === 'string' ? body.model : null;
    rec.stream = body.stream === true && route !== '/v1/embeddings';

    // Auth.
    const h = req.headers;
    if (provider === ANTHROPIC) {
      if (!h['x-api-key'])
        return fail(401, anthropicError('authentication_error', 'x-api-key header is required'), 'auth');
      if (!h['anthropic-version'])
        return fail(401, anthropicError('authentication_error', 'anthropic-version header is required'), 'auth');
    } else {
      const a = h.authorization;
      if (!a || !/^Bearer\s+\S/.test(a)) {
        return fail(
          401,
          openaiError(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            'invalid_request_error',
          ),
          'auth',
        );
      }
    }

    // Required fields, as the real APIs check them.
    if (this.validate) {
      const bad = validateBody(provider, route, body);
      if (bad) return fail(400, bad, 'invalid_request');
    }

    return this.respond(ctx, provider, route, body, now);
  }

  /**
   * Bedrock: the model and stream from the path, the body, the signature
   * (403 when it does not check out), the required fields. Returns the body,
   * or null when a failure was sent.
   */
  async bedrockChecks(req, rec, mb, buf, pathname, fail) {
    const q = req.url.indexOf('?');
    rec.prefix = mb[1] || '';
    rec.model = decodeURIComponent(mb[2]);
    rec.stream = mb[3] === 'converse-stream';
    const err = (status, e) => {
      fail(status, e.body, status === 403 ? 'auth' : 'invalid_request', e.headers);
      return null;
    };
    rec.sigv4 = verifySigV4(req, pathname, q < 0 ? '' : req.url.slice(q + 1), buf, this.aws);
    if (!rec.sigv4.ok) return err(403, bedrockError(403, 'InvalidSignatureException', rec.sigv4.error));
    let body;
    try {
      body = JSON.parse(buf.toString('utf8'));
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
    } catch {
      rec.body_raw = buf.toString('utf8');
      return err(400, bedrockError(400, 'ValidationException', 'The request body is not valid JSON'));
    }
    rec.body = body;
    const bad = this.validate ? validateBedrockBody(body) : null;
    return bad ? err(400, bad) : body;
  }

  async respond(ctx, provider, route, body, now) {
    const { rec } = ctx;
    const seq = rec.seq;
    const fail = (status, b, servedBy, extra) => {
      rec.status = status;
      rec.served_by = servedBy;
      ctx.res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(b),
        ...requestIdHeader(provider, seq),
        ...extra,
      });
      ctx.res.end(b);
    };
    const step = this.takeStep(rec);
    if (step) {
      rec.step = step.id;
      rec.step_name = step.name;
      rec.served_by = 'script';
    } else rec.served_by = 'default';
    const s = step ? step.spec : {};

    if (s.delay_ms) {
      if (!(await sleep(ctx, s.delay_ms))) return;
    }
    if (ctx.closed) return;
    if (s.reset) {
      rec.fault = 'reset';
      return resetSocket(ctx);
    }
    if (s.stall) {
      rec.fault = 'stall';
      return waitClose(ctx);
    }

    if (s.status !== undefined && s.status >= 300) {
      const extra = { ...(s.headers || {}) };
      if (s.retry_after !== undefined) extra['retry-after'] = String(s.retry_after);
      if (s.retry_after_date !== undefined) extra['retry-after'] = httpDate(s.retry_after_date);
      if (s.retry_after_ms !== undefined) extra['retry-after-ms'] = String(s.retry_after_ms);
      let b;
      if (s.body !== undefined) {
        b = typeof s.body === 'string' ? s.body : JSON.stringify(s.body);
        if (typeof s.body === 'string' && !/^\s*[[{]/.test(s.body) && !extra['content-type'])
          extra['content-type'] = 'text/plain';
      } else if (provider === BEDROCK && s.status !== 502 && s.status !== 504) {
        const e = bedrockError(s.status);
        b = e.body;
        Object.assign(extra, e.headers, s.headers || {});
      } else {
        const d = errorBody(provider, s.status, rec.model || 'fake-model');
        b = d.body;
        if (d.html && !extra['content-type']) extra['content-type'] = 'text/html';
      }
      rec.fault = 'status';
      return fail(s.status, b, rec.served_by, extra);
    }

    rec.status = 200;
    const extraHeaders = s.headers || null;
    if (route === '/v1/embeddings') return this.embeddings(ctx, s, body, extraHeaders);

    const p = plan(step, provider, body, seq);
    if (provider === BEDROCK) {
      if (!rec.stream) return nonStreamWithFaults(ctx, provider, s, bedrockNonStream(p), extraHeaders);
      return streamWithFaults(ctx, provider, s, bedrockStream(p), extraHeaders);
    }
    const id = provider === ANTHROPIC ? `msg_fake${seq}` : `chatcmpl-fake${seq}`;
    const created = Math.floor(now / 1000);

    if (!rec.stream) {
      const payload = provider === ANTHROPIC ? anthropicNonStream(p, id) : openaiNonStream(p, id, created);
      return nonStreamWithFaults(ctx, provider, s, payload, extraHeaders);
    }

    const st =
      provider === ANTHROPIC
        ? anthropicStream(p, id)
        : openaiStream(p, id, created, !!(body.stream_options && body.stream_options.include_usage));
    return streamWithFaults(ctx, provider, s, st, extraHeaders);
  }

  embeddings(ctx, s, body, extraHeaders) {
    const { rec } = ctx;
    const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions : (s.dims ?? this.dims);
    const inputs = embeddingInputs(body.input);
    const base64 = body.encoding_format === 'base64';
    let tokens = 0;
    const data = inputs.map((text, index) => {
      tokens += Math.max(1, countWords(text));
      const v = embedOne(text, dims);
      const embedding = base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
      return { object: 'embedding', index, embedding };
    });
    const payload = JSON.stringify({
      object: 'list',
      data,
      model: s.model ?? rec.model ?? 'fake-embedding',
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
    return nonStreamWithFaults(ctx, OPENAI, s, payload, extraHeaders);
  }
}

function validateBody(provider, route, b) {
  if (provider === ANTHROPIC) {
    for (const f of ['model', 'max_tokens', 'messages']) {
      if (b[f] === undefined) return anthropicError('invalid_request_error', `${f}: Field required`);
    }
    if (!Array.isArray(b.messages))
      return anthropicError('invalid_request_error', 'messages: Input should be a valid list');
    if (!Number.isInteger(b.max_tokens))
      return anthropicError('invalid_request_error', 'max_tokens: Input should be a valid integer');
    return null;
  }
  if (typeof b.model !== 'string' || !b.model)
    return openaiError('you must provide a model parameter', 'invalid_request_error');
  if (route === '/v1/embeddings') {
    if (b.input === undefined)
      return openaiError(
        "Missing required parameter: 'input'.",
        'invalid_request_error',
        'input',
        'missing_required_parameter',
      );
    return null;
  }
  if (!Array.isArray(b.messages))
    return openaiError(
      "Missing required parameter: 'messages'.",
      'invalid_request_error',
      'messages',
      'missing_required_parameter',
    );
  if (b.messages.length === 0)
    return openaiError(
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      'invalid_request_error',
      'messages',
      'empty_array',
    );
  return null;
}

// ------------------------------------------------------------------ writing with faults

function sleep(ctx, ms) {
  return new Promise((resolve) => {
    if (ctx.closed) return resolve(false);
    const t = setTimeout(() => {
      ctx.wake = null;
      resolve(!ctx.closed);
    }, ms);
    ctx.wake = () => {
      clearTimeout(t);
      resolve(false);
    };
  });
}

function waitClose(ctx) {
  return new Promise((resolve) => {
    if (ctx.closed) return resolve();
    ctx.wake = resolve;
  });
}

/**
 * Reset the connection (TCP RST), after `last` (if any) has been handed to the
 * kernel so that the client does receive everything written before the fault.
 */
function resetSocket(ctx, last) {
  const sock = ctx.res.socket;
  ctx.serverClosed = true;
  if (!sock || sock.destroyed) return;
  const go = () => {
    if (sock.destroyed) return;
    if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
    else sock.destroy();
  };
  if (last) ctx.res.write(last, ctx.enc, () => setTimeout(go, 2));
  else setImmediate(go);
}

function write(ctx, s) {
  if (ctx.closed || s === '') return;
  ctx.res.write(s, ctx.enc);
}

function requestIdHeader(provider, seq) {
  if (provider === BEDROCK) return { 'x-amzn-requestid': `req-fake-${seq}` };
  return provider === ANTHROPIC ? { 'request-id': `req_fake${seq}` } : { 'x-request-id': `req_fake${seq}` };
}

function nonStreamWithFaults(ctx, provider, s, payload, extraHeaders) {
  const { res, rec } = ctx;
  const headers = {
    'content-type': 'application/json',
    ...requestIdHeader(provider, rec.seq),
    ...(extraHeaders || {}),
  };
  if (s.in_stream_error !== undefined && s.in_stream_error !== false) {
    rec.fault = 'in_stream_error';
    const status = provider === ANTHROPIC ? 529 : 500;
    rec.status = status;
    let b;
    if (provider === BEDROCK) {
      const e = bedrockError(status);
      b = e.body;
      Object.assign(headers, e.headers);
    } else b = errorBody(provider, status, rec.model).body;
    headers['content-length'] = Buffer.byteLength(b);
    res.writeHead(status, headers);
    res.end(b);
    return;
  }
  if (s.stall_after !== undefined) {
    rec.fault = 'stall';
    res.writeHead(200, headers);
    res.flushHeaders();
    return waitClose(ctx);
  }
  if (s.reset_after !== undefined) {
    rec.fault = 'reset';
    res.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(payload) });
    res.flushHeaders();
    return resetSocket(ctx, payload.slice(0, payload.length >> 1));
  }
  if (s.malformed_after !== undefined || s.end_after !== undefined) {
    rec.fault = s.malformed_after !== undefined ? 'malformed' : 'end';
    const b = payload.slice(0, payload.length >> 1);
    headers['content-length'] = Buffer.byteLength(b);
    res.writeHead(200, headers);
    res.end(b);
    return;
  }
  headers['content-length'] = Buffer.byteLength(payload);
  res.writeHead(200, headers);
  res.end(payload);
}

async function streamWithFaults(ctx, provider, s, st, extraHeaders) {
  const { res, rec } = ctx;
  // Where the stream deviates, after how many tokens, and how.
  let faultAt = Infinity;
  let fault = null;
  for (const f of FAULT_AFTER) {
    if (s[f] !== undefined && s[f] < faultAt) {
      faultAt = s[f];
      fault = f;
    }
  }
  const ise = s.in_stream_error;
  if (ise !== undefined && ise !== false) {
    const at = ise === true ? st.groups.length : typeof ise === 'number' ? ise : (ise.after ?? st.groups.length);
    if (at < faultAt) {
      faultAt = at;
      fault = 'in_stream_error';
    }
  }
  res.writeHead(200, {
    ...(provider === BEDROCK ? EVENTSTREAM_HEADERS : SSE_HEADERS),
    ...requestIdHeader(provider, rec.seq),
    ...(extraHeaders || {}),
  });
  const delay = s.token_delay_ms || 0;
  const n = Math.min(st.groups.length, faultAt);
  if (delay === 0) {
    // One write for everything up to the fault (or the whole stream).
    let out = st.prologue;
    for (let i = 0; i < n; i++) out += st.groups[i];
    rec.chunks_sent = n;
    if (fault === null) {
      res.end(out + st.tail, ctx.enc);
      return;
    }
    if (fault === 'reset_after') {
      rec.fault = 'reset';
      return resetSocket(ctx, out);
    }
    write(ctx, out);
  } else {
    const resetHere = fault === 'reset_after';
    if (n === 0 && resetHere) {
      rec.fault = 'reset';
      return resetSocket(ctx, st.prologue);
    }
    write(ctx, st.prologue);
    // Deadline-based pacing: chunk i goes out at t0 + i * delay, so timer
    // overshoot does not accumulate over a long stream.
    const t0 = performance.now();
    const pace = async (i) => {
      const wait = t0 + i * delay - performance.now();
      return wait >= 1 ? sleep(ctx, Math.round(wait)) : !ctx.closed;
    };
    for (let i = 0; i < n; i++) {
      if (i > 0 && !(await pace(i))) return;
      rec.chunks_sent = i + 1;
      if (i === n - 1 && resetHere) {
        rec.fault = 'reset';
        return resetSocket(ctx, st.groups[i]);
      }
      write(ctx, st.groups[i]);
    }
    if (fault === null) {
      if (n > 0 && !(await pace(n))) return;
      if (!ctx.closed) res.end(st.tail, ctx.enc);
      return;
    }
  }
  if (ctx.closed) return;
  switch (fault) {
    case 'stall_after':
      rec.fault = 'stall';
      return waitClose(ctx);
    case 'malformed_after':
      rec.fault = 'malformed';
      res.end(st.malformed, ctx.enc);
      return;
    case 'end_after':
      rec.fault = 'end';
      res.end();
      return;
    case 'in_stream_error':
      rec.fault = 'in_stream_error';
      res.end(provider === BEDROCK ? exceptionFrame(ise) : inStreamErrorPayload(provider, ise), ctx.enc);
      return;
    default:
      res.end();
  }
}

function waitFor(fn, timeoutMs) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      let v;
      try {
        v = fn();
      } catch (e) {
        return reject(e);
      }
      if (v) return resolve(v);
      if (Date.now() - start > timeoutMs) return reject(new Error(`waitFor: timed out after ${timeoutMs} ms`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

// ------------------------------------------------------------------ CLI

function parseArgs(argv) {
  const o = { port: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const name = a.split('=')[0];
    if (name === '--port') o.port = Number(val());
    else if (name === '--dims') o.dims = Number(val());
    else if (name === '--max-requests') o.maxRequests = Number(val());
    else if (name === '--no-validate') o.validate = false;
    else if (name === '--help' || name === '-h') {
      process.stdout.write('usage: node server.mjs [--port N] [--dims N] [--max-requests N] [--no-validate]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  for (const k of ['port', 'dims', 'maxRequests']) {
    if (o[k] !== undefined && !(Number.isInteger(o[k]) && o[k] >= 0)) throw new Error(`bad value for ${k}`);
  }
  return o;
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
  }
}

if (isMain()) {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`fake-provider: ${e.message}\n`);
    process.exit(2);
  }
  const fp = await startFakeProvider(o);
  process.stdout.write(JSON.stringify({ listening: fp.port }) + '\n');
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    fp.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
