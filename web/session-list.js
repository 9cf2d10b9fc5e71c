// session-list.js: the sidebar's list of sessions, with rename and delete on
// each entry. Rename opens a field in place (Enter saves, Escape cancels);
// delete asks once more in place. While either is open the list is not
// redrawn, so a refresh cannot take the field away from under the cursor.
import { h } from './dom.js';

function fmtTime(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : d.toLocaleDateString();
}

const titleOf = (s) => s.title || '(new session)';

export class SessionList {
  /** ul: the list element; on: {select(id), rename(id, title) → Promise, remove(id) → Promise}. */
  constructor(ul, on) {
    this.ul = ul;
    this.on = on;
    this.editing = null; // the session whose rename or delete row is open
    this.last = { sessions: [], current: null };
  }

  render(sessions, current) {
    this.last = { sessions, current };
    if (this.editing && this.ul.querySelector('.session-edit')) return;
    this.editing = null;
    this.ul.textContent = '';
    if (!sessions.length) {
      this.ul.append(h('li', { class: 'none', text: 'No sessions yet.' }));
      return;
    }
    for (const s of sessions) this.ul.append(this._row(s, current));
  }

  _redraw(focusSession, focusSel) {
    this.editing = null;
    this.render(this.last.sessions, this.last.current);
    if (focusSession) this.ul.querySelector(`li[data-session="${focusSession}"] ${focusSel}`)?.focus();
  }

  _row(s, current) {
    const open = h(
      'button',
      {
        type: 'button',
        class: 'session-item',
        'data-session': s.session,
        'aria-current': s.session === current ? 'true' : null,
      },
      h('span', { class: 'session-title', dir: 'auto', text: titleOf(s) }),
      h(
        'span',
        { class: 'session-meta' },
        h('span', { class: 'agent-tag', dir: 'auto', text: s.agent }),
        h('span', { class: 'badge', 'data-state': s.state, text: s.state }),
        h('time', { datetime: s.updated_at, text: fmtTime(s.updated_at) }),
      ),
    );
    open.addEventListener('click', () => this.on.select(s.session));
    // The accessible names carry the title (isolated between FSI and PDI).
    const named = (verb) => `${verb} \u2068${titleOf(s)}\u2069`;
    const rename = h('button', {
      type: 'button',
      class: 'quiet rename',
      'aria-label': named('Rename'),
      text: 'Rename',
    });
    const del = h('button', { type: 'button', class: 'quiet delete', 'aria-label': named('Delete'), text: 'Delete' });
    rename.addEventListener('click', () => this._renameRow(s));
    del.addEventListener('click', () => this._deleteRow(s));
    return h(
      'li',
      { class: 'session-row', 'data-session': s.session },
      open,
      h('div', { class: 'session-actions' }, rename, del),
    );
  }

  _editRow(s, ...children) {
    this.editing = s.session;
    const li = this.ul.querySelector(`li[data-session="${s.session}"]`);
    const box = h('div', { class: 'session-edit' }, ...children);
    li.replaceChildren(box);
    return box;
  }

  _fail(box, e, controls) {
    controls.forEach((c) => {
      c.disabled = false;
    });
    box.querySelector('.card-error')?.remove();
    box.append(h('p', { class: 'card-error', role: 'alert', text: e.message }));
  }

  _renameRow(s) {
    const input = h('input', {
      type: 'text',
      class: 'rename-input',
      value: s.title || '',
      maxlength: '80',
      'aria-label': 'New title',
      dir: 'auto',
    });
    const save = h('button', { type: 'submit', text: 'Save' });
    const cancel = h('button', { type: 'button', text: 'Cancel' });
    const form = h('form', { class: 'rename-form' }, input, save, cancel);
    const box = this._editRow(s, form);
    const done = () => this._redraw(s.session, '.rename');
    cancel.addEventListener('click', done);
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        done();
      }
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const title = input.value.trim();
      const bytes = new TextEncoder().encode(title).length;
      if (!title || bytes > 80) {
        const why = title ? `A title is at most 80 bytes; this one has ${bytes}.` : 'A title cannot be empty.';
        this._fail(box, new Error(why), []);
        input.focus();
        return;
      }
      [input, save, cancel].forEach((c) => {
        c.disabled = true;
      });
      try {
        await this.on.rename(s.session, title);
        s.title = title;
        done();
      } catch (err) {
        this._fail(box, err, [input, save, cancel]);
        input.focus();
      }
    });
    input.focus();
    input.select();
  }

  _deleteRow(s) {
    const yes = h('button', { type: 'button', class: 'danger confirm-delete', text: 'Delete' });
    const no = h('button', { type: 'button', text: 'Keep' });
    const box = this._editRow(
      s,
      h(
        'p',
        { class: 'confirm-text', id: `del-${s.session}` },
        'Delete “',
        h('bdi', { text: titleOf(s) }),
        '” and its whole history for good?',
      ),
      h('div', { class: 'buttons' }, yes, no),
    );
    yes.setAttribute('aria-describedby', `del-${s.session}`);
    no.addEventListener('click', () => this._redraw(s.session, '.delete'));
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        this._redraw(s.session, '.delete');
      }
    });
    yes.addEventListener('click', async () => {
      yes.disabled = no.disabled = true;
      try {
        await this.on.remove(s.session);
        this.editing = null;
        this.render(
          this.last.sessions.filter((x) => x.session !== s.session),
          this.last.current,
        );
        this.ul.querySelector('.session-item')?.focus();
      } catch (err) {
        this._fail(box, err, [yes, no]);
      }
    });
    yes.focus();
  }
}
