// AWS Bedrock Runtime's wire format for the fake provider (server.mjs):
// Converse and ConverseStream, the event-stream binary framing, Bedrock's
// error bodies, and a check of the request's AWS Signature Version 4.
//
// Frames are built as binary ("latin1") strings so that server.mjs writes
// them with the same fault machinery as the SSE streams.

import crypto from 'node:crypto';

/** /<prefix>/model/<modelId>/converse or /converse-stream */
export const BEDROCK_RE = /^(?:\/(.+?))?\/model\/([^/]+)\/(converse|converse-stream)\/?$/;

export const EVENTSTREAM_HEADERS = {
  'content-type': 'application/vnd.amazon.eventstream',
  'cache-control': 'no-cache',
};

// ------------------------------------------------------------------ CRC-32 and frames

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One event-stream message (a Buffer): string headers, then the payload. */
export function frame(headers, payload, { badCrc = false } = {}) {
  const hs = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    const h = Buffer.alloc(1 + n.length + 3 + v.length);
    h[0] = n.length;
    n.copy(h, 1);
    h[1 + n.length] = 7;
    h.writeUInt16BE(v.length, 2 + n.length);
    v.copy(h, 4 + n.length);
    hs.push(h);
  }
  const hbuf = Buffer.concat(hs);
  const p = Buffer.from(payload);
  const total = 16 + hbuf.length + p.length;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(hbuf.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  hbuf.copy(out, 12);
  p.copy(out, 12 + hbuf.length);
  out.writeUInt32BE((crc32(out.subarray(0, total - 4)) ^ (badCrc ? 1 : 0)) >>> 0, total - 4);
  return out;
}

const bin = (b) => b.toString('latin1');

function event(type, obj, opts) {
  return bin(
    frame(
      { ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' },
      JSON.stringify(obj),
      opts,
    ),
  );
}

/** An exception message, as Bedrock ends a stream that failed. */
export function exceptionFrame(spec) {
  const e = spec && typeof spec === 'object' ? spec : {};
  const type = e.type || 'modelStreamErrorException';
  const message = e.message || 'The model stream failed';
  return bin(
    frame(
      { ':exception-type': type, ':content-type': 'application/json', ':message-type': 'exception' },
      JSON.stringify({ message }),
    ),
  );
}

// ------------------------------------------------------------------ responses

export function bedrockNonStream(p) {
  const content = [];
  if (p.tokens.length) content.push({ text: p.tokens.join('') });
  for (const c of p.calls) content.push({ toolUse: { toolUseId: c.id, name: c.name, input: toolInput(c.args) } });
  return JSON.stringify({
    output: { message: { role: 'assistant', content } },
    stopReason: p.stop,
    usage: { inputTokens: p.prompt, outputTokens: p.comp, totalTokens: p.prompt + p.comp },
    metrics: { latencyMs: 1 },
  });
}

function toolInput(args) {
  try {
    const v = JSON.parse(args);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

/** { prologue, groups[], tail, malformed } as server.mjs streams them. */
export function bedrockStream(p) {
  const prologue = event('messageStart', { role: 'assistant' });
  const groups = [];
  let pending = '';
  let index = 0;
  for (const t of p.tokens) groups.push(event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: t } }));
  if (p.tokens.length) {
    pending += event('contentBlockStop', { contentBlockIndex: 0 });
    index++;
  }
  for (const c of p.calls) {
    const i = index++;
    const start = event('contentBlockStart', {
      contentBlockIndex: i,
      start: { toolUse: { toolUseId: c.id, name: c.name } },
    });
    const stop = event('contentBlockStop', { contentBlockIndex: i });
    if (!c.frags.length) {
      groups.push(pending + start + stop);
      pending = '';
      continue;
    }
    c.frags.forEach((f, k) => {
      const d = event('contentBlockDelta', { contentBlockIndex: i, delta: { toolUse: { input: f } } });
      groups.push((k === 0 ? pending + start : '') + d);
    });
    pending = stop;
  }
  const tail =
    pending +
    event('messageStop', { stopReason: p.stop }) +
    event('metadata', {
      usage: { inputTokens: p.prompt, outputTokens: p.comp, totalTokens: p.prompt + p.comp },
      metrics: { latencyMs: 1 },
    });
  const malformed = event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'bad crc' } }, { badCrc: true });
  return { prologue, groups, tail, malformed };
}

