// session-view.js: one session's events folded into what a page shows (the
// timeline, the pending question or approval, totals). Pure: it keeps no
// socket and sends nothing; TetherClient feeds it events (tether-client.js
// re-exports it). See web/README.md.

/**
 * Folds one session's events into what a view shows:
 *   items     the timeline, in order: {kind:'message'|'tool'|'question'|'approval'|'progress'|'error'|'notice', key, rev, ...}
 *   messages  the message items ({id, role, text, streaming, usage, client_msg_id})
 *   pending   the question or approval waiting for the user ({kind, ...event fields}) or null
 *   state, step, title, agent, usage (totals: prompt_tokens, completion_tokens, cost_usd), seq
 * Discarded messages are removed, except one stopped by the user (discard
 * reason "cancelled"): it keeps the text shown so far with `stopped: true`
 * (the server keeps none of it: the model does not see it next turn).
 * A `rewind` (regenerate, edit) drops the superseded items and adds a notice.
 * `question.answered` and `approval.decided` put the choice on their card
 * (`answer`; `decision`, `comment`); `approval.expired` marks it
 * `decision: 'expired'`.
 * addLocal() shows a turn the page sent before the server has it (`local:
 * true`), until its `user` event or dropLocal(). Every item has a `rev`
 * bumped when it changes, so a renderer can redraw only what changed.
 */
/** What an approval may carry besides its plan: the fingerprint to decide with, its deadline, its editable fields. */
const approvalExtras = (a) => ({
  fingerprint: a.fingerprint ?? null,
  expires_at: a.expires_at ?? null,
  editable: a.editable ?? null,
});

export class SessionView {
  constructor(session) {
    this.session = session;
    this.reset();
  }

  reset() {
    this.items = [];
    this._byKey = new Map();
    this.pending = null;
    this.state = null;
    this.step = null;
    this.title = '';
    this.agent = null;
    this.usage = { prompt_tokens: 0, completion_tokens: 0, cost_usd: 0 };
    this.seq = 0;
    this.updatedAt = null;
    this.version = 0;
    this._rev = 0;
  }

  get messages() {
    return this.items.filter((i) => i.kind === 'message');
  }

  /** True while an assistant message is being streamed. */
  get streaming() {
    return this.items.some((i) => i.kind === 'message' && i.streaming);
  }

  /** The message item of ev.message_id, added (role, streaming) when this view has not seen it. */
  _message(ev, role, streaming) {
    const key = 'm:' + ev.message_id;
    const known = this._byKey.get(key);
    if (known) return known;
    const item = { kind: 'message', key, id: ev.message_id, role, text: '', usage: null, seq: ev.seq, ts: ev.ts };
    if (streaming !== undefined) item.streaming = streaming;
    return this._add(item);
  }

  _add(item) {
    item.rev = ++this._rev;
    this.items.push(item);
    this._byKey.set(item.key, item);
    return item;
  }

  _touch(item) {
    item.rev = ++this._rev;
    return item;
  }

  _remove(key) {
    const it = this._byKey.get(key);
    if (!it) return;
    this._byKey.delete(key);
    this.items = this.items.filter((x) => x !== it);
  }

  _settlePending() {
    if (!this.pending) return;
    const it = this._byKey.get(this.pending.key);
    if (it) {
      it.resolved = true;
      this._touch(it);
    }
    this.pending = null;
  }

