// Regenerates hostile.jsonl: `node tests/faults/corpus/gen.mjs > tests/faults/corpus/hostile.jsonl`.
// Each line: {name, as, frame|text|hex|binary|gen, expect:{code, close, re}}.
//   as:     "self" (an authenticated socket of the sessions' owner, default),
//           "other" (another user of the same tenant), "fresh" (a new socket, this is its first frame)
//   frame:  a JSON object sent as a text frame (an `id` is added unless it has one or noid is set);
//           placeholders in strings: $S (idle session), $SQ/$Q (session waiting on question $Q),
//           $SA/$A (session waiting on approval $A), $TOK:<kind> (a token, see hostile.test.mjs)
//   text:   sent verbatim as a text frame;  hex: bytes sent as a text frame (invalid UTF-8);
//   binary: sent as a binary frame;          gen: generated ("deep:N", "deepobj:N", "over:F" = F x the frame limit)
//   expect.code:  the error code expected; expect.close: close code expected (else the socket must stay usable)
//   expect.then:  'unauthenticated': the socket is open but a ping afterwards gets unauthenticated and 4001
//   expect.re:    false when the reply cannot carry re (the frame is not parseable JSON)
const out = [];
const add = (e) => out.push(JSON.stringify({ as: 'self', ...e }));
const bad = (name, frame, code = 'bad_request') => add({ name, frame, expect: { code } });

// --- syntax
for (const [name, text] of [
  ['not json', 'not json at all'],
  ['truncated', '{"type":"say",'],
  ['syntax error', '{"type":"say" "session":1}'],
  ['array', '[1,2,3]'],
  ['string', '"hello"'],
  ['number', '42'],
  ['null', 'null'],
  ['empty', ''],
  ['trailing garbage', '{"type":"ping","id":"x"} extra'],
  ['duplicate keys', '{"type":"ping","type":"say","id":"x"}'],
  ['nul escape', '{"type":"ping","id":"a\\u0000b"}'],
  ['lone surrogate escape', '{"type":"ping","id":"\\ud800"}'],
  ['NaN', '{"type":"ack","session":"$S","seq":NaN}'],
  ['comment', '{"type":"ping" /* c */}'],
])
  add({ name: `syntax: ${name}`, text, expect: { code: 'bad_request', re: false } });

// --- type field
bad('no type', {});
for (const t of [
  5,
  null,
  true,
  [],
  {},
  '',
  'does.not.exist',
  'SAY',
  'Say',
  'say ',
  'session.delete',
  '__proto__',
  'constructor',
  'welcome',
  'ok',
  'error',
  'x'.repeat(5000),
]) {
  bad(`type ${JSON.stringify(t).slice(0, 30)}`, { type: t });
}

