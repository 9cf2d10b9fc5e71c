// tether-client.js: the reference JavaScript client for Tether's wire protocol
// (protocol/PROTOCOL.md, version 1). One ES module, no dependencies, no build:
// it runs in browsers (global WebSocket) and in Node (pass the `ws` package as
// the `WebSocket` option).
//
//   const client = new TetherClient({ url: 'ws://127.0.0.1:8080/v1/ws' });
//   await client.connect();
//   const { session } = await client.open('echo');
//   client.on('delta', (ev) => process.stdout.write(ev.text));
//   await client.say(session, 'hello world');
//
// What it does for you: request/reply correlation (id -> re) with timeouts;
// reconnection with exponential backoff and full jitter; re-attaching every
// attached session after its last seq; dropping events it already has;
// rebuilding from a `snapshot` when the server could not replay (emits
// 'reset'); throttled `ack`s; `say` with an automatic client_msg_id that is
// re-sent after a reconnect until it is acknowledged (the server applies a
// repeated client_msg_id once). With `routeSession`, every socket's URL
// carries `?session=<id>` of the session the client is focused on, so a load
// balancer hashing on it (server/haproxy.cfg) sends it to that session's
// node. See web/README.md.

const CONN_STATES = ['idle', 'connecting', 'open', 'reconnecting', 'held', 'closed'];

/** An Error with the protocol's `code` (and the whole reply as `reply`). */
export class TetherError extends Error {
  constructor(code, message, reply) {
    super(message || code);
    this.name = 'TetherError';
    this.code = code;
    this.retryable = Boolean(reply && reply.retryable);
    this.reply = reply || null;
  }
}

function randomId(prefix) {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return prefix + c.randomUUID();
  return prefix + Date.now().toString(36) + Math.random().toString(36).slice(2);
}