  /** Apply one event (of this session). Returns true when the view changed. */
  apply(ev) {
    if (!ev || (this.session && ev.session !== this.session)) return false;
    if (ev.type !== 'snapshot' && ev.seq <= this.seq) return false;
    this.seq = ev.seq;
    if (ev.ts) this.updatedAt = ev.ts;
    this.version += 1;
    switch (ev.type) {
      case 'snapshot':
        this._snapshot(ev);
        break;
      case 'state':
        this.state = ev.state;
        this.step = ev.step ?? this.step;
        if (ev.state !== 'waiting_input' && ev.state !== 'waiting_approval') this._settlePending();
        if (ev.state !== 'running')
          for (const m of this.items)
            if (m.kind === 'progress' && !m.finished) {
              m.finished = true;
              this._touch(m);
            }
        break;
      case 'user': {
        if (!this.title && ev.text) this.title = ev.text.slice(0, 80);
        if (ev.client_msg_id) this._remove('l:' + ev.client_msg_id);
        const key = 'm:' + ev.message_id;
        if (!this._byKey.has(key))
          this._add({
            kind: 'message',
            key,
            id: ev.message_id,
            role: 'user',
            text: ev.text ?? '',
            streaming: false,
            client_msg_id: ev.client_msg_id ?? null,
            seq: ev.seq,
            ts: ev.ts,
          });
        break;
      }
      case 'message.start':
        this._message(ev, ev.role || 'assistant', true);
        break;
      case 'delta': {
        const m = this._message(ev, 'assistant', true);
        m.text += ev.text ?? '';
        this._touch(m);
        break;
      }
      case 'message.end': {
        const m = this._message(ev, 'assistant', undefined);
        if (typeof ev.text === 'string') m.text = ev.text;
        m.streaming = false;
        m.usage = ev.usage || null;
        m.citations = Array.isArray(ev.citations) ? ev.citations : null; // the passages a retrieve call found
        if (ev.usage) {
          this.usage.prompt_tokens += ev.usage.prompt_tokens || 0;
          this.usage.completion_tokens += ev.usage.completion_tokens || 0;
          this.usage.cost_usd += ev.usage.cost_usd || 0;
        }
        this._touch(m);
        break;
      }
      case 'message.discard': {
        const m = this._byKey.get('m:' + ev.message_id);
        if (m && ev.reason === 'cancelled' && m.text) {
          m.streaming = false;
          m.stopped = true;
          this._touch(m);
        } else this._remove('m:' + ev.message_id);
        break;
      }
      case 'tool.call':
        this._add({
          kind: 'tool',
          key: 't:' + ev.call_id,
          call_id: ev.call_id,
          name: ev.name,
          args: ev.args,
          done: false,
          seq: ev.seq,
        });
        break;
      case 'tool.result': {
        let t = this._byKey.get('t:' + ev.call_id);
        if (!t)
          t = this._add({
            kind: 'tool',
            key: 't:' + ev.call_id,
            call_id: ev.call_id,
            name: '?',
            args: null,
            seq: ev.seq,
          });
        // may_have_run: a call cut short by a server restart; its effect is unknown.
        Object.assign(t, {
          done: true,
          ok: ev.ok,
          result: ev.result,
          error: ev.error,
          may_have_run: ev.may_have_run === true,
        });
        this._touch(t);
        break;
      }
      case 'question': {
        this._settlePending();
        const it = this._add({
          kind: 'question',
          key: 'q:' + ev.question_id,
          question_id: ev.question_id,
          text: ev.text,
          choices: ev.choices || null,
          schema: ev.schema || null,
          resolved: false,
          seq: ev.seq,
        });
        this.pending = it;
        break;
      }
      case 'approval': {
        this._settlePending();
        const it = this._add({
          kind: 'approval',
          key: 'a:' + ev.approval_id,
          approval_id: ev.approval_id,
          title: ev.title,
          plan: ev.plan,
          ...approvalExtras(ev),
          resolved: false,
          seq: ev.seq,
        });
        this.pending = it;
        break;
      }
      case 'approval.expired': {
        const it = this._byKey.get('a:' + ev.approval_id);
        if (!it) break;
        Object.assign(it, { decision: 'expired', comment: null, resolved: true });
        if (this.pending === it) this.pending = null;
        this._touch(it);
        break;
      }
      case 'question.answered':
      case 'approval.decided': {
        const it = this._byKey.get(
          (ev.type === 'question.answered' ? 'q:' : 'a:') + (ev.question_id ?? ev.approval_id),
        );
        if (!it) break;
        if (ev.type === 'question.answered') it.answer = ev.value;
        else Object.assign(it, { decision: ev.decision, comment: ev.comment ?? null });
        it.resolved = true;
        if (this.pending === it) this.pending = null;
        this._touch(it);
        break;
      }
      case 'progress': {
        const key = 'p:' + (ev.step || 'progress');
        let p = this._byKey.get(key);
        if (!p || p.finished) {
          if (p) this._remove(key);
          p = this._add({ kind: 'progress', key, step: ev.step, seq: ev.seq });
        }
        Object.assign(p, { done: ev.done, total: ev.total, label: ev.label, finished: false });
        this._touch(p);
        break;
      }
      case 'error':
        this._add({
          kind: 'error',
          key: 'e:' + ev.seq,
          code: ev.code,
          message: ev.message,
          retryable: ev.retryable,
          seq: ev.seq,
        });
        break;
      case 'rewind':
        this._rewind(ev);
        break;
      case 'context.trimmed':
        this._add({
          kind: 'notice',
          key: 'n:' + ev.seq,
          text: `${ev.dropped_messages} older message(s) were left out to fit the model's context`,
          seq: ev.seq,
        });
        break;
      default:
        return true; // unknown types are ignored (the protocol may add some)
    }
    return true;
  }