// --- wrong types for every field of every message
const wrong = {
  str: [5, 1.5, true, null, ['x'], { a: 1 }],
  int: ['5', 1.5, -1, true, null, [1], { a: 1 }, 1e300, 2 ** 63],
  obj: [5, 'x', true, [1], null],
};
const msgs = {
  'session.open': { base: { agent: 'echo' }, fields: { agent: 'str', input: 'obj', metadata: 'obj', id: 'str' } },
  'session.attach': { base: { session: '$S', after: 0 }, fields: { session: 'str', after: 'int', id: 'str' } },
  'session.detach': { base: { session: '$S' }, fields: { session: 'str', id: 'str' } },
  'session.list': { base: {}, fields: { id: 'str' } },
  'session.close': { base: { session: '$S' }, fields: { session: 'str', id: 'str' } },
  say: {
    base: { session: '$S', text: 'x', client_msg_id: 'wt' },
    fields: { session: 'str', text: 'str', client_msg_id: 'str', id: 'str' },
  },
  answer: {
    base: { session: '$SQ', question_id: '$Q', value: 'yes' },
    fields: { session: 'str', question_id: 'str', id: 'str' },
  },
  decide: {
    base: { session: '$SA', approval_id: '$A', decision: 'approve' },
    fields: { session: 'str', approval_id: 'str', decision: 'str', comment: 'str', id: 'str' },
  },
  cancel: { base: { session: '$S' }, fields: { session: 'str', id: 'str' } },
  ack: { base: { session: '$S', seq: 1 }, fields: { session: 'str', seq: 'int' } },
  ping: { base: {}, fields: { id: 'str' } },
  hello: { base: { client: 'x/1' }, fields: {} }, // hello twice: conflict
};
for (const [type, { base, fields }] of Object.entries(msgs)) {
  for (const [f, kind] of Object.entries(fields)) {
    for (const v of wrong[kind]) {
      const frame = { type, ...base, [f]: v };
      const e = { name: `${type}.${f} = ${JSON.stringify(v)}`, frame, expect: { code: 'bad_request' } };
      if (f === 'id') {
        e.noid = true;
        e.expect.re = false;
      }
      if (v === 2 ** 63) e.expect.re = false; // the parser refuses the integer before it sees the id
      add(e);
    }
  }
  if (type === 'hello') continue;
  for (const req of Object.keys(base)) {
    const frame = { type, ...base };
    delete frame[req];
    if (type === 'session.attach' && req === 'after') continue; // `after` may be optional
    if (type === 'say' && req === 'client_msg_id') continue; // optional: a say without one is applied
    bad(`${type} without ${req}`, frame);
  }
  bad(`${type} with an unknown field`, { type, ...base, zzz: 1 });
}
add({
  name: 'id over 128 bytes',
  frame: { type: 'ping', id: 'i'.repeat(129) },
  noid: true,
  expect: { code: 'bad_request', re: false },
});
add({
  name: 'id of 10000 bytes',
  frame: { type: 'ping', id: 'i'.repeat(10000) },
  noid: true,
  expect: { code: 'bad_request', re: false },
});

// --- semantics that must be refused without changing anything
bad('hello twice', { type: 'hello', client: 'x/1' }, 'conflict');
bad('ack beyond head', { type: 'ack', session: '$S', seq: 1e9 });
bad('attach unknown session', { type: 'session.attach', session: 's_000000000000000000000000', after: 0 }, 'not_found');
bad('attach garbage session id', { type: 'session.attach', session: '../../etc/passwd', after: 0 }, 'not_found');
bad(
  'say to unknown session',
  { type: 'say', session: 's_000000000000000000000000', text: 'x', client_msg_id: 'u1' },
  'not_found',
);
bad('open unknown agent', { type: 'session.open', agent: 'no-such-agent' }, 'not_found');
bad('open echo with a bad delay', { type: 'session.open', agent: 'echo', input: { delay_ms: 'slow' } });
bad('open echo with a huge delay', { type: 'session.open', agent: 'echo', input: { delay_ms: 1e12 } });
bad('open echo with an unknown input key', { type: 'session.open', agent: 'echo', input: { zzz: 1 } });
bad(
  'answer a question that is not pending',
  { type: 'answer', session: '$SQ', question_id: 'q_nope', value: 'yes' },
  'conflict',
);
bad('answer outside the choices', { type: 'answer', session: '$SQ', question_id: '$Q', value: 'maybe' });
bad('answer with an object', { type: 'answer', session: '$SQ', question_id: '$Q', value: { yes: true } });
bad(
  'answer on a session with no question',
  { type: 'answer', session: '$S', question_id: '$Q', value: 'yes' },
  'conflict',
);
bad(
  'decide an approval that is not pending',
  { type: 'decide', session: '$SA', approval_id: 'a_nope', decision: 'approve' },
  'conflict',
);
bad('decide with an unknown decision', { type: 'decide', session: '$SA', approval_id: '$A', decision: 'yolo' });
bad('decide revise without comment', { type: 'decide', session: '$SA', approval_id: '$A', decision: 'revise' });
bad(
  'decide on a session with no approval',
  { type: 'decide', session: '$S', approval_id: '$A', decision: 'approve' },
  'conflict',
);
bad('say while waiting for an answer', { type: 'say', session: '$SQ', text: 'x', client_msg_id: 'busy1' }, 'conflict');

// --- depth
for (const g of ['deep:33', 'deep:1000', 'deep:10000', 'deepobj:10000', 'deep:100000']) {
  add({ name: `nesting ${g}`, gen: g, expect: { code: 'bad_request', re: false } });
}
add({ name: 'nesting 33 inside session.open metadata', gen: 'deepmeta:33', expect: { code: 'bad_request' } });
add({ name: 'nesting 40 inside answer.value', gen: 'deepvalue:40', expect: { code: 'bad_request' } });