const ERRORS = {
  400: ['ValidationException', 'Input is too long for requested model.'],
  403: ['AccessDeniedException', 'You don\u2019t have access to the model with the specified model ID.'],
  404: ['ResourceNotFoundException', 'Could not resolve the foundation model from the provided model identifier.'],
  408: ['ModelTimeoutException', 'Model has timed out in processing the request.'],
  424: ['ModelErrorException', 'The model returned an error.'],
  429: ['ThrottlingException', 'Too many requests, please wait before trying again.'],
  500: ['InternalServerException', 'The server encountered an internal error.'],
  503: ['ServiceUnavailableException', 'Bedrock is unable to process your request.'],
};

/** {body, headers} of an error status, as Bedrock answers it. */
export function bedrockError(status, typeOverride, messageOverride) {
  const [type, message] = ERRORS[status] || [
    status >= 500 ? 'InternalServerException' : 'ValidationException',
    `HTTP ${status}`,
  ];
  const t = typeOverride || type;
  return {
    body: JSON.stringify({ message: messageOverride || message }),
    headers: { 'x-amzn-errortype': `${t}:http://internal.amazon.com/coral/com.amazon.bedrock/` },
  };
}

export function validateBedrockBody(b) {
  if (!Array.isArray(b.messages) || b.messages.length === 0)
    return bedrockError(400, 'ValidationException', 'messages: must be a non-empty list');
  for (const m of b.messages) {
    if (!m || (m.role !== 'user' && m.role !== 'assistant') || !Array.isArray(m.content) || !m.content.length)
      return bedrockError(400, 'ValidationException', 'messages: each needs role user|assistant and content blocks');
  }
  return null;
}

// ------------------------------------------------------------------ SigV4

const AUTH_RE =
  /^AWS4-HMAC-SHA256 Credential=([^/,]+)\/(\d{8})\/([^/,]+)\/([^/,]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** AWS's canonical URI: each byte of the path as sent, URI-encoded once more. */
function canonicalPath(p) {
  let out = '';
  for (const b of Buffer.from(p)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~/]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();
const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');

/**
 * Check a request's signature. Returns {ok, error?, key_id, region, service,
 * signed_headers}. With credentials ({keyId, secret}) the signature is
 * recomputed as AWS does; without, only its shape is checked.
 */
export function verifySigV4(req, pathname, query, buf, creds) {
  const h = req.headers;
  const m = AUTH_RE.exec(h.authorization || '');
  if (!m) return { ok: false, error: 'missing or malformed AWS4-HMAC-SHA256 Authorization header' };
  const [, keyId, day, region, service, signed, sig] = m;
  const info = {
    key_id: keyId,
    region,
    service,
    signed_headers: signed,
    session_token: h['x-amz-security-token'] || null,
  };
  const date = h['x-amz-date'] || '';
  if (!date.startsWith(day)) return { ok: false, error: 'x-amz-date missing or not the credential day', ...info };
  const names = signed.split(';');
  for (const need of ['host', 'x-amz-date'])
    if (!names.includes(need)) return { ok: false, error: `${need} not signed`, ...info };
  if (h['x-amz-security-token'] && !names.includes('x-amz-security-token'))
    return { ok: false, error: 'x-amz-security-token not signed', ...info };
  if (!creds) return { ok: true, ...info };
  if (keyId !== creds.keyId) return { ok: false, error: 'unknown access key id', ...info };
  const canon = [
    req.method,
    canonicalPath(pathname),
    query || '',
    ...names.map((n) => `${n}:${String(h[n] ?? '').trim()}`),
    '',
    signed,
    sha(buf),
  ].join('\n');
  const sts = ['AWS4-HMAC-SHA256', date, `${day}/${region}/${service}/aws4_request`, sha(canon)].join('\n');
  let k = hmac('AWS4' + creds.secret, day);
  for (const part of [region, service, 'aws4_request']) k = hmac(k, part);
  const want = hmac(k, sts).toString('hex');
  if (want !== sig) return { ok: false, error: 'signature does not match', ...info };
  return { ok: true, ...info };
}