  /**
   * A rewind: the message ev.message_id and everything after it are
   * superseded (the server keeps them in its log); the view shows the new
   * branch, after a notice that says what was replaced. Turns not yet
   * stored (local) stay.
   */
  _rewind(ev) {
    const at = this.items.findIndex((i) => i.key === 'm:' + ev.message_id);
    if (at < 0) return;
    for (const it of this.items.slice(at)) {
      if (it.local) continue;
      this._byKey.delete(it.key);
      if (this.pending === it) this.pending = null;
    }
    const locals = this.items.slice(at).filter((i) => i.local);
    this.items = this.items.slice(0, at);
    this._add({
      kind: 'notice',
      key: 'n:' + ev.seq,
      rewind: ev.reason,
      text:
        ev.reason === 'edit'
          ? 'You edited a message: the conversation goes on from the edited version.'
          : 'Regenerated: the earlier answer was replaced.',
      seq: ev.seq,
    });
    for (const l of locals) this.items.push(l);
  }

  /** Show a turn sent from this page that the server has not stored yet. */
  addLocal(clientMsgId, text) {
    const key = 'l:' + clientMsgId;
    if (this._byKey.has(key)) return this._byKey.get(key);
    this.version += 1;
    return this._add({ kind: 'message', key, role: 'user', text, local: true, client_msg_id: clientMsgId });
  }

  /** Remove a local turn (the server refused it, or already had it). */
  dropLocal(clientMsgId) {
    if (!this._byKey.has('l:' + clientMsgId)) return false;
    this._remove('l:' + clientMsgId);
    this.version += 1;
    return true;
  }

  _snapshot(ev) {
    const keepTitle = ev.title;
    const locals = this.items.filter((i) => i.local);
    this.reset();
    this.seq = ev.seq;
    this.version = 1;
    this.state = ev.state ?? null;
    this.step = ev.step ?? null;
    this.agent = ev.agent ?? null;
    this.title = keepTitle || '';
    this.updatedAt = ev.ts || null;
    if (ev.usage) this.usage = { ...this.usage, ...ev.usage }; // the server's totals, not just what is left
    for (const t of ev.transcript || []) {
      this._add({
        kind: 'message',
        key: 'm:' + (t.message_id || 'x' + this._rev),
        id: t.message_id,
        role: t.role,
        text: t.text ?? '',
        streaming: false,
        usage: t.usage || null,
      });
    }
    const p = ev.pending;
    if (p && p.question_id) {
      this.pending = this._add({
        kind: 'question',
        key: 'q:' + p.question_id,
        question_id: p.question_id,
        text: p.text,
        choices: p.choices || null,
        schema: p.schema || null,
        resolved: false,
      });
    } else if (p && p.approval_id) {
      this.pending = this._add({
        kind: 'approval',
        key: 'a:' + p.approval_id,
        approval_id: p.approval_id,
        title: p.title,
        plan: p.plan,
        ...approvalExtras(p),
        resolved: false,
      });
    }
    for (const l of locals) this._add(l); // still on their way to the server
  }

  /** The assistant's text: every assistant message neither discarded nor stopped, concatenated. */
  assistantText() {
    return this.messages
      .filter((m) => m.role === 'assistant' && !m.stopped)
      .map((m) => m.text)
      .join('');
  }
}