// --- invalid UTF-8 (raw bytes in a text frame)
const J = (s) => Buffer.from(s).toString('hex');
for (const [name, bytes] of [
  ['0xff', 'ff'],
  ['0xfe 0xff', 'feff'],
  ['overlong /', 'c0af'],
  ['overlong NUL', 'c080'],
  ['UTF-16 surrogate', 'eda080'],
  ['above U+10FFFF', 'f4908080'],
  ['truncated 3-byte', 'e282'],
  ['lone continuation', '80'],
  ['5-byte form', 'f888808080'],
]) {
  add({
    name: `invalid UTF-8 in a string: ${name}`,
    hex: J('{"type":"say","session":"$S","client_msg_id":"u8","text":"') + bytes + J('"}'),
    expect: { code: 'bad_request', re: false },
  });
}
add({ name: 'invalid UTF-8 in a key', hex: J('{"') + 'ff' + J('":1}'), expect: { code: 'bad_request', re: false } });
add({ name: 'invalid UTF-8 alone', hex: 'ffffffff', expect: { code: 'bad_request', re: false } });

// --- binary frames
add({
  name: 'binary frame with valid JSON',
  binary: '{"type":"say","session":"$S","text":"bin","client_msg_id":"bin"}',
  expect: { code: 'bad_request', re: false },
});
add({ name: 'binary frame with junk', binary: '\u0000\u0001\u0002', expect: { code: 'bad_request', re: false } });

// --- sizes
add({ name: 'frame 2x over the limit', gen: 'over:2', expect: { code: 'too_large', re: false } });
add({ name: 'frame exactly 8x the limit', gen: 'over:8', expect: { code: 'too_large', re: false } });
add({ name: 'frame 16x over the limit', gen: 'over:16', expect: { close: 1009 } });

// --- other users' sessions
for (const frame of [
  { type: 'session.attach', session: '$S', after: 0 },
  { type: 'session.attach', session: '$SQ', after: 0 },
  { type: 'say', session: '$S', text: 'intrusion', client_msg_id: 'm1' },
  { type: 'session.close', session: '$S' },
  { type: 'answer', session: '$SQ', question_id: '$Q', value: 'yes' },
  { type: 'decide', session: '$SA', approval_id: '$A', decision: 'approve' },
  { type: 'cancel', session: '$S' },
  { type: 'session.detach', session: '$S' },
])
  add({ name: `other user: ${frame.type} ${frame.session}`, as: 'other', frame, expect: { code: 'forbidden' } });
// ack has no reply when it works; on a socket not attached to the session, not_found is as good as forbidden.
add({
  name: 'other user: ack on a foreign session',
  as: 'other',
  frame: { type: 'ack', session: '$S', seq: 1 },
  expect: { code: ['forbidden', 'not_found'] },
});

// --- tokens and the first frame
// A token over the field limit is refused by the decoder (bad_request, protocol/PROTOCOL.md); the socket stays unauthenticated.
add({
  name: 'token huge',
  as: 'fresh',
  frame: { type: 'hello', client: 'x/1', token: '$TOK:huge' },
  expect: { code: 'too_large', re: false, then: 'unauthenticated' },
}); // before hello frames are capped at 16 KiB
for (const k of [
  'none',
  'badsig',
  'expired',
  'hs512',
  'garbage',
  'empty',
  'noexp',
  'nosub',
  'tampered',
  'othersecret',
  'twodots',
]) {
  add({
    name: `token ${k}`,
    as: 'fresh',
    frame: { type: 'hello', client: 'x/1', token: `$TOK:${k}` },
    expect: { code: 'unauthenticated', close: 4001 },
  });
}
add({
  name: 'hello without token (keys configured)',
  as: 'fresh',
  frame: { type: 'hello', client: 'x/1' },
  expect: { code: 'unauthenticated', close: 4001 },
});
for (const t of ['ping', 'session.list', 'session.open']) {
  add({
    name: `${t} before hello`,
    as: 'fresh',
    frame: t === 'session.open' ? { type: t, agent: 'echo' } : { type: t },
    expect: { code: 'unauthenticated', close: 4001 },
  });
}
process.stdout.write(out.join('\n') + '\n');