/** Full-jitter exponential backoff: a random delay in [0, min(max, base * 2^attempt)]. */
export function backoffDelay(attempt, baseMs = 250, maxMs = 10_000, random = Math.random) {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

export class TetherClient {
  /**
   * @param {object} o
   * @param {string|function} o.url     ws(s)://host:port/v1/ws (or a function returning it, asked at every connect)
   * @param {string|function} [o.token] a JWT, or a (possibly async) function returning one; none in open mode
   * @param {function} [o.WebSocket]    WebSocket implementation (default: globalThis.WebSocket)
   * @param {string} [o.client]         client name sent in hello
   * @param {number} [o.requestTimeoutMs=10000]
   * @param {number} [o.backoffBaseMs=250]
   * @param {number} [o.backoffMaxMs=10000]
   * @param {number} [o.ackIntervalMs=500]  at most one ack per session per interval
   * @param {boolean} [o.reconnect=true]
   * @param {boolean} [o.routeSession=false] put `<routeParam>=<focused session>` on every
   *   connection URL (other query parameters kept): the focus is the session last opened or
   *   attached, or set with focus(); none yet: the URL as given
   * @param {string} [o.routeParam='session'] the query parameter's name
   */
  constructor(o = {}) {
    if (!o.url) throw new TypeError('TetherClient: url is required');
    this.url = o.url;
    this.token = o.token;
    this.WebSocket = o.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) throw new TypeError('TetherClient: no WebSocket implementation (pass options.WebSocket)');
    this.clientName = o.client || 'tether-client/1';
    this.requestTimeoutMs = o.requestTimeoutMs ?? 10_000;
    this.backoffBaseMs = o.backoffBaseMs ?? 250;
    this.backoffMaxMs = o.backoffMaxMs ?? 10_000;
    this.ackIntervalMs = o.ackIntervalMs ?? 500;
    this.autoReconnect = o.reconnect ?? true;
    this.routeSession = Boolean(o.routeSession);
    this.routeParam = o.routeParam || 'session';
    this._focus = null; // the session connection URLs are routed by (routeSession)

    this.state = 'idle';
    this.welcome = null;
    this.ws = null;
    this.attempt = 0;
    this._nextId = 1;
    this._pending = new Map(); // id -> {msg, resolve, reject, timer, sent}
    this._queue = []; // requests waiting for an open socket
    this._outbox = new Map(); // client_msg_id -> {msg, p}: a say not yet seen as a `user` event (re-sent after reconnect)
    this._sessions = new Map(); // session -> {lastSeq, attached, ackTimer, ackedSeq, on: the socket it is attached on}
    this._handlers = new Map(); // type -> Set(fn)
    this._iterators = new Set();
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._lastFrameAt = 0;
    this._firstWelcome = null;
  }

  // ------------------------------------------------------------- events

  /** Subscribe: a session event type ('delta', 'state', ...), '*' (every session event),
   * 'reset' (a snapshot replaced a session's state), 'connection' (state changes),
   * 'welcome', 'attached' (a re-attach after reconnecting succeeded), 'session.deleted'
   * (another client deleted a session this one had attached), 'client.error'
   * (errors not tied to a request or a session event), 'frame' (every frame). Returns an unsubscribe function. */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this._handlers.get(type)?.delete(fn);
  }

  _emit(type, ...args) {
    const hs = this._handlers.get(type);
    if (!hs) return;
    for (const fn of [...hs]) {
      try {
        fn(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  _setState(s, info) {
    if (this.state === s) return;
    const prev = this.state;
    this.state = s;
    this._emit('connection', s, { prev, ...info });
  }

  /** The highest seq this client holds for a session (0 if none). */
  lastSeq(session) {
    return this._sessions.get(session)?.lastSeq ?? 0;
  }

  /** Sessions this client keeps attached (re-attached after every reconnect). */
  attachedSessions() {
    return [...this._sessions].filter(([, s]) => s.attached).map(([id]) => id);
  }

  /**
   * Async iterator over one session's events (deduplicated, in order, snapshots included).
   *   for await (const ev of client.events(session)) { ... }
   * Ends when the client is closed or the loop breaks.
   */
  events(session) {
    const buf = [];
    let wake = null;
    let done = false;
    const it = {
      push(ev) {
        if (ev.session === session) {
          buf.push(ev);
          if (wake) {
            wake();
            wake = null;
          }
        }
      },
      end() {
        done = true;
        if (wake) {
          wake();
          wake = null;
        }
      },
    };
    this._iterators.add(it);
    const self = this;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        while (!buf.length && !done)
          await new Promise((r) => {
            wake = r;
          });
        if (buf.length) return { value: buf.shift(), done: false };
        return { value: undefined, done: true };
      },
      async return() {
        done = true;
        self._iterators.delete(it);
        return { value: undefined, done: true };
      },
    };
  }

  // ------------------------------------------------------------ routing

  /** The session the client is focused on: the last opened or attached, or set by focus(); null if none. */
  focused() {
    return this._focus;
  }

  /**
   * Focus on a session (null: none). With routeSession, the next connection's
   * URL carries it; the open socket is kept (reconnectNow() moves at once).
   */
  focus(session) {
    this._focus = session || null;
  }

  /** The URL the next socket opens: the url option, plus the focused session with routeSession. */
  connectionUrl() {
    const base = typeof this.url === 'function' ? this.url() : this.url;
    if (!this.routeSession || !this._focus) return base;
    let u;
    try {
      u = new URL(base, globalThis.location?.href);
    } catch {
      return base; // not a URL: the WebSocket constructor says so
    }
    u.searchParams.set(this.routeParam, this._focus);
    return u.toString();
  }

  // ------------------------------------------------------------ connect

  /** Connect (and keep reconnecting). Resolves with the first welcome; rejects if the token is refused. */
  connect() {
    if (this.state === 'closed') throw new Error('TetherClient: closed');
    if (!this._firstWelcome) {
      this._firstWelcome = {};
      this._firstWelcome.promise = new Promise((resolve, reject) => {
        this._firstWelcome.resolve = resolve;
        this._firstWelcome.reject = reject;
      });
      this._open();
    }
    return this._firstWelcome.promise;
  }

  /** Close for good: no reconnect; pending requests are rejected. */
  close() {
    clearTimeout(this._reconnectTimer);
    this._stopPing();
    for (const s of this._sessions.values()) clearTimeout(s.ackTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
    this._failPending(new TetherError('closed', 'client closed'), true);
    for (const it of this._iterators) it.end();
    this._iterators.clear();
    this._setState('closed');
    if (this._firstWelcome?.reject) this._firstWelcome.reject(new TetherError('closed', 'client closed'));
  }

  /**
   * Stop connecting until reconnectNow() (state 'held'): e.g. while the
   * user signs in, after the server refused the token. Requests wait.
   */
  hold() {
    if (this.state === 'closed') return;
    this._held = true;
    clearTimeout(this._reconnectTimer);
    this._stopPing();
    const ws = this.ws;
    this.ws = null; // its close event is ignored
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
    this._setState('held');
  }

  /** Drop the socket now (as a network failure would); the client reconnects. For tests and "retry now" buttons. */
  reconnectNow() {
    if (this.state === 'closed') return;
    this._held = false;
    if (this.ws) {
      const ws = this.ws;
      this._onClose({ code: 4000, reason: 'client reconnect' }); // forgets ws first: its own close event is ignored
      try {
        ws.close(4000);
      } catch {
        /* ignore */
      }
    }
    clearTimeout(this._reconnectTimer);
    if (this.state !== 'closed') this._open();
  }

  async _open() {
    clearTimeout(this._reconnectTimer);
    this._setState(this.welcome ? 'reconnecting' : 'connecting');
    let token = this.token;
    try {
      if (typeof token === 'function') token = await token();
    } catch (e) {
      token = undefined;
    }
    if (this.state === 'closed') return;
    let ws;
    try {
      ws = new this.WebSocket(this.connectionUrl(), 'tether.v1');
    } catch (e) {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    const mine = () => this.ws === ws;
    ws.onopen = () => {
      if (!mine()) return;
      const hello = { type: 'hello', client: this.clientName };
      if (token) hello.token = token;
      this._sendRaw(hello);
      // No welcome in time (a server stuck mid-start): try again.
      const t = setTimeout(() => {
        if (mine() && this.state !== 'open') this.reconnectNow();
      }, this.requestTimeoutMs);
      if (t.unref) t.unref();
    };
    ws.onmessage = (e) => {
      if (mine()) this._onFrame(typeof e.data === 'string' ? e.data : String(e.data));
    };
    ws.onerror = () => {
      /* a close follows */
    };
    ws.onclose = (e) => {
      if (mine()) this._onClose(e);
    };
  }

  _onClose(e) {
    this.ws = null;
    this._stopPing();
    // Requests sent on the dead socket: a say stays in the outbox and is sent
    // again (same client_msg_id) after the next welcome; the others fail as
    // retryable (sessions stay attached: the client re-attaches them itself).
    for (const [id, p] of this._pending) {
      if (!p.sent) continue;
      clearTimeout(p.timer);
      p.timer = null;
      if (p.msg.type === 'say') {
        p.sent = false;
        continue;
      }
      this._pending.delete(id);
      p.reject(
        new TetherError('disconnected', `connection lost before the reply to ${p.msg.type}`, { retryable: true }),
      );
    }
    if (this.state === 'closed') return;
    if (e && e.code === 4001) {
      const err = new TetherError('unauthenticated', (e.reason && String(e.reason)) || 'token refused');
      this._emit('client.error', err);
      if (typeof this.token !== 'function') {
        if (this._firstWelcome?.reject) this._firstWelcome.reject(err);
        this.close();
        return;
      }
    }
    if (!this.autoReconnect) {
      this.close();
      return;
    }
    // 1012 (service restart): the server is being upgraded and a new process
    // already listens on the port. Not a failure: reconnect at once and resume.
    if (e && e.code === 1012) {
      this.attempt = 0;
      this._scheduleReconnect({ restart: true });
      return;
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect(info) {
    if (this._held) {
      this._setState('held');
      return;
    }
    this._setState(this.welcome || this.attempt > 0 ? 'reconnecting' : 'connecting', info);
    const delay = info?.restart ? 0 : backoffDelay(this.attempt, this.backoffBaseMs, this.backoffMaxMs);
    this.attempt += 1;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  _startPing(heartbeatS) {
    this._stopPing();
    const every = Math.max(1, heartbeatS || 25) * 1000;
    this._pingTimer = setInterval(() => {
      if (!this.ws) return;
      if (Date.now() - this._lastFrameAt > 3 * every) {
        this.reconnectNow();
        return;
      }
      this._sendRaw({ type: 'ping' });
    }, every);
    if (this._pingTimer.unref) this._pingTimer.unref();
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  _sendRaw(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  _onFrame(text) {
    this._lastFrameAt = Date.now();
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    this._emit('frame', f);
    if (f.type === 'welcome') {
      this._onWelcome(f);
      return;
    }
    if (typeof f.seq === 'number' && typeof f.session === 'string') {
      this._onEvent(f);
      return;
    }
    if (typeof f.re === 'string' && this._pending.has(f.re)) {
      const p = this._pending.get(f.re);
      this._pending.delete(f.re);
      clearTimeout(p.timer);
      if (p.msg.type === 'say') {
        // Keep an acknowledged say until its `user` event arrives: if the
        // server dies before that event is stored, the say is sent again
        // (same client_msg_id, so never applied twice).
        const entry = this._outbox.get(p.msg.client_msg_id);
        if (entry) {
          if (f.type === 'ok' && !f.duplicate && this._sessions.get(p.msg.session)?.attached) entry.p = null;
          else this._outbox.delete(p.msg.client_msg_id);
        }
      }
      if (f.type === 'error') p.reject(new TetherError(f.code, f.message, f));
      else p.resolve(f);
      return;
    }
    if (f.type === 'session.deleted' && typeof f.session === 'string') {
      this._forget(f.session);
      this._emit('session.deleted', f.session);
      return;
    }
    if (f.type === 'error') this._emit('client.error', new TetherError(f.code, f.message, f));
  }

  /** A deleted session: no re-attach, no ack, no say kept for it. */
  _forget(session) {
    const s = this._sessions.get(session);
    if (s) {
      clearTimeout(s.ackTimer);
      this._sessions.delete(session);
    }
    if (this._focus === session) this._focus = null;
    for (const [id, entry] of this._outbox) if (entry.msg.session === session) this._outbox.delete(id);
  }

  _onWelcome(w) {
    const first = !this.welcome;
    this.welcome = w;
    this.attempt = 0;
    this._startPing(w.heartbeat_s);
    this._setState('open');
    this._emit('welcome', w, { reconnected: !first });
    // Re-attach every attached session after the last seq we hold, then
    // re-send what was waiting (the server handles a socket's frames in order).
    const queuedAttach = new Set(
      this._queue
        .map((id) => this._pending.get(id)?.msg)
        .filter((m) => m && m.type === 'session.attach')
        .map((m) => m.session),
    );
    for (const [session, s] of this._sessions) {
      if (!s.attached || queuedAttach.has(session)) continue;
      this._request({ type: 'session.attach', session, after: s.lastSeq }).then(
        (r) => {
          s.on = this.ws;
          this._emit('attached', session, r);
        },
        (e) => {
          if (e.code === 'not_found' || e.code === 'forbidden') s.attached = false;
          this._emit('client.error', e, { session });
        },
      );
    }
    const queued = this._queue;
    this._queue = [];
    for (const id of queued) this._transmit(id);
    for (const [, entry] of this._outbox) {
      if (entry.p) {
        if (!entry.p.sent && this._pending.has(entry.p.id)) this._transmit(entry.p.id);
      } else {
        // Acknowledged but its event never seen: again, with the same client_msg_id.
        const id = `r${this._nextId++}`;
        entry.msg = { ...entry.msg, id };
        entry.p = {
          id,
          msg: entry.msg,
          resolve() {},
          reject() {},
          sent: false,
          timer: null,
          timeoutMs: this.requestTimeoutMs,
        };
        this._pending.set(id, entry.p);
        this._transmit(id);
      }
    }
    if (this._firstWelcome?.resolve) {
      this._firstWelcome.resolve(w);
      this._firstWelcome.resolve = null;
      this._firstWelcome.reject = null;
    }
  }

  _sess(session) {
    let s = this._sessions.get(session);
    if (!s) {
      s = { lastSeq: 0, attached: false, ackTimer: null, ackedSeq: 0 };
      this._sessions.set(session, s);
    }
    return s;
  }

  _onEvent(ev) {
    const s = this._sess(ev.session);
    if (ev.type === 'snapshot') {
      // The server could not replay: this is the whole state as of seq.
      s.lastSeq = ev.seq;
      this._emit('reset', ev);
    } else {
      if (ev.seq <= s.lastSeq) return; // already have it
      s.lastSeq = ev.seq;
      if (ev.type === 'user' && ev.client_msg_id) this._outbox.delete(ev.client_msg_id);
    }
    this._emit(ev.type, ev);
    this._emit('*', ev);
    for (const it of this._iterators) it.push(ev);
    this._scheduleAck(ev.session, s);
  }

  _scheduleAck(session, s) {
    if (s.ackTimer || !this.ackIntervalMs) return;
    s.ackTimer = setTimeout(() => {
      s.ackTimer = null;
      // Only on the socket the session is attached on: an ack sent on a new
      // socket before its re-attach is answered not_found.
      if (s.on !== this.ws || !s.on) return;
      if (s.lastSeq > s.ackedSeq && this._sendRaw({ type: 'ack', session, seq: s.lastSeq })) s.ackedSeq = s.lastSeq;
    }, this.ackIntervalMs);
    if (s.ackTimer.unref) s.ackTimer.unref();
  }

  // ------------------------------------------------------------ requests

  /** Send any request; resolves with the `ok` reply, rejects with a TetherError. Waits for the socket when it is down. */
  request(msg, { timeoutMs } = {}) {
    return this._request(msg, timeoutMs);
  }

  _request(msg, timeoutMs = this.requestTimeoutMs) {
    if (this.state === 'closed') return Promise.reject(new TetherError('closed', 'client closed'));
    const id = msg.id || `r${this._nextId++}`;
    const full = { ...msg, id };
    return new Promise((resolve, reject) => {
      const p = { id, msg: full, resolve, reject, sent: false, timer: null, timeoutMs };
      this._pending.set(id, p);
      if (full.type === 'say') this._outbox.set(full.client_msg_id, { msg: full, p });
      if (this.welcome && this.state === 'open') this._transmit(id);
      else if (full.type !== 'say') this._queue.push(id);
    });
  }

  // Send a pending request; its timeout runs from the moment it is sent.
  _transmit(id) {
    const p = this._pending.get(id);
    if (!p) return;
    p.sent = this._sendRaw(p.msg);
    if (!p.sent) {
      if (p.msg.type !== 'say') this._queue.push(id);
      return;
    }
    clearTimeout(p.timer);
    if (p.timeoutMs > 0) {
      p.timer = setTimeout(() => {
        this._pending.delete(id);
        if (p.msg.type === 'say') this._outbox.delete(p.msg.client_msg_id);
        p.reject(new TetherError('timeout', `no reply to ${p.msg.type} within ${p.timeoutMs} ms`, { retryable: true }));
      }, p.timeoutMs);
    }
  }

  _failPending(err, all) {
    for (const [id, p] of this._pending) {
      if (!all && p.sent) continue;
      clearTimeout(p.timer);
      this._pending.delete(id);
      p.reject(err);
    }
    this._queue = [];
    this._outbox.clear();
  }

  // ------------------------------------------------------------ sessions

  /** Start a session with an agent; the client is attached to it. Resolves with the ok ({session, head, agent}). */
  /** onBusy: what a say while a turn runs does: 'reject' (default), 'interrupt' or 'queue'. */
  async open(agent, { input, metadata, onBusy } = {}) {
    const msg = { type: 'session.open', agent };
    if (input !== undefined) msg.input = input;
    if (metadata !== undefined) msg.metadata = metadata;
    if (onBusy !== undefined) msg.on_busy = onBusy;
    const r = await this._request(msg);
    const s = this._sess(r.session);
    s.attached = true;
    s.on = this.ws;
    this._focus = r.session;
    return r;
  }

  /**
   * Attach to a session. `after` defaults to the last seq this client holds
   * (0 for a session it has never seen: the whole history is replayed).
   */
  async attach(session, { after } = {}) {
    const s = this._sess(session);
    if (after !== undefined) s.lastSeq = after;
    s.attached = true;
    const prevFocus = this._focus;
    this._focus = session;
    try {
      const r = await this._request({ type: 'session.attach', session, after: s.lastSeq });
      s.on = this.ws;
      return r;
    } catch (e) {
      if (e.code !== 'disconnected' && e.code !== 'timeout') {
        s.attached = false;
        if (this._focus === session) this._focus = prevFocus;
      }
      throw e;
    }
  }

  async detach(session) {
    const s = this._sessions.get(session);
    if (s) s.attached = false;
    if (this._focus === session) this._focus = this.attachedSessions().at(-1) ?? null;
    return this._request({ type: 'session.detach', session });
  }

  /** This user's sessions: [{session, agent, state, title, updated_at, head}]. */
  /** Every session of this user: session.list is paged, so follow `next` to the end. */
  async list() {
    const all = [];
    let after;
    do {
      const r = await this._request({ type: 'session.list', ...(after ? { after } : {}) });
      all.push(...r.sessions);
      after = r.next;
    } while (after);
    return all;
  }

  /** End a session for good. */
  closeSession(session) {
    return this._request({ type: 'session.close', session });
  }

  /** Give a session a new title (1 to 80 bytes). Resolves with the ok ({session, title}). */
  rename(session, title) {
    return this._request({ type: 'session.rename', session, title });
  }

  /**
   * Delete a session for good (its events and transcript leave the store).
   * Other clients attached to it get the 'session.deleted' event.
   */
  async deleteSession(session) {
    const r = await this._request({ type: 'session.delete', session });
    this._forget(session);
    return r;
  }

  /**
   * A user turn. The client_msg_id is generated unless given; if the socket
   * drops before the reply, the same frame is sent again after reconnecting
   * (the server applies it once; the reply then has duplicate: true).
   */
  say(session, text, { clientMsgId } = {}) {
    return this._request({ type: 'say', session, text, client_msg_id: clientMsgId || randomId('c_') });
  }

  /**
   * Edit and resend: `text` replaces the user message `messageId`; the
   * conversation goes back to before it (a `rewind` event), then `text` is a
   * new turn, kept and re-sent like a say until its `user` event is seen.
   */
  edit(session, messageId, text, { clientMsgId } = {}) {
    const client_msg_id = clientMsgId || randomId('c_');
    return this._request({ type: 'say', session, text, client_msg_id, replaces: messageId });
  }

  /** Answer again the user turn the assistant message `messageId` answers (a `rewind`, then the new answer). */
  regenerate(session, messageId) {
    return this._request({ type: 'regenerate', session, message_id: messageId });
  }

  answer(session, questionId, value) {
    return this._request({ type: 'answer', session, question_id: questionId, value });
  }

  /**
   * decision: 'approve' | 'reject' | 'revise' (with comment). fingerprint: the
   * approval's, to approve only the plan shown; edits: with approve, new values
   * of fields the approval lists in `editable`.
   */
  decide(session, approvalId, decision, comment, { fingerprint, edits } = {}) {
    const msg = { type: 'decide', session, approval_id: approvalId, decision };
    if (comment !== undefined && comment !== null && comment !== '') msg.comment = comment;
    if (fingerprint !== undefined) msg.fingerprint = fingerprint;
    if (edits !== undefined) msg.edits = edits;
    return this._request(msg);
  }

  cancel(session) {
    return this._request({ type: 'cancel', session });
  }

  /** The says whose `user` event this client has not seen yet: [{session, text, client_msg_id}]. */
  pendingSays() {
    return [...this._outbox.values()].map(({ msg }) => ({
      session: msg.session,
      text: msg.text,
      client_msg_id: msg.client_msg_id,
    }));
  }
}

// The view model (one session's events folded into what a page shows) lives
// in session-view.js; it is exported from here too, so one import serves both.
export { SessionView } from './session-view.js';

export { CONN_STATES };
